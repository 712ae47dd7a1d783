"""MemoryStore: the reference implementation of the Store contract, in one process's memory.

It defines the contract's behaviour in the plainest code we can write; RedisStore must agree with
it operation for operation (tests/store/test_stateful.py drives both at once). Use it in tests of
applications that produce tasks. It is not shared between processes and keeps nothing on exit.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from store.errors import ExistsError, NotFoundError, StaleVersionError, ValidationError
from store.lifecycle import Failure, Pruned, TaskDetails
from store.protocol import (
    DEFAULT_MAX_DATA_BYTES,
    check_batch,
    check_query,
    check_task_ids,
    check_update,
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

__all__ = ["MemoryStore"]


class MemoryStore:
    """A Store kept in a dict; every method returns or keeps copies, never shared objects."""

    def __init__(self, *, max_data_bytes: int = DEFAULT_MAX_DATA_BYTES) -> None:
        self._records: dict[str, Record] = {}
        self._errors: dict[str, Failure] = {}  # task id -> its last failure
        self._last_id = 0
        self._max_data_bytes = max_data_bytes

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

    async def update(self, record: Record) -> None:
        next_attempt_micros = check_update(record)
        stored = self._records.get(record.task_id)
        if stored is None or stored.version != record.version:
            raise StaleVersionError(f"task {record.task_id!r} is not at version {record.version}")
        stored.state = State(record.state)
        stored.failed_attempts = record.failed_attempts
        stored.next_attempt_at = from_micros(next_attempt_micros)
        stored.version += 1
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
            self._errors[task_id] = Failure("Cancelled", "cancelled", now, stored.failed_attempts)
        return len(ids)

    async def retry(self, *task_ids: str) -> int:
        ids = self._existing(task_ids, State.FAILED, "retry")
        for task_id in ids:
            self._send_back(self._records[task_id])
        return len(ids)

    async def retry_failed(self, task_type: int | None = None, *, limit: int = 1000) -> int:
        if task_type is not None:
            _check_limit("type", task_type, MAX_UINT32)
        _check_limit("limit", limit, 100_000)
        failed = [
            r
            for r in self._records.values()
            if r.state is State.FAILED and task_type in (None, r.type)
        ]
        failed.sort(key=lambda r: to_micros("next_attempt_at", r.next_attempt_at))
        for record in failed[:limit]:
            self._send_back(record)
        return len(failed[:limit])

    async def prune(
        self, *, confirmed_seconds: float, failed_seconds: float, limit: int = 100
    ) -> Pruned:
        keep = {State.CONFIRMED: confirmed_seconds, State.FAILED: failed_seconds}
        for name, seconds in zip(("confirmed", "failed"), keep.values(), strict=True):
            _check_seconds(name, seconds)
        _check_limit("limit", limit, 100_000)
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

    @staticmethod
    def _send_back(stored: Record) -> None:
        stored.state, stored.failed_attempts = State.PENDING, 0
        stored.next_attempt_at = _now()
        stored.version += 1

    async def count_by_state(self, state: State) -> int:
        state = check_state("state", state)
        return sum(1 for r in self._records.values() if r.state == state)


def _now() -> datetime:
    return datetime.now(UTC)


def _check_limit(field: str, value: object, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= high:
        raise ValidationError(field, f"must be an int in 1..{high}, got {value!r}")


def _check_seconds(field: str, seconds: object) -> None:
    if isinstance(seconds, bool) or not isinstance(seconds, int | float) or not seconds >= 0:
        raise ValidationError(field, f"must be a number of seconds >= 0, got {seconds!r}")
