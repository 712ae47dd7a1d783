"""MemoryStore: the reference implementation of the Store contract, in one process's memory.

It defines the contract's behaviour in the plainest code we can write; RedisStore must agree with
it operation for operation (tests/store/test_stateful.py drives both at once). Use it in tests of
applications that produce tasks. It is not shared between processes and keeps nothing on exit.
"""

from __future__ import annotations

from datetime import UTC, datetime

from store.errors import ExistsError, NotFoundError, StaleVersionError
from store.protocol import DEFAULT_MAX_DATA_BYTES, check_batch, check_query, check_update
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

__all__ = ["MemoryStore"]


class MemoryStore:
    """A Store kept in a dict; every method returns or keeps copies, never shared objects."""

    def __init__(self, *, max_data_bytes: int = DEFAULT_MAX_DATA_BYTES) -> None:
        self._records: dict[str, Record] = {}
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
        if not ready:
            raise NotFoundError(f"no {state} task is ready as of {as_of.isoformat()}")
        return [r.clone() for r in ready[:limit]]

    async def count_by_state(self, state: State) -> int:
        state = check_state("state", state)
        return sum(1 for r in self._records.values() if r.state == state)


def _now() -> datetime:
    return datetime.now(UTC)
