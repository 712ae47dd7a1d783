"""What each RedisStore operation sends to its script and how it reads the reply.

Kept apart from I/O so that the async RedisStore and the synchronous SyncRedisStore are thin
shells over the same requests, the same checks and the same error mapping.
"""

from __future__ import annotations

import enum
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from store._codec import decode_failure, decode_record, encode_reason, encode_tail
from store._keys import Keys
from store._redis_errors import refusal, reply_text
from store._scripts import ScriptName
from store.errors import (
    ExistsError,
    NotFoundError,
    NotReplicatedError,
    StaleVersionError,
    StoreError,
    ValidationError,
)
from store.lifecycle import Failure, Pruned, Reason, TaskDetails, TypeCursor
from store.presence import Beat, Presence, TypeCounts
from store.protocol import (
    check_batch,
    check_batch_limit,
    check_beat,
    check_beats,
    check_change,
    check_changes,
    check_claim,
    check_query,
    check_task_ids,
    check_type_query,
    check_uint32,
    check_update,
    seconds_to_micros,
    state_error,
)
from store.record import (
    Ordering,
    Record,
    State,
    check_state,
    check_task_id,
    from_micros,
    to_micros,
    to_utc,
)
from store.worker_types import Change, Claim, Claimed, Rate, ServerFacts, Stats

__all__ = [
    "AMBIGUOUS",
    "PAGE_BUDGET",
    "PAGE_SORT_LIMIT",
    "REPLICATED_SCRIPTS",
    "REPLICA_ACK_TIMEOUT_MS",
    "Call",
    "Commands",
    "server_facts",
]

Arg = bytes | str | int

# Lua numbers are doubles: the scripts refuse integers beyond 2**53, which they could not hold
# exactly. No id or version gets there (both count writes from 1), so arguments past it are
# answered here the way MemoryStore answers them, instead of as a script's INVALID.
_LUA_MAX_INT = 2**53


# The writes that, with replicas_to_ack, are followed by a WAIT on their connection: those whose
# loss in a failover would lose a task or an outcome. claim and extend only hold leases: lost,
# a task is merely due again (a run repeated across a failover, which version fencing allows),
# while refusing them made a claimed task invisible to the very worker that had leased it.
REPLICATED_SCRIPTS = frozenset(
    {"put_all", "update", "settle", "delete", "cancel", "retry", "retry_failed", "prune"}
)

# The most index entries one get_ready slice reads. Each costs ~3 µs of Redis time (an HGET and
# a decode), so a slice takes ~1.5 ms (measured: median 1.8 ms with the machine's two cores
# loaded 5x over; 1000 took 3.6-11 ms): no page, however sparse its matches among a million
# tasks, holds Redis for longer than that at once.
PAGE_BUDGET = 500
# The most due records one get_ready slice reads through the time indexes and sorts by id, when
# that is all there is: ~4 µs each (3.6 ms for 1000 at best), in one call instead of walking.
PAGE_SORT_LIMIT = 1000
REPLICA_ACK_TIMEOUT_MS = 1000

# A call that fails with one of these may or may not have run on the server: the command may
# have been lost on the way, or only its reply on the way back (a reset, a socket timeout).
AMBIGUOUS = (RedisConnectionError, RedisTimeoutError)


# What Redis 7 appends to an error raised inside a script: ' script: <sha>, on @user_script:N.'
# (no sha when the script was sent by source).
@dataclass(frozen=True, slots=True)
class Call:
    """One script invocation: which script, its KEYS and its ARGV."""

    script: ScriptName
    keys: list[str]
    args: list[Arg]
    # The task ids the call is about, in order, for naming them in errors.
    subjects: Sequence[str] = ()


class ScriptError(enum.Enum):
    """The error codes our scripts reply with (the first word of the error)."""

    EXISTS = "EXISTS"
    STALE = "STALE"
    INVALID = "INVALID"
    MISSING = "MISSING"
    STATE = "STATE"


