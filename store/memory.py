"""MemoryStore: the reference implementation of Store and WorkerStore, in one process's memory.

It defines the contracts' behaviour in the plainest code we can write; RedisStore must agree with
it operation for operation (tests/store/test_stateful.py and test_worker_contract.py). Use it in
tests of applications that produce tasks, and to run a Worker without a server
(tests/worker/test_worker_memory.py). It is not shared between processes and keeps nothing on exit.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Collection, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Self

from store._bucket import claim_result, current, take, tokens
from store.errors import ExistsError, NotFoundError, StaleVersionError
from store.lifecycle import CANCELLED, Failure, Pruned, Reason, TaskDetails, TypeCursor
from store.presence import Beat, Presence, TypeCounts
from store.protocol import (
    DEFAULT_MAX_DATA_BYTES,
    Wakeups,
    check_batch,
    check_batch_limit,
    check_beat,
    check_beats,
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

__all__ = ["MemoryStore"]

# The last failure claim records for a lease that ran out (claim.lua writes the same text).
_LEASE_EXPIRED = (
    "the lease ran out without an outcome: the worker that held it stopped or lost Redis"
)


class MemoryStore:
    """A Store kept in a dict; every method returns or keeps copies, never shared objects."""

    def __init__(self, *, max_data_bytes: int = DEFAULT_MAX_DATA_BYTES) -> None:
        self._records: dict[str, Record] = {}
        self._errors: dict[str, Failure] = {}  # task id -> its last failure
        self._last_id = 0
        self._max_data_bytes = max_data_bytes
        # Task ids under a lease (Redis keeps this as a flag in the packed record).
        self._leased: set[str] = set()
        self._subscribers: set[asyncio.Event] = set()
        self._beats: dict[str, tuple[datetime, bytes]] = {}  # member -> its last beat
        # Task type -> the instant (µs) its start-rate bucket is full again (store/_bucket.py).
        self._buckets: dict[int, float] = {}

    async def aclose(self) -> None:
        """Nothing to release: the records stay, for whoever holds the store."""

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def put_all(self, *records: Record) -> None:
        check_batch(records, self._max_data_bytes)
        for record in records:
            if record.task_id in self._records:
                raise ExistsError(f"task {record.task_id!r} already exists")
        now = _now()
        for record in records:
            self._last_id += 1
            stored = record.clone()
            stored.id = self._last_id
            stored.version = 1
            stored.created_at = to_utc(record.created_at) if record.created_at else now
            stored.next_attempt_at = (
                to_utc(record.next_attempt_at) if record.next_attempt_at else stored.created_at
            )
            self._records[record.task_id] = stored
            stored.copy_to(record)
        if any(r.state is State.PENDING and _at_or_before(r.next_attempt_at, now) for r in records):
            self._wake()

    async def update(self, record: Record) -> None:
        next_attempt_micros = check_update(record)
        stored = self._records.get(record.task_id)
        if stored is None or stored.version != record.version:
            raise StaleVersionError(f"task {record.task_id!r} is not at version {record.version}")
        stored.state = State(record.state)
        stored.failed_attempts = record.failed_attempts
        stored.next_attempt_at = from_micros(next_attempt_micros)
        stored.version += 1
        self._leased.discard(record.task_id)
        stored.copy_to(record)

    async def get_by_task_id(self, task_id: str) -> Record:
        check_task_id(task_id)
        stored = self._records.get(task_id)
        if stored is None:
            raise NotFoundError(f"task {task_id!r} not found")
        return stored.clone()

    async def get_all_ready_by_state(
        self,
        state: State,
        as_of: datetime,
        cursor: int | None = None,
        limit: int = 100,
        direction: Ordering = Ordering.ASC,
    ) -> list[Record]:
        page = await self.list_tasks(state, as_of, cursor, limit, direction)
        if not page:
            raise NotFoundError(f"no {State(state)} task is ready as of {as_of.isoformat()}")
        return [row.record for row in page]

    async def list_tasks(
        self,
        state: State,
        as_of: datetime,
        cursor: int | None = None,
        limit: int = 100,
        direction: Ordering = Ordering.ASC,
    ) -> list[TaskDetails]:
        state, as_of_micros = check_query(state, as_of, cursor, limit, direction)
        descending = direction is Ordering.DESC
        ready = [
            r
            for r in self._records.values()
            if r.state == state
            and to_micros("next_attempt_at", r.next_attempt_at) <= as_of_micros
            and (cursor is None or (r.id < cursor if descending else r.id > cursor))
        ]
        ready.sort(key=lambda r: r.id, reverse=descending)
        return [TaskDetails(r.clone(), self._errors.get(r.task_id)) for r in ready[:limit]]

    async def list_by_type(
        self,
        state: State,
        task_type: int,
        after: TypeCursor | None = None,
        limit: int = 100,
        direction: Ordering = Ordering.ASC,
    ) -> list[TaskDetails]:
        state, task_type, cursor = check_type_query(state, task_type, after, limit, direction)
        descending = direction is Ordering.DESC
        rows = sorted(
            (
                (_time_order(r), r)
                for r in self._records.values()
                if r.state == state and r.type == task_type
            ),
            key=lambda row: row[0],
        )
        if descending:
            rows.reverse()
        if cursor is not None:
            past = _past([key for key, _ in rows], cursor, descending)
            rows = [(key, r) for key, r in rows if past(key)]
        return [TaskDetails(r.clone(), self._errors.get(r.task_id)) for _, r in rows[:limit]]

    async def inspect(self, task_id: str) -> TaskDetails:
        record = await self.get_by_task_id(task_id)
        return TaskDetails(record, self._errors.get(task_id))

    async def delete(self, *task_ids: str) -> int:
        ids = self._existing(task_ids)
        for task_id in ids:
            self._drop(task_id)
        return len(ids)

    async def cancel(self, *task_ids: str) -> int:
        ids = self._existing(task_ids, State.PENDING, "cancel")
        now = _now()
        for task_id in ids:
            stored = self._records[task_id]
            stored.state, stored.next_attempt_at = State.FAILED, now
            stored.version += 1
            self._leased.discard(task_id)
            self._errors[task_id] = Failure(
                CANCELLED.kind, CANCELLED.message, now, stored.failed_attempts
            )
        return len(ids)

    async def retry(self, *task_ids: str) -> int:
        ids = self._existing(task_ids, State.FAILED, "retry")
        for task_id in ids:
            self._send_back(self._records[task_id])
        self._wake()
        return len(ids)

    async def retry_failed(self, task_type: int | None = None, *, limit: int = 1000) -> int:
        if task_type is not None:
            check_uint32("type", task_type)
        check_batch_limit(limit)
        failed = [
            r
            for r in self._records.values()
            if r.state is State.FAILED and task_type in (None, r.type)
        ]
        failed.sort(key=lambda r: to_micros("next_attempt_at", r.next_attempt_at))
        for record in failed[:limit]:
            self._send_back(record)
        if failed:
            self._wake()
        return len(failed[:limit])

    async def prune(
        self, *, confirmed_seconds: float, failed_seconds: float, limit: int = 100
    ) -> Pruned:
        keep = {State.CONFIRMED: confirmed_seconds, State.FAILED: failed_seconds}
        for name, seconds in zip(("confirmed", "failed"), keep.values(), strict=True):
            seconds_to_micros(name, seconds)
        check_batch_limit(limit)
        now, pruned = _now(), {State.CONFIRMED: 0, State.FAILED: 0}
        for state, seconds in keep.items():
            cutoff = now - timedelta(seconds=seconds)
            old = [
                r.task_id
                for r in self._records.values()
                if seconds
                and r.state is state
                and r.next_attempt_at
                and r.next_attempt_at <= cutoff
            ]
            for task_id in old[: limit - sum(pruned.values())]:
                self._drop(task_id)
                pruned[state] += 1
        return Pruned(confirmed=pruned[State.CONFIRMED], failed=pruned[State.FAILED])

    def _existing(
        self, task_ids: tuple[str, ...], state: State | None = None, operation: str = ""
    ) -> list[str]:
        """The task ids, each stored (and in state, if given); else raise, changing nothing."""
        ids = check_task_ids(task_ids)
        for task_id in ids:
            stored = self._records.get(task_id)
            if stored is None:
                raise NotFoundError(f"task {task_id!r} not found; nothing changed")
            if state is not None and stored.state is not state:
                raise state_error(operation, task_id, stored.state)
        return ids

    def _drop(self, task_id: str) -> None:
        del self._records[task_id]
        self._errors.pop(task_id, None)
        self._leased.discard(task_id)

    def _send_back(self, stored: Record) -> None:
        stored.state, stored.failed_attempts = State.PENDING, 0
        stored.next_attempt_at = _now()
        stored.version += 1
        self._leased.discard(stored.task_id)

    async def count_by_state(self, state: State) -> int:
        state = check_state("state", state)
        return sum(1 for r in self._records.values() if r.state == state)

    async def claim(
        self,
        max_attempts: Mapping[int, int],
        *,
        limit: int,
        lease_seconds: float,
        type_limits: Mapping[int, int] | None = None,
        rates: Mapping[int, Rate] | None = None,
    ) -> Claim:
        lease_micros = check_claim(max_attempts, limit, lease_seconds, type_limits, rates)
        lease = timedelta(microseconds=lease_micros)
        caps, rates = dict(type_limits or {}), dict(rates or {})
        now = _now()
        now_us = to_micros("now", now)
        # What each type may lease in this claim: its own cap, then its bucket's whole tokens.
        room = {t: min(limit, caps.get(t, limit)) for t in max_attempts}
        full = {t: current(self._buckets.get(t), now_us, rate) for t, rate in rates.items()}
        for task_type, rate in rates.items():
            room[task_type] = min(room[task_type], tokens(full[task_type], now_us, rate))
        due = sorted(
            (r for r in self._pending(max_attempts) if _at_or_before(r.next_attempt_at, now)),
            key=lambda r: (r.next_attempt_at, r.task_id),
        )
        taken: dict[int, list[Record]] = {t: [] for t in max_attempts}
        for stored in due:
            if len(taken[stored.type]) < room[stored.type]:
                taken[stored.type].append(stored)
        candidates = sorted(
            (r for batch in taken.values() for r in batch),
            key=lambda r: (r.next_attempt_at, r.task_id),
        )[:limit]
        tasks = []
        leased = dict.fromkeys(max_attempts, 0)
        for stored in candidates:
            due_at = stored.next_attempt_at
            assert due_at is not None, "a stored record always has next_attempt_at"
            if self._lease(stored, max_attempts[stored.type], now, lease):
                tasks.append(Claimed(stored.clone(), due_at))
                leased[stored.type] += 1
        for task_type, rate in rates.items():
            # Kept as this claim read it (current: no emptier than empty), less what it took.
            spent = take(full[task_type], now_us, rate, leased[task_type])
            full[task_type] = self._buckets[task_type] = spent
        first: dict[int, datetime] = {}
        for r in self._pending(max_attempts):
            assert r.next_attempt_at is not None
            if r.type not in first or r.next_attempt_at < first[r.type]:
                first[r.type] = r.next_attempt_at
        return claim_result(now, tasks, first, caps, rates, full, leased)

    def _pending(self, max_attempts: Mapping[int, int]) -> list[Record]:
        return [
            r for r in self._records.values() if r.state is State.PENDING and r.type in max_attempts
        ]

    def _lease(self, stored: Record, max_attempts: int, now: datetime, lease: timedelta) -> bool:
        """Lease one due task, or fail it when its abandoned leases used up its attempts (as
        claim.lua: a task still leased when claimed again was abandoned by a crashed worker)."""
        stored.version += 1
        if stored.task_id in self._leased:
            stored.failed_attempts += 1
            self._errors[stored.task_id] = Failure(
                "LeaseExpired", _LEASE_EXPIRED, now, stored.failed_attempts
            )
        if stored.failed_attempts >= max_attempts:
            stored.state, stored.next_attempt_at = State.FAILED, now
            self._leased.discard(stored.task_id)
            return False
        stored.next_attempt_at = now + lease
        self._leased.add(stored.task_id)
        return True

    async def settle(self, changes: Sequence[Change]) -> list[bool]:
        check_changes(changes)
        now = _now()
        applied, wake = [], False
        for change in changes:
            stored = self._records.get(change.record.task_id)
            if stored is None or stored.version != change.record.version:
                applied.append(False)
                continue
            stored.state = State(change.state)
            stored.failed_attempts = change.failed_attempts
            stored.next_attempt_at = now + _seconds(change.delay_seconds)
            stored.version += 1
            self._leased.discard(stored.task_id)
            if change.reason is not None:
                reason = Reason.of(change.reason.kind, change.reason.message)
                self._errors[stored.task_id] = Failure(
                    reason.kind, reason.message, now, change.failed_attempts
                )
            applied.append(True)
            wake = wake or (stored.state is State.PENDING and change.delay_seconds == 0)
        if wake:
            self._wake()
        return applied

    async def extend(self, records: Sequence[Record], *, lease_seconds: float) -> list[bool]:
        lease = timedelta(microseconds=seconds_to_micros("lease", lease_seconds))
        now = _now()
        held = []
        for record in records:
            stored = self._records.get(record.task_id)
            holds = (
                stored is not None
                and stored.version == record.version
                and stored.state is State.PENDING
                and record.task_id in self._leased
            )
            if stored is not None and holds:
                stored.next_attempt_at = now + lease
            held.append(holds)
        return held

    async def stats(self) -> Stats:
        now = _now()
        counts = dict.fromkeys(State, 0)
        ready: list[datetime] = []
        ready_by_type: dict[int, int] = {}
        for r in self._records.values():
            counts[r.state] += 1
            if r.state is State.PENDING and _at_or_before(r.next_attempt_at, now):
                assert r.next_attempt_at is not None
                ready.append(r.next_attempt_at)
                ready_by_type[r.type] = ready_by_type.get(r.type, 0) + 1
        return Stats(
            now=now,
            pending=counts[State.PENDING],
            confirmed=counts[State.CONFIRMED],
            failed=counts[State.FAILED],
            ready=len(ready),
            oldest_ready_at=min(ready, default=None),
            ready_by_type=ready_by_type,
        )

    @contextlib.asynccontextmanager
    async def wakeups(self) -> AsyncIterator[Wakeups]:
        event = asyncio.Event()
        self._subscribers.add(event)
        try:
            yield _EventWakeups(event)
        finally:
            self._subscribers.discard(event)

    def _wake(self) -> None:
        for event in self._subscribers:
            event.set()

    async def count_by_type(self) -> list[TypeCounts]:
        counts: dict[int, list[int]] = {}
        for r in self._records.values():
            counts.setdefault(r.type, [0, 0, 0])[int(r.state) - 1] += 1
        return [TypeCounts(t, *c) for t, c in sorted(counts.items())]

    async def beat(self, member: str, payload: bytes, *, forget_after_seconds: float) -> datetime:
        forget_after = timedelta(microseconds=check_beat(member, payload, forget_after_seconds))
        now = _now()
        self._beats[member] = (now, payload)
        for silent in [m for m, (at, _) in self._beats.items() if at < now - forget_after]:
            del self._beats[silent]
        return now

    async def beats(self, *, within_seconds: float, limit: int = 1000) -> Presence:
        within = timedelta(microseconds=check_beats(within_seconds, limit))
        now = _now()
        recent = [Beat(m, at, p) for m, (at, p) in self._beats.items() if at >= now - within]
        recent.sort(key=lambda b: b.at, reverse=True)
        return Presence(now, recent[:limit])

    async def which_exist(self, task_ids: Collection[str]) -> set[str]:
        return {check_task_id(task_id) for task_id in task_ids} & self._records.keys()

    async def server_facts(self) -> ServerFacts:
        return ServerFacts(version="memory", persistent=False, eviction_policy="noeviction")


class _EventWakeups:
    """Wakeups of one subscriber: set by the store, cleared by the waiter."""

    def __init__(self, event: asyncio.Event) -> None:
        self._event = event

    async def wait(self) -> None:
        await self._event.wait()
        self._event.clear()


def _time_order(record: Record) -> tuple[int, bytes]:
    """A record's place in its time index: next_attempt_at, then id bytewise (Redis's order)."""
    return to_micros("next_attempt_at", record.next_attempt_at), record.task_id.encode()


def _past(
    keys: list[tuple[int, bytes]], cursor: tuple[int, str], descending: bool
) -> Callable[[tuple[int, bytes]], bool]:
    """Whether a key lies past cursor: past the cursor's task while it is still where the
    cursor saw it, otherwise past the cursor's instant (as list_type.lua resumes)."""
    exact = (cursor[0], cursor[1].encode())
    if exact in keys:
        return (lambda key: key < exact) if descending else (lambda key: key > exact)
    if descending:
        return lambda key: key[0] < exact[0]
    return lambda key: key[0] > exact[0]


def _at_or_before(moment: datetime | None, now: datetime) -> bool:
    return moment is not None and moment <= now


def _seconds(seconds: float) -> timedelta:
    return timedelta(microseconds=seconds_to_micros("delay", seconds))


def _now() -> datetime:
    return datetime.now(UTC)
