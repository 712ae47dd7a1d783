"""What each PostgreSQL store operation sends and how it reads the rows that come back.

Kept apart from I/O so that the async PostgresStore and the blocking SyncPostgresStore are thin
shells over the same statements, the same checks (store/protocol.py's, shared with every store)
and the same errors.
"""

from __future__ import annotations

import collections
import itertools
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from store._bucket import claim_result, take
from store.errors import ExistsError, NotFoundError, StaleVersionError, ValidationError
from store.lifecycle import CANCELLED, Failure, Pruned, TaskDetails, TypeCursor
from store.postgres._facts import durable
from store.postgres._schema import QueryName, Schema
from store.presence import Beat, Presence, TypeCounts
from store.protocol import (
    check_batch,
    check_batch_limit,
    check_beat,
    check_beats,
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
    MAX_UINT32,
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

__all__ = ["ByIds", "Query", "Row", "Statements"]

# The operations on a list of task ids, all or nothing.
ByIds = Literal["delete", "cancel", "retry"]

Row = Sequence[Any]

_BIGINT_MAX = 2**63 - 1
_BIGINT_MIN = -(2**63)
# The last failure a claim records for a run whose lease ran out (as the Redis store's claim).
ABANDONED = (
    "the lease ran out without an outcome: the worker that held it stopped or lost PostgreSQL"
)


@dataclass(frozen=True, slots=True)
class Query:
    """One statement to run: its text and its parameters."""

    name: QueryName
    sql: bytes
    params: Mapping[str, Any]


class Statements:
    """Builds the statements of one namespace and turns their rows into records."""

    def __init__(self, schema: Schema, max_data_bytes: int) -> None:
        self.schema = schema
        self.max_data_bytes = max_data_bytes

    def _query(self, name: QueryName, **params: Any) -> Query:
        return Query(name, self.schema.sql(name), params)

    # --- the seed's contract ---------------------------------------------------------------

    def put_all(self, records: Sequence[Record]) -> Query:
        check_batch(records, self.max_data_bytes)
        return self._query(
            "put_all",
            task_ids=[r.task_id.encode("utf-8") for r in records],
            types=[r.type for r in records],
            data=[r.data for r in records],
            reference_ids=[_utf8(r.reference_id) for r in records],
            states=[int(r.state) for r in records],
            failed=[r.failed_attempts for r in records],
            next_at=[r.next_attempt_at for r in records],
            created=[r.created_at for r in records],
            channel=self.schema.channel,
        )

    def put_all_done(self, records: Sequence[Record], row: Row) -> None:
        """Fill in the callers' records, or raise ExistsError naming the first stored task."""
        now, existing, task_ids, ids = to_utc(row[0]), row[1], row[2], row[3]
        if existing is not None:
            raise ExistsError(f"task {records[existing - 1].task_id!r} already exists")
        id_of = dict(zip((bytes(t).decode("utf-8") for t in task_ids), ids, strict=True))
        for r in records:
            r.id, r.version, r.state = id_of[r.task_id], 1, State(r.state)
            r.created_at = now if r.created_at is None else to_utc(r.created_at)
            r.next_attempt_at = (
                r.created_at if r.next_attempt_at is None else to_utc(r.next_attempt_at)
            )

    def get_batch(self, records: Sequence[Record]) -> Query:
        return self._query("get_batch", task_ids=[r.task_id.encode("utf-8") for r in records])

    def put_all_recovered(self, records: Sequence[Record], rows: Sequence[Row]) -> bool:
        """Whether a batch whose put_all reply was lost, and whose re-send found task ids
        stored, was stored by the first send; if so, fill records from what is stored, as
        put_all_done would.

        rows are the stored records of the batch's task ids. They are this batch only when
        every one is there, with ids increasing in batch order and one creation instant for
        those sent without one (as one put_all statement stores them), and with what put_all
        writes as sent. A worker may have claimed or settled a task meanwhile (version > 1):
        then only what nothing changes is compared. An identical batch put by someone else
        earlier is indistinguishable (as on Redis, see store/_commands.py): far less likely
        than a lost reply that was ours.
        """
        stored = {r.task_id: r for r in map(to_record, rows)}
        kept = [stored.get(r.task_id) for r in records]
        found = [k for k in kept if k is not None]
        if len(found) != len(records):
            return False
        ids = [k.id for k in found]
        if any(later <= earlier for earlier, later in itertools.pairwise(ids)):
            return False
        pairs = list(zip(records, found, strict=True))
        stamped = {k.created_at for sent, k in pairs if sent.created_at is None}
        if len(stamped) > 1 or not all(_stored_as_sent(sent, k) for sent, k in pairs):
            return False
        for sent, k in pairs:
            k.copy_to(sent)
        return True

    def update(self, record: Record) -> Query:
        check_update(record)
        return self._query(
            "update",
            task_id=record.task_id.encode("utf-8"),
            version=record.version,
            state=int(record.state),
            failed=record.failed_attempts,
            next_at=record.next_attempt_at,
        )

    def update_done(self, record: Record, row: Row | None) -> None:
        if row is None:
            raise StaleVersionError(
                f"task {record.task_id!r} is missing or not at version {record.version}"
            )
        to_record(row).copy_to(record)

    def get(self, task_id: str) -> Query:
        return self._query("get", task_id=check_task_id(task_id).encode("utf-8"))

    def get_done(self, task_id: str, row: Row | None) -> Record:
        if row is None:
            raise NotFoundError(f"task {task_id!r} not found")
        return to_record(row)

    def get_ready(
        self, state: State, as_of: datetime, cursor: int | None, limit: int, direction: Ordering
    ) -> Query:
        known, _ = check_query(state, as_of, cursor, limit, direction)
        descending = direction is Ordering.DESC
        if cursor is None:  # the far end of the range: every id lies before it
            cursor = _BIGINT_MAX if descending else _BIGINT_MIN
        cursor = max(_BIGINT_MIN, min(cursor, _BIGINT_MAX))  # no id lies beyond: the same page
        name: QueryName = "get_ready_desc" if descending else "get_ready_asc"
        return self._query(
            name, state=int(known), as_of=as_of, cursor=cursor, limit=min(limit, _BIGINT_MAX)
        )

    def get_ready_done(self, rows: Sequence[Row], state: State, as_of: datetime) -> list[Record]:
        if not rows:
            raise NotFoundError(f"no {State(state)} task is ready as of {as_of.isoformat()}")
        return [to_record(row) for row in rows]

    def count(self, state: State) -> Query:
        return self._query("count", state=int(check_state("state", state)))

    # --- the worker's side ------------------------------------------------------------------

    def claim(
        self,
        max_attempts: Mapping[int, int],
        limit: int,
        lease_seconds: float,
        type_limits: Mapping[int, int] | None = None,
        rates: Mapping[int, Rate] | None = None,
    ) -> Query:
        lease = check_claim(max_attempts, limit, lease_seconds, type_limits, rates)
        caps, rates = type_limits or {}, rates or {}
        types = list(max_attempts)
        return self._query(
            "claim",
            types=types,
            max_attempts=[max_attempts[t] for t in types],
            caps=[caps.get(t, 0) for t in types],
            per_second=[float(rates[t].per_second) if t in rates else 0.0 for t in types],
            bursts=[rates[t].burst if t in rates else 0 for t in types],
            rated=[t for t in types if t in rates],
            limit=limit,
            lease=timedelta(microseconds=lease),
            abandoned=ABANDONED,
        )

    def claim_done(
        self,
        rows: Sequence[Row],
        type_limits: Mapping[int, int] | None = None,
        rates: Mapping[int, Rate] | None = None,
    ) -> Claim:
        """Rows of (record..., due_at, now, types, their earliest PENDING next_attempt_at,
        rated types, their buckets as read); a lone row of NULLs but for those: nothing taken.
        What was held back, and next_due, are worked out as for every store (_bucket.py)."""
        first_row = rows[0]
        now = to_utc(first_row[11])
        now_us = to_micros("now", now)
        tasks = [Claimed(to_record(r), to_utc(r[10])) for r in rows if r[0] is not None]
        first = {
            int(t): to_utc(at)
            for t, at in zip(first_row[12], first_row[13], strict=True)
            if at is not None
        }
        leased = collections.Counter(c.record.type for c in tasks)
        rates = rates or {}
        full: dict[int, float | None] = {}
        for task_type, read in zip(first_row[14] or [], first_row[15] or [], strict=True):
            rate = rates[int(task_type)]
            full[int(task_type)] = take(read, now_us, rate, leased[int(task_type)])
        return claim_result(now, tasks, first, type_limits or {}, rates, full, leased)

    def rate_buckets(self, task_types: Collection[int]) -> Query:
        return self._query("rate_buckets", types=sorted(task_types))

    def settle(self, changes: Sequence[Change]) -> Query:
        if not changes:
            raise ValidationError("changes", "settle needs at least one change")
        for change in changes:
            check_state("state", change.state)
            if not 0 <= change.failed_attempts <= MAX_UINT32:
                raise ValidationError("failed_attempts", f"must be in 0..{MAX_UINT32}")
        return self._query(
            "settle",
            task_ids=[c.record.task_id.encode("utf-8") for c in changes],
            versions=[c.record.version for c in changes],
            states=[int(c.state) for c in changes],
            failed=[c.failed_attempts for c in changes],
            delays=[
                timedelta(microseconds=seconds_to_micros("delay", c.delay_seconds)) for c in changes
            ],
            kinds=[None if c.reason is None else _text(c.reason.kind) for c in changes],
            messages=[None if c.reason is None else _text(c.reason.message) for c in changes],
            channel=self.schema.channel,
        )

    def extend(self, records: Sequence[Record], lease_seconds: float) -> Query:
        lease = seconds_to_micros("lease", lease_seconds)
        return self._query(
            "extend",
            task_ids=[r.task_id.encode("utf-8") for r in records],
            versions=[r.version for r in records],
            lease=timedelta(microseconds=lease),
        )

    def flags_done(self, rows: Sequence[Row], size: int) -> list[bool]:
        """Per item, whether it was applied: rows name the 1-based positions that were."""
        applied = {int(row[0]) for row in rows}
        return [position in applied for position in range(1, size + 1)]

    # --- the lifecycle operations -------------------------------------------------------------

    def details_done(self, rows: Sequence[Row]) -> list[TaskDetails]:
        return [to_details(row) for row in rows]

    def inspect_done(self, task_id: str, row: Row | None) -> TaskDetails:
        if row is None:
            raise NotFoundError(f"task {task_id!r} not found")
        return to_details(row)

    def list_by_type(
        self,
        state: State,
        task_type: int,
        after: TypeCursor | None,
        limit: int,
        direction: Ordering,
    ) -> Query:
        known, checked_type, cursor = check_type_query(state, task_type, after, limit, direction)
        name: QueryName = "list_type_desc" if direction is Ordering.DESC else "list_type_asc"
        # The cursor's instant as the exact microsecond the checks read (a UTC datetime).
        at = None if cursor is None else from_micros(cursor[0])
        return self._query(
            name,
            state=int(known),
            type=checked_type,
            cursor_at=at,
            cursor_id=None if cursor is None else cursor[1].encode("utf-8"),
            limit=limit,
        )

    def by_ids(self, name: ByIds, task_ids: Sequence[str]) -> tuple[Query, list[str]]:
        """delete, cancel or retry of task ids (checked, repeats dropped), and those ids."""
        ids = check_task_ids(task_ids)
        params: dict[str, Any] = {"task_ids": [t.encode("utf-8") for t in ids]}
        if name == "delete":
            return Query("delete", self.schema.sql("delete"), params), ids
        cancel = name == "cancel"
        params |= {
            "from_state": int(State.PENDING if cancel else State.FAILED),
            "to_state": int(State.FAILED if cancel else State.PENDING),
            "reset_attempts": not cancel,
            "error_kind": CANCELLED.kind if cancel else None,
            "error_message": CANCELLED.message if cancel else None,
            "channel": self.schema.channel,
        }
        return Query("transition", self.schema.sql("transition"), params), ids

    def by_ids_done(self, name: ByIds, ids: Sequence[str], row: Row) -> int:
        """The count changed, or the error for the first task that stopped the operation."""
        position, state, count = row[:3]
        if position is not None:
            task_id = ids[position - 1]
            if state is None:
                raise NotFoundError(f"task {task_id!r} not found; nothing changed")
            raise state_error(name, task_id, State(state))
        return int(count)

    def retry_failed(self, task_type: int | None, limit: int) -> Query:
        if task_type is not None:
            check_uint32("type", task_type)
        return self._query(
            "retry_failed",
            type=task_type,
            limit=check_batch_limit(limit),
            channel=self.schema.channel,
        )

    def prune(self, confirmed_seconds: float, failed_seconds: float, limit: int) -> Query:
        confirmed = seconds_to_micros("confirmed", confirmed_seconds)
        failed = seconds_to_micros("failed", failed_seconds)
        return self._query(
            "prune",
            confirmed=timedelta(microseconds=confirmed) if confirmed else None,
            failed=timedelta(microseconds=failed) if failed else None,
            limit=check_batch_limit(limit),
        )

    def prune_done(self, row: Row) -> Pruned:
        return Pruned(confirmed=int(row[0]), failed=int(row[1]))

    def stats(self) -> Query:
        return self._query("stats")

    def stats_done(self, row: Row) -> Stats:
        now, pending, confirmed, failed, ready, oldest, due_types, due_counts = row
        return Stats(
            now=to_utc(now),
            pending=int(pending),
            confirmed=int(confirmed),
            failed=int(failed),
            ready=int(ready),
            oldest_ready_at=None if oldest is None else to_utc(oldest),
            ready_by_type=dict(zip(due_types or [], due_counts or [], strict=True)),
        )

    def count_by_type(self) -> Query:
        return self._query("count_by_type")

    def count_by_type_done(self, rows: Sequence[Row]) -> list[TypeCounts]:
        return [TypeCounts(int(t), int(p), int(c), int(f)) for t, p, c, f in rows]

    def beat(self, member: str, payload: bytes, forget_after_seconds: float) -> Query:
        forget_after = check_beat(member, payload, forget_after_seconds)
        return self._query(
            "beat",
            member=member.encode("utf-8", "surrogatepass"),
            payload=payload,
            forget_after=timedelta(microseconds=forget_after),
        )

    def beats(self, within_seconds: float, limit: int) -> Query:
        within = check_beats(within_seconds, limit)
        return self._query("beats", within=timedelta(microseconds=within), limit=limit)

    def beats_done(self, rows: Sequence[Row]) -> Presence:
        """Rows of (now, member, at, payload); a lone row of NULLs but now: nobody beat."""
        beats = [
            Beat(bytes(member).decode("utf-8", "surrogatepass"), to_utc(at), bytes(payload))
            for _, member, at, payload in rows
            if member is not None
        ]
        return Presence(to_utc(rows[0][0]), beats)

    def which_exist(self, task_ids: Collection[str]) -> Query:
        ids = [check_task_id(task_id).encode("utf-8") for task_id in task_ids]
        return self._query("which_exist", task_ids=ids)

    def which_exist_done(self, rows: Sequence[Row]) -> set[str]:
        return {bytes(row[0]).decode("utf-8") for row in rows}

    def server_facts(self) -> Query:
        return self._query("server_facts")

    def schema_version(self) -> Query:
        return self._query("schema_version")

    def settings_done(self, row: Row) -> tuple[str, str, str]:
        """server_version, fsync, synchronous_commit, as the server shows them."""
        version, fsync, synchronous_commit = row
        return str(version), str(fsync), str(synchronous_commit)

    def server_facts_done(self, row: Row) -> ServerFacts:
        """fsync off, or commits acknowledged before they reach the disk, may lose tasks."""
        version, fsync, synchronous_commit = row
        return ServerFacts(
            f"postgresql {version}", durable(fsync, synchronous_commit), "noeviction"
        )


def to_record(row: Row) -> Record:
    """A record from the first ten columns every statement returns it as."""
    task_id, task_type, data, reference_id, state, failed, next_at, created, id_, version = row[:10]
    return Record(
        bytes(task_id).decode("utf-8"),
        int(task_type),
        bytes(data),
        None if reference_id is None else bytes(reference_id).decode("utf-8"),
        State(state),
        int(failed),
        to_utc(next_at),
        to_utc(created),
        int(id_),
        int(version),
    )


def to_details(row: Row) -> TaskDetails:
    """A record and its last failure, from a row of the record's and the failure's columns."""
    kind, message, at, attempts = row[10:14]
    failure = None if kind is None else Failure(kind, message, to_utc(at), int(attempts))
    return TaskDetails(to_record(row), failure)


def _stored_as_sent(sent: Record, kept: Record) -> bool:
    """Whether kept is what put_all stores for sent (see Statements.put_all_recovered)."""
    same = (sent.type, sent.data, sent.reference_id) == (kept.type, kept.data, kept.reference_id)
    if sent.created_at is not None:
        same = same and to_utc(sent.created_at) == kept.created_at
    if kept.version != 1:  # claimed or settled since: its state and schedule are the worker's
        return same
    same = same and (int(sent.state), sent.failed_attempts) == (kept.state, kept.failed_attempts)
    if sent.next_attempt_at is not None:
        return same and to_utc(sent.next_attempt_at) == kept.next_attempt_at
    return same and kept.next_attempt_at == kept.created_at


def _utf8(text: str | None) -> bytes | None:
    return None if text is None else text.encode("utf-8")


def _text(text: str) -> str:
    r"""text as PostgreSQL's text can hold it: a NUL, which it cannot, is kept as the four
    characters \x00 (an exception's message may hold one; refusing it would leave the outcome
    unwritable)."""
    return text.replace("\x00", "\\x00")