class Commands:
    """Builds the calls of one namespace and turns their replies into records."""

    def __init__(self, keys: Keys, max_data_bytes: int) -> None:
        self.keys = keys
        self.max_data_bytes = max_data_bytes
        # Entries one get_ready slice reads at most; tests lower it to walk many slices.
        self.page_budget = PAGE_BUDGET
        self.page_sort_limit = PAGE_SORT_LIMIT

    def put_all(self, records: Sequence[Record]) -> Call:
        check_batch(records, self.max_data_bytes)
        batch = b"".join(_pack_new_record(r) for r in records)
        keys = [self.keys.tasks, self.keys.sequence, self.keys.types, self.keys.index_prefix]
        keys.append(self.keys.list_prefix)
        subjects = [r.task_id for r in records]
        return Call("put_all", keys, [self.keys.wake_channel, batch], subjects)

    def put_all_done(self, records: Sequence[Record], reply: Any) -> None:
        first_id, now = int(reply[0]), from_micros(int(reply[1]))
        for offset, r in enumerate(records):
            r.id, r.version = first_id + offset, 1
            r.created_at = now if r.created_at is None else to_utc(r.created_at)
            r.next_attempt_at = (
                r.created_at if r.next_attempt_at is None else to_utc(r.next_attempt_at)
            )
            r.state = State(r.state)

    def put_all_recovered(self, records: Sequence[Record], stored: Sequence[Any]) -> bool:
        """Whether a batch whose put_all reply was lost, and whose re-send answered EXISTS, was
        stored by the first send; if so, fill records from what is stored, as put_all_done would.

        stored holds the packed values (HMGET) of the batch's task ids. They are this batch only
        when every one is there, with ids consecutive in batch order (as one put_all assigns
        them), and with what put_all writes as sent. A worker may have claimed or settled a task
        in the meantime (version > 1): then only what no script changes is compared (type, data,
        reference_id, created_at). An identical batch put by someone else earlier is
        indistinguishable; without an idempotency token in the script, that is the best one can
        tell, and it is far likelier than a lost reply that was not ours.
        """
        found = [
            decode_record(r.task_id, packed) if isinstance(packed, bytes) else None
            for r, packed in zip(records, stored, strict=True)
        ]
        first = found[0]
        if first is None:
            return False
        for offset, (sent, kept) in enumerate(zip(records, found, strict=True)):
            if kept is None or kept.id != first.id + offset or not _stored_as_sent(sent, kept):
                return False
        for sent, kept in zip(records, found, strict=True):
            assert kept is not None
            kept.copy_to(sent)
        return True

    def update(self, record: Record) -> Call:
        next_attempt = check_update(record)
        if record.version > _LUA_MAX_INT:
            raise StaleVersionError(f"task {record.task_id!r} is not at version {record.version}")
        args: list[Arg] = [record.task_id, record.version, int(record.state)]
        args += [record.failed_attempts, next_attempt]
        keys = [self.keys.tasks, self.keys.index_prefix, self.keys.list_prefix]
        return Call("update", keys, args, [record.task_id])

    def get_ready(
        self,
        state: State,
        as_of: datetime,
        cursor: int | None,
        limit: int,
        direction: Ordering,
        *,
        with_errors: bool = False,
    ) -> Call:
        """One slice of a page (see get_ready.lua); the store repeats it from the slice's
        resume id until the page is full or no record is left."""
        known, as_of_micros = check_query(state, as_of, cursor, limit, direction)
        if cursor is not None:  # clamped: no id lies beyond, so the page is the same
            cursor = max(-_LUA_MAX_INT, min(cursor, _LUA_MAX_INT))
        limit = min(limit, _LUA_MAX_INT)
        args: list[Arg] = [int(known), as_of_micros, "" if cursor is None else cursor, limit]
        args += [direction.value, self.page_budget, "1" if with_errors else "0"]
        args.append(self.page_sort_limit)
        keys = [self.keys.tasks, self.keys.types, self.keys.index_prefix, self.keys.list_prefix]
        return Call("get_ready", [*keys, self.keys.errors], args)

    def get_ready_slice(self, reply: Any, *, with_errors: bool) -> tuple[int | None, list[Any]]:
        """A slice's resume id (None: the page is answered) and its rows: Records, or
        TaskDetails with_errors."""
        resume = int(reply[0])
        if not with_errors:
            rows: list[Any] = [
                decode_record(reply[i], reply[i + 1]) for i in range(1, len(reply), 2)
            ]
        else:
            rows = [
                TaskDetails(decode_record(reply[i], reply[i + 1]), _failure_or_none(reply[i + 2]))
                for i in range(1, len(reply), 3)
            ]
        return (None if resume < 0 else resume), rows

    def get_ready_done(self, rows: list[Record], state: State, as_of: datetime) -> list[Record]:
        if not rows:
            raise NotFoundError(f"no {State(state)} task is ready as of {as_of.isoformat()}")
        return rows

    def list_type(
        self,
        state: State,
        task_type: int,
        after: TypeCursor | None,
        limit: int,
        direction: Ordering,
    ) -> Call:
        """One page of one state and type in its time index's order (see list_type.lua)."""
        known, task_type, cursor = check_type_query(state, task_type, after, limit, direction)
        micros, task_id = cursor if cursor is not None else ("", "")
        keys = [self.keys.tasks, self.keys.index(known, task_type), self.keys.errors]
        return Call("list_type", keys, [micros, task_id, limit, direction.value])

    def list_type_done(self, reply: Any) -> list[TaskDetails]:
        return [
            TaskDetails(decode_record(reply[i], reply[i + 1]), _failure_or_none(reply[i + 2]))
            for i in range(0, len(reply), 3)
        ]

    def count(self, state: State) -> Call:
        known = check_state("state", state)
        return Call("count", [self.keys.types, self.keys.index_prefix], [int(known)])

    def claim(
        self,
        max_attempts: Mapping[int, int],
        limit: int,
        lease_seconds: float,
        type_limits: Mapping[int, int] | None = None,
        rates: Mapping[int, Rate] | None = None,
    ) -> Call:
        lease = check_claim(max_attempts, limit, lease_seconds, type_limits, rates)
        caps, rates = type_limits or {}, rates or {}
        args: list[Arg] = [lease, limit]
        for task_type, most in max_attempts.items():
            rate = rates.get(task_type)
            args += [task_type, most, caps.get(task_type, 0)]
            # repr: the shortest decimal that reads back as the very same double, never in
            # exponent form within MIN_RATE..MAX_RATE.
            args += [repr(float(rate.per_second)), rate.burst] if rate else [0, 0]
        keys = [self.keys.tasks, self.keys.index_prefix, self.keys.list_prefix, self.keys.errors]
        return Call("claim", [*keys, self.keys.rates], args)

    def claim_done(self, reply: Any) -> Claim:
        tasks = [
            Claimed(decode_record(reply[i], reply[i + 1]), from_micros(int(reply[i + 2])))
            for i in range(5, len(reply), 3)
        ]
        next_due = int(reply[1])
        held = reply[3]
        return Claim(
            now=from_micros(int(reply[0])),
            tasks=tasks,
            next_due=None if next_due < 0 else from_micros(next_due),
            damaged=[t.decode("utf-8", "backslashreplace") for t in reply[2]],
            held_by_rate={
                int(held[i]): from_micros(int(held[i + 1])) for i in range(0, len(held), 2)
            },
            held_by_limit=frozenset(int(t) for t in reply[4]),
        )

    def settle(self, changes: Sequence[Change]) -> Call:
        if not changes:
            check_changes(changes)  # raises: a settle needs at least one change
        # Each change is checked as it is packed, all before anything is sent.
        batch = b"".join(_pack_change(c) for c in changes)
        keys = [self.keys.tasks, self.keys.index_prefix, self.keys.list_prefix, self.keys.errors]
        return Call("settle", keys, [self.keys.wake_channel, batch])

    def flags_done(self, reply: Any) -> list[bool]:
        """The per-item 1/0 answers of settle and extend, after the server's now."""
        return [flag == 1 for flag in reply[1:]]

    def extend(self, records: Sequence[Record], lease_seconds: float) -> Call:
        batch = b"".join(_pack_task_id(r.task_id) + _VERSION.pack(r.version) for r in records)
        args: list[Arg] = [seconds_to_micros("lease", lease_seconds), batch]
        return Call("extend", [self.keys.tasks, self.keys.index_prefix], args)

    def inspect(self, task_id: str) -> Call:
        check_task_id(task_id)
        return Call("inspect", [self.keys.tasks, self.keys.errors], [task_id], [task_id])

    def inspect_done(self, reply: Any, call: Call) -> TaskDetails:
        packed, failure = reply
        if not packed:
            raise NotFoundError(f"task {call.subjects[0]!r} not found")
        return TaskDetails(decode_record(call.subjects[0], packed), _failure_or_none(failure))

    def delete(self, task_ids: Sequence[str]) -> Call:
        ids = check_task_ids(task_ids)
        keys = [self.keys.tasks, self.keys.index_prefix, self.keys.list_prefix, self.keys.errors]
        return Call("delete", keys, list(ids), ids)

    def cancel(self, task_ids: Sequence[str]) -> Call:
        ids = check_task_ids(task_ids)
        keys = [self.keys.tasks, self.keys.index_prefix, self.keys.list_prefix, self.keys.errors]
        return Call("cancel", keys, list(ids), ids)

    def retry(self, task_ids: Sequence[str]) -> Call:
        ids = check_task_ids(task_ids)
        keys = [self.keys.tasks, self.keys.index_prefix, self.keys.list_prefix]
        return Call("retry", keys, [self.keys.wake_channel, *ids], ids)

    def retry_failed(self, task_type: int | None, limit: int) -> Call:
        type_arg = 0 if task_type is None else check_uint32("type", task_type)
        args: list[Arg] = [self.keys.wake_channel, type_arg, check_batch_limit(limit)]
        keys = [self.keys.tasks, self.keys.types, self.keys.index_prefix, self.keys.list_prefix]
        return Call("retry_failed", keys, args)

    def prune(self, confirmed_seconds: float, failed_seconds: float, limit: int) -> Call:
        args: list[Arg] = [
            seconds_to_micros("confirmed", confirmed_seconds),
            seconds_to_micros("failed", failed_seconds),
        ]
        args.append(check_batch_limit(limit))
        keys = [self.keys.tasks, self.keys.types, self.keys.index_prefix, self.keys.list_prefix]
        return Call("prune", [*keys, self.keys.errors], args)

    def relist(self, task_ids: Sequence[bytes]) -> Call:
        """List a page of HSCANned task ids (raw bytes: any stored id, as stored)."""
        ids = list(dict.fromkeys(task_ids))
        return Call("relist", [self.keys.tasks, self.keys.list_prefix], list(ids))

    def prune_done(self, reply: Any) -> Pruned:
        return Pruned(confirmed=int(reply[0]), failed=int(reply[1]))

    def stats(self) -> Call:
        return Call("stats", [self.keys.types, self.keys.index_prefix], [])

    def stats_done(self, reply: Any) -> Stats:
        now, pending, confirmed, failed, ready, oldest, *by_type = (int(v) for v in reply)
        return Stats(
            now=from_micros(now),
            pending=pending,
            confirmed=confirmed,
            failed=failed,
            ready=ready,
            oldest_ready_at=None if oldest < 0 else from_micros(oldest),
            ready_by_type=dict(zip(by_type[::2], by_type[1::2], strict=True)),
        )

    def count_by_type(self) -> Call:
        return Call("count_by_type", [self.keys.types, self.keys.index_prefix], [])

    def count_by_type_done(self, reply: Any) -> list[TypeCounts]:
        numbers = [int(v) for v in reply]
        counts = [TypeCounts(*numbers[i : i + 4]) for i in range(0, len(numbers), 4)]
        return sorted(counts, key=lambda c: c.type)

    def beat(self, member: str, payload: bytes, forget_after_seconds: float) -> Call:
        forget_after = check_beat(member, payload, forget_after_seconds)
        keys = [self.keys.presence, self.keys.presence_payloads]
        return Call("beat", keys, [member, payload, forget_after])

    def beats(self, within_seconds: float, limit: int) -> Call:
        within = check_beats(within_seconds, limit)
        keys = [self.keys.presence, self.keys.presence_payloads]
        return Call("beats", keys, [within, limit])

    def beats_done(self, reply: Any) -> Presence:
        beats = [
            Beat(bytes(reply[i]).decode(), from_micros(int(float(reply[i + 1]))), reply[i + 2])
            for i in range(1, len(reply), 3)
        ]
        return Presence(from_micros(int(reply[0])), beats)

    def check_replicated(self, acknowledged: Any, wanted: int, call: Call) -> None:
        """Refuse a write that fewer than wanted replicas confirmed (WAIT's answer)."""
        if int(acknowledged) < wanted:
            raise NotReplicatedError(
                f"the {call.script} write reached {int(acknowledged)} of {wanted} replicas in "
                f"{REPLICA_ACK_TIMEOUT_MS} ms; a failover could lose it"
            )

    def translate(self, error: ResponseError, call: Call) -> StoreError:
        """Map a script's error reply to the store's exception."""
        refused = refusal(error, f"the {call.script} script")  # OOM, BUSY, NOPERM...
        if refused is not None:
            return refused
        code, _, detail = str(error).partition(" ")
        if code == ScriptError.STALE.value:
            return StaleVersionError(
                f"task {call.subjects[0]!r} is missing or not at the given version"
            )
        if code == ScriptError.EXISTS.value:
            return ExistsError(f"task {call.subjects[int(detail)]!r} already exists")
        if code == ScriptError.INVALID.value:
            return ValidationError(detail, f"refused by the {call.script} script")
        if code == ScriptError.MISSING.value:
            return NotFoundError(f"task {call.subjects[int(detail)]!r} not found; nothing changed")
        if code == ScriptError.STATE.value:
            at, _, state = detail.partition(" ")
            return state_error(call.script, call.subjects[int(at)], State(int(state)))
        reply = reply_text(error)  # sha and line: not for users
        return StoreError(f"the {call.script} script failed: {type(error).__name__}: {reply}")


