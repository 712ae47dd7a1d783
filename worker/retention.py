"""The pruner: deletes finished tasks past their retention, in small slices, from every worker.

Each slice is one atomic store call deleting at most SLICE tasks (~1 ms of Redis time), so
pruning never holds Redis for long, and any number of workers prune at once without
coordination: two slices never delete the same task, and each worker counts only what it
deleted (retryd_tasks_pruned_total{state}). It only ever calls the store's public prune.
"""

from __future__ import annotations

import asyncio
import random

import structlog

from store import Lifecycle, Pruned
from worker.config import RetentionSettings
from worker.metrics import WorkerMetrics

__all__ = ["SLICE", "Pruner"]

log = structlog.get_logger("retryd.retention")

# Tasks one prune call deletes at most: each costs a few Redis commands inside the script.
SLICE = 100
# Slices one round runs at most before it waits for the next: a backlog (a lowered retention,
# a worker that was down) is worked off over several rounds instead of in one burst.
MAX_SLICES_PER_ROUND = 100


class Pruner:
    """Runs prune rounds every interval (jittered) until cancelled."""

    def __init__(
        self, store: Lifecycle, settings: RetentionSettings, metrics: WorkerMetrics
    ) -> None:
        self._store = store
        self._settings = settings
        self._metrics = metrics

    @property
    def enabled(self) -> bool:
        return bool(self._settings.confirmed or self._settings.failed)

    async def run(self) -> None:
        """Prune forever; a failed round (Redis away) is logged and tried again next round."""
        while self.enabled:
            try:
                await self.round()
            except Exception as error:  # whatever it is, pruning must never stop the worker
                log.warning("prune failed", error=f"{type(error).__name__}: {error}")
            # 0.5x-1.5x: workers started together drift apart instead of pruning in step.
            await asyncio.sleep(self._settings.interval * random.uniform(0.5, 1.5))

    async def round(self) -> int:
        """Prune slices until one comes back short (nothing more is due) or the round's cap;
        returns how many tasks it deleted."""
        total = 0
        for _ in range(MAX_SLICES_PER_ROUND):
            pruned = await self._store.prune(
                confirmed_seconds=self._settings.confirmed,
                failed_seconds=self._settings.failed,
                limit=SLICE,
            )
            self._count(pruned)
            total += pruned.total
            if pruned.total < SLICE:
                break
            await asyncio.sleep(0)  # let claims and outcomes through between slices
        return total

    def _count(self, pruned: Pruned) -> None:
        if pruned.confirmed:
            self._metrics.pruned["confirmed"].inc(pruned.confirmed)
        if pruned.failed:
            self._metrics.pruned["failed"].inc(pruned.failed)
