"""What an operator does to stored tasks, written once for every screen: the CLI's task
commands and the dashboard are thin views over this (as Sidekiq's CLI and Web UI sit on one API).

Each operation is bounded per store call whatever the number of tasks; bulk ones run in
batches. It talks to a store through its public API only (store.Store and store.Lifecycle), so
any backend that has those works; it never prints, parses arguments or knows about HTTP.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from store import (
    END_OF_TIME,
    Lifecycle,
    Ordering,
    State,
    Store,
    TaskDetails,
    TypeCursor,
    ValidationError,
)

__all__ = [
    "END_OF_TIME",
    "RETRY_ALL_BATCH",
    "Admin",
    "AdminStore",
    "Page",
    "TypeCursor",
    "TypePage",
]

# Tasks one retry_failed call moves: ~10 ms of Redis time at most.
RETRY_ALL_BATCH = 1000
MAX_PAGE = 10_000


class AdminStore(Store, Lifecycle, Protocol):
    """A store with the seed's contract and the lifecycle operations."""


@dataclass(frozen=True, slots=True)
class Page:
    """One page of tasks by id, and the cursor of the next (None: this was the last)."""

    tasks: list[TaskDetails]
    next_cursor: int | None


@dataclass(frozen=True, slots=True)
class TypePage:
    """One page of one type's tasks by next attempt, and where the next begins (None: this was
    the last)."""

    tasks: list[TaskDetails]
    next_after: TypeCursor | None


class Admin:
    """The operator's operations on one store."""

    def __init__(self, store: AdminStore) -> None:
        self._store = store

    async def task(self, task_id: str) -> TaskDetails:
        """A task and its last failure; NotFoundError if there is none."""
        return await self._store.inspect(task_id)

    async def page(
        self,
        state: State,
        *,
        ready_only: bool = False,
        cursor: int | None = None,
        limit: int = 50,
        descending: bool = False,
    ) -> Page:
        """Tasks of one state by id (only those due now with ready_only), after cursor."""
        _check_limit(limit)
        as_of = datetime.now(UTC) if ready_only else END_OF_TIME
        direction = Ordering.DESC if descending else Ordering.ASC
        tasks = await self._store.list_tasks(state, as_of, cursor, limit, direction)
        next_cursor = tasks[-1].record.id if len(tasks) == limit else None
        return Page(tasks, next_cursor)

    async def page_of_type(
        self,
        state: State,
        task_type: int,
        *,
        after: TypeCursor | None = None,
        limit: int = 50,
        descending: bool = False,
    ) -> TypePage:
        """Tasks of one state and one type by next attempt (then task id), after the cursor:
        the store's time index, so O(log N + limit) whatever the number of tasks."""
        _check_limit(limit)
        direction = Ordering.DESC if descending else Ordering.ASC
        tasks = await self._store.list_by_type(state, task_type, after, limit, direction)
        next_after = TypeCursor.after(tasks[-1].record) if len(tasks) == limit else None
        return TypePage(tasks, next_after)

    async def delete(self, task_ids: list[str]) -> int:
        """Delete the tasks (all, or none on an unknown id); how many."""
        return await self._store.delete(*task_ids)

    async def cancel(self, task_ids: list[str]) -> int:
        """PENDING tasks become FAILED ('cancelled'), all or none; how many."""
        return await self._store.cancel(*task_ids)

    async def retry(self, task_ids: list[str]) -> int:
        """FAILED tasks go back to PENDING, due now, all or none; how many."""
        return await self._store.retry(*task_ids)

    async def retry_all(self, task_type: int | None = None) -> int:
        """Every FAILED task (of task_type, or of any type) back to PENDING, due now, in
        batches of RETRY_ALL_BATCH; how many. It stops at the number that were FAILED when it
        began, so tasks that fail again meanwhile are not retried in a loop."""
        most = await self._store.count_by_state(State.FAILED)
        total = 0
        while total < most:
            batch = min(RETRY_ALL_BATCH, most - total)
            moved = await self._store.retry_failed(task_type, limit=batch)
            total += moved
            if moved < batch:
                break
        return total


def _check_limit(limit: int) -> None:
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_PAGE:
        raise ValidationError("limit", f"must be in 1..{MAX_PAGE}, got {limit!r}")