def _failure_or_none(packed: Any) -> Failure | None:
    return decode_failure(packed) if isinstance(packed, bytes) and packed else None


def server_facts(info: Mapping[str, Any]) -> ServerFacts:
    """ServerFacts from an INFO reply (a cluster client answers per node: the first is read)."""
    if "redis_version" not in info and info and all(isinstance(v, dict) for v in info.values()):
        info = next(iter(info.values()))
    version = f"redis {info.get('redis_version', '?')}"
    if "valkey_version" in info:
        version = f"valkey {info['valkey_version']}"
    return ServerFacts(
        version=version,
        persistent=bool(int(info.get("aof_enabled", 0))),
        eviction_policy=str(info.get("maxmemory_policy", "noeviction")),
    )


_NEW_RECORD = struct.Struct(">IBIBqqI")
_CHANGE = struct.Struct(">qBIq")
_VERSION = struct.Struct(">q")
_TASK_ID_SIZE = struct.Struct(">H")


def _stored_as_sent(sent: Record, kept: Record) -> bool:
    """Whether kept is what put_all stores for sent (see Commands.put_all_recovered)."""
    same = (sent.type, sent.data, sent.reference_id) == (kept.type, kept.data, kept.reference_id)
    if sent.created_at is not None:
        same = same and sent.created_at == kept.created_at
    if kept.version != 1:  # claimed or settled since: its state and schedule are the worker's
        return same
    same = same and (int(sent.state), sent.failed_attempts) == (kept.state, kept.failed_attempts)
    if sent.next_attempt_at is not None:
        same = same and sent.next_attempt_at == kept.next_attempt_at
    return same


