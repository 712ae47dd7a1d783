"""What the dashboard shows and does, read from and written to the store's public API.

Every page and action of the dashboard goes through this one class, so the views never touch a
store method themselves and the web layer knows nothing of Redis. It must never write anything
but the one change an operator confirmed.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from store import (
    Beat,
    Change,
    NotFoundError,
    Ordering,
    Record,
    RedisStore,
    StaleVersionError,
    State,
    TypeCounts,
)
from store import Stats as StoreStats
from store.record import check_task_id
from worker.heartbeat import BEAT_SECONDS
from worker.web.throughput import Minute, Throughput

__all__ = [
    "LISTED_STATES",
    "Board",
    "NotApplicableError",
    "Overview",
    "Page",
    "PageQuery",
    "WorkerSeen",
]

# The latest instant a store can hold (2**53 microseconds after the epoch): "due or not".
_END_OF_TIME = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=2**53)
LISTED_STATES = {str(s): s for s in (State.PENDING, State.CONFIRMED, State.FAILED)}
# Workers that beat within this long are listed; past SILENT_AFTER without a beat, as silent.
WORKERS_WITHIN_SECONDS = 300.0
SILENT_AFTER = timedelta(seconds=3 * BEAT_SECONDS)


class NotApplicableError(Exception):
    """Raised when an action does not apply to a task as it stands (retrying a pending one)."""


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
    """One page of the task list: a state, a direction by id, where the last page ended."""

    state: State
    newest_first: bool
    after: int | None
    size: int


@dataclass(frozen=True, slots=True)
class Page:
    """The tasks of one page and the cursor of the next (None on the last page)."""

    tasks: list[Record]
    next_after: int | None


class Board:
    """The dashboard's view of one store namespace."""

    def __init__(self, store: RedisStore) -> None:
        self._store = store
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

    async def page(self, query: PageQuery) -> Page:
        direction = Ordering.DESC if query.newest_first else Ordering.ASC
        try:
            # One more than the page holds, to know whether a next page exists.
            tasks = await self._store.get_all_ready_by_state(
                query.state, _END_OF_TIME, query.after, query.size + 1, direction
            )
        except NotFoundError:
            tasks = []
        if len(tasks) > query.size:
            return Page(tasks[: query.size], tasks[query.size - 1].id)
        return Page(tasks, None)

    async def task(self, task_id: str) -> Record:
        """The task with this id; NotFoundError if there is none, ValidationError if the id
        cannot be one."""
        return await self._store.get_by_task_id(check_task_id(task_id))

    async def retry(self, task_id: str) -> Record:
        """Send a FAILED task back to PENDING, due now, its failures reset (as `retryd retry`)."""
        record = await self.task(task_id)
        if record.state is not State.FAILED:
            raise NotApplicableError(
                f"task {task_id!r} is {record.state}, not failed: only a failed task can be retried"
            )
        [applied] = await self._store.settle([Change(record, State.PENDING, 0, 0.0)])
        if not applied:
            raise StaleVersionError(
                f"task {task_id!r} changed while being retried; nothing was written"
            )
        return await self.task(task_id)


def _report(beat: Beat) -> dict[str, Any]:
    """A heartbeat's JSON report; {} for one this version cannot read."""
    try:
        report = json.loads(beat.payload)
    except ValueError:
        return {}
    return report if isinstance(report, dict) else {}
