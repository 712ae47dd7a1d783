"""What the dashboard shows and does: the admin layer's operations, and the store's counts.

Every page and action of the dashboard goes through this one class. Actions and task listings
are the admin layer's (worker/admin.py, the same operations as the CLI's); the overview's
counts, per-type counts and heartbeats are read through the store's public API. The views never
touch a store, and this class writes nothing but the one change an operator confirmed.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from store import Beat, State, TaskDetails, TypeCounts, TypeCursor, WorkerStore
from store import Stats as StoreStats
from worker.admin import Admin
from worker.heartbeat import BEAT_SECONDS
from worker.web.throughput import Minute, Throughput

__all__ = [
    "ACTIONS",
    "LISTED_STATES",
    "Board",
    "Overview",
    "Page",
    "PageQuery",
    "WorkerSeen",
]

LISTED_STATES = {str(s): s for s in (State.PENDING, State.CONFIRMED, State.FAILED)}
# The actions on one task, and the state each applies to (None: any state).
ACTIONS: dict[str, State | None] = {
    "retry": State.FAILED,
    "cancel": State.PENDING,
    "delete": None,
}
# Workers that beat within this long are listed; past SILENT_AFTER without a beat, as silent.
WORKERS_WITHIN_SECONDS = 300.0
SILENT_AFTER = timedelta(seconds=3 * BEAT_SECONDS)


@dataclass(frozen=True, slots=True)
class WorkerSeen:
    """A worker process as its latest heartbeat described it."""

    worker_id: str
    last_beat: datetime
    silent: bool
    report: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Overview:
    """The overview page's facts, and how long Redis took to give them."""

    stats: StoreStats
    by_type: list[TypeCounts]
    workers: list[WorkerSeen]
    minutes: list[Minute]
    redis_seconds: float

    @property
    def oldest_ready_age(self) -> timedelta | None:
        if self.stats.oldest_ready_at is None:
            return None
        return max(self.stats.now - self.stats.oldest_ready_at, timedelta(0))


@dataclass(frozen=True, slots=True)
class PageQuery:
    """One page of the task list: a state, a direction, where the last page ended. Without a
    type it is by id (after: an id); with one, by next attempt (after_due: that order's cursor,
    the store's per-type time index)."""

    state: State
    newest_first: bool
    after: int | None
    size: int
    task_type: int | None = None
    after_due: TypeCursor | None = None

    @property
    def resumed(self) -> bool:
        """Whether this is a later page (not the first)."""
        return self.after is not None or self.after_due is not None


@dataclass(frozen=True, slots=True)
class Page:
    """The tasks of one page and the cursor of the next (None on the last page): an id, or
    for a page of one type, a cursor by next attempt. types: the types the store knows, for
    the page's type filter."""

    tasks: list[TaskDetails]
    next_after: int | None
    next_after_due: TypeCursor | None = None
    types: list[int] = field(default_factory=list)


class Board:
    """The dashboard's view of one store namespace."""

    def __init__(self, store: WorkerStore) -> None:
        self._store = store
        self._admin = Admin(store)
        self._throughput = Throughput()

    async def overview(self) -> Overview:
        started = asyncio.get_running_loop().time()
        stats = await self._store.stats()
        by_type = await self._store.count_by_type()
        workers = await self.sample_workers()
        took = asyncio.get_running_loop().time() - started
        return Overview(stats, by_type, workers, self._throughput.minutes(stats.now), took)

    async def sample_workers(self) -> list[WorkerSeen]:
        """The workers seen lately; their run counts feed the throughput chart."""
        presence = await self._store.beats(within_seconds=WORKERS_WITHIN_SECONDS)
        seen = []
        for beat in presence.beats:
            report = _report(beat)
            runs = report.get("runs")
            if isinstance(runs, dict):
                self._throughput.observe(beat.member, beat.at, runs)
            silent = presence.now - beat.at > SILENT_AFTER
            seen.append(WorkerSeen(beat.member, beat.at, silent, report))
        return seen

    async def failed_of_type(self, task_type: int | None) -> int:
        """How many FAILED tasks there are of task_type (of every type with None)."""
        if task_type is None:
            return (await self._store.stats()).failed
        counts = {c.type: c.failed for c in await self._store.count_by_type()}
        return counts.get(task_type, 0)

    async def page(self, query: PageQuery) -> Page:
        types = sorted(c.type for c in await self._store.count_by_type())
        if query.task_type is not None:
            return await self._page_of_type(query, query.task_type, types)
        # One more than the page holds, to know whether a next page exists.
        page = await self._admin.page(
            query.state, cursor=query.after, limit=query.size + 1, descending=query.newest_first
        )
        tasks = page.tasks
        if len(tasks) > query.size:
            return Page(tasks[: query.size], tasks[query.size - 1].record.id, types=types)
        return Page(tasks, None, types=types)

    async def _page_of_type(self, query: PageQuery, task_type: int, types: list[int]) -> Page:
        page = await self._admin.page_of_type(
            query.state,
            task_type,
            after=query.after_due,
            limit=query.size + 1,
            descending=query.newest_first,
        )
        tasks = page.tasks
        if len(tasks) > query.size:
            last = tasks[query.size - 1].record
            return Page(tasks[: query.size], None, TypeCursor.after(last), types)
        return Page(tasks, None, None, types)

    async def task(self, task_id: str) -> TaskDetails:
        """The task and its last failure; NotFoundError if there is none, ValidationError if
        the id cannot be one."""
        return await self._admin.task(task_id)

    async def act(self, action: str, task_id: str) -> None:
        """retry, cancel or delete one task, as the CLI does; NotFoundError or StateError (and
        nothing written) when it does not apply."""
        operations = {
            "retry": self._admin.retry,
            "cancel": self._admin.cancel,
            "delete": self._admin.delete,
        }
        await operations[action]([task_id])

    async def retry_all(self, task_type: int | None) -> int:
        """Every FAILED task of task_type (or of every type) back to PENDING; how many."""
        return await self._admin.retry_all(task_type)


def _report(beat: Beat) -> dict[str, Any]:
    """A heartbeat's JSON report; {} for one this version cannot read."""
    try:
        report = json.loads(beat.payload)
    except ValueError:
        return {}
    return report if isinstance(report, dict) else {}