def _pack_task_id(task_id: str) -> bytes:
    encoded = task_id.encode("utf-8")
    return _TASK_ID_SIZE.pack(len(encoded)) + encoded


def _pack_new_record(r: Record) -> bytes:
    """One record of a put_all batch, laid out as put_all.lua reads it."""
    given = (r.next_attempt_at is not None) | (r.created_at is not None) << 1
    next_at = to_micros("next_attempt_at", r.next_attempt_at) if r.next_attempt_at else 0
    created = to_micros("created_at", r.created_at) if r.created_at else 0
    tail = encode_tail(r)
    fields = _NEW_RECORD.pack(
        r.type, int(r.state), r.failed_attempts, given, next_at, created, len(tail)
    )
    return _pack_task_id(r.task_id) + fields + tail


def _pack_change(c: Change) -> bytes:
    """One change of a settle batch, laid out as settle.lua reads it."""
    state, delay = check_change(c)
    # Cut again here: a Reason built directly (not through Reason.of) may be of any size.
    reason = encode_reason(c.reason and Reason.of(c.reason.kind, c.reason.message))
    fields = _CHANGE.pack(c.record.version, int(state), c.failed_attempts, delay)
    return _pack_task_id(c.record.task_id) + fields + _TASK_ID_SIZE.pack(len(reason)) + reason
