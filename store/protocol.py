"""The Store contract (the seed's Go interface, in async Python) and the checks both stores share.

The shared checks live here so that MemoryStore and RedisStore refuse exactly the same input with
exactly the same messages: the contract suite runs one set of tests against both.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Protocol

from store.errors import ExistsError, StateError, ValidationError
from store.lifecycle import Pruned, TaskDetails
from store.record import Ordering, Record, State, check_state, check_task_id, to_micros

__all__ = ["DEFAULT_MAX_DATA_BYTES", "Lifecycle", "Store"]

DEFAULT_MAX_DATA_BYTES = 1024 * 1024


class Store(Protocol):
    """Keeps task records; every method is a coroutine."""

    async def put_all(self, *records: Record) -> None:
        """Store every record or none; fills in id, version, created_at and next_attempt_at."""

    async def update(self, record: Record) -> None:
        """Write state, failed_attempts and next_attempt_at if the version still matches."""

    async def get_by_task_id(self, task_id: str) -> Record:
        """Return a copy of the record with this task id, or raise NotFoundError."""

    async def get_all_ready_by_state(
        self,
        state: State,
        as_of: datetime,
        cursor: int | None = None,
        limit: int = 100,
        direction: Ordering = Ordering.ASC,
    ) -> list[Record]:
        """Return a page of records in state due at or before as_of, ordered by id."""

    async def count_by_state(self, state: State) -> int:
        """Return how many records are in state."""


class Lifecycle(Protocol):
    """What an operator (CLI, dashboard) and the worker's pruner do to stored tasks, beyond the
    seed's contract; every method is a coroutine. Each either applies to all the task ids it is
    given or, on bad input, raises and writes nothing: NotFoundError (an unknown id),
    StateError (a task in a state the operation does not apply to), ValidationError."""

    async def list_tasks(
        self,
        state: State,
        as_of: datetime,
        cursor: int | None = None,
        limit: int = 100,
        direction: Ordering = Ordering.ASC,
    ) -> list[TaskDetails]:
        """get_all_ready_by_state's page (same order, cursor, directions), each record with its
        last failure; [] when the page is empty. Bounded work per server call."""

    async def inspect(self, task_id: str) -> TaskDetails:
        """The task's record and its last failure; NotFoundError if there is no such task."""

    async def delete(self, *task_ids: str) -> int:
        """Delete the tasks and all kept for them (their ids may be put again); the count."""

    async def cancel(self, *task_ids: str) -> int:
        """PENDING tasks become FAILED now, last failure kind 'Cancelled', message 'cancelled',
        version + 1 (so a run in progress has its outcome refused); the count."""

    async def retry(self, *task_ids: str) -> int:
        """FAILED tasks go back to PENDING, due now, failed_attempts 0; the count."""

    async def retry_failed(self, task_type: int | None = None, *, limit: int = 1000) -> int:
        """One batch of at most limit (1..100000) FAILED tasks, of task_type or of any type,
        sent back as retry does; the count (fewer than limit: none was left)."""

    async def prune(
        self, *, confirmed_seconds: float, failed_seconds: float, limit: int = 100
    ) -> Pruned:
        """Delete at most limit CONFIRMED / FAILED tasks whose next_attempt_at (the instant
        they finished) is at or before now minus that state's retention; 0 keeps the state
        forever. Atomic per call, so any number of workers may prune at once."""


def check_batch(records: Sequence[Record], max_data_bytes: int) -> None:
    """Refuse a put_all batch that no store may accept, before anything is written."""
    if not records:
        raise ValidationError("records", "put_all needs at least one record")
    seen: set[str] = set()
    for record in records:
        if not isinstance(record, Record):
            raise ValidationError("records", f"expected Record, got {type(record).__name__}")
        record.validate()
        check_data_size(record.data, max_data_bytes)
        if record.id > 0:
            raise ExistsError(f"task {record.task_id!r} already has id {record.id}")
        if record.task_id in seen:
            raise ExistsError(f"task {record.task_id!r} is repeated in the batch")
        seen.add(record.task_id)


def check_data_size(data: bytes, max_data_bytes: int) -> None:
    """Refuse data larger than the store's cap (a task record is not a blob store)."""
    if len(data) > max_data_bytes:
        raise ValidationError(
            "data", f"is {len(data)} bytes, more than max_data_bytes ({max_data_bytes})"
        )


def check_update(record: Record) -> int:
    """Validate a record for update and return its next_attempt_at in microseconds."""
    if not isinstance(record, Record):
        raise ValidationError("record", f"expected Record, got {type(record).__name__}")
    record.validate()
    if record.next_attempt_at is None:
        raise ValidationError("next_attempt_at", "is required to update a task")
    return to_micros("next_attempt_at", record.next_attempt_at)


def check_query(
    state: object, as_of: object, cursor: object, limit: object, direction: object
) -> tuple[State, int]:
    """Validate get_all_ready_by_state's arguments; return the state and as_of in microseconds."""
    known = check_state("state", state)
    as_of_micros = to_micros("as_of", as_of)
    if cursor is not None and (isinstance(cursor, bool) or not isinstance(cursor, int)):
        raise ValidationError("cursor", f"must be an int id or None, got {cursor!r}")
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise ValidationError("limit", f"must be an int of at least 1, got {limit!r}")
    if not isinstance(direction, Ordering):
        raise ValidationError("direction", f"must be an Ordering, got {direction!r}")
    return known, as_of_micros


# The state each state-changing operation applies to, for naming it in a StateError.
_APPLIES_TO = {"cancel": State.PENDING, "retry": State.FAILED}


def state_error(operation: str, task_id: str, state: State) -> StateError:
    """The error for an operation that does not apply to a task in state (one text for all
    stores)."""
    needed = _APPLIES_TO[operation]
    return StateError(
        f"task {task_id!r} is {state}, not {needed}: only a {needed} task can be "
        f"{'cancelled' if operation == 'cancel' else 'retried'}; nothing changed"
    )


def check_task_ids(task_ids: Sequence[str]) -> list[str]:
    """The task ids of a delete, cancel or retry: at least one, each valid, repeats dropped."""
    if isinstance(task_ids, str) or not task_ids:
        raise ValidationError("task_ids", "give at least one task id")
    return list(dict.fromkeys(check_task_id(t) for t in task_ids))
