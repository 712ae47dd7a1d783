"""The worker's heartbeat: every few seconds, one small script call saying it is alive.

What it reports (host, pid, version, start, concurrency, types, handlers running, runs by
outcome so far) is JSON the store keeps opaque; `retryd web` shows it as "workers seen" and
draws recent throughput from the run counts. A beat that fails is skipped, never retried in a
hurry and never fatal: the heartbeat must not add load to a Redis in trouble nor stop a worker.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import socket
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime

import structlog

from store import StoreError, WorkerStore
from worker.background import in_background
from worker.metrics import WorkerMetrics, build_version

__all__ = [
    "BEAT_SECONDS",
    "FORGET_AFTER_SECONDS",
    "WorkerReport",
    "beat_until_cancelled",
    "beating",
    "worker_report",
]

log = structlog.get_logger("retryd.heartbeat")

BEAT_SECONDS = 5.0
# A worker silent this long is forgotten (it shows as silent on the dashboard before that).
FORGET_AFTER_SECONDS = 3600.0


def new_worker_id() -> str:
    """host:pid:random: unique even when containers reuse pid 1 on the same host name."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


@dataclass(frozen=True, slots=True)
class WorkerReport:
    """What one beat says about the worker."""

    host: str
    pid: int
    version: str
    started_at: str
    concurrency: int
    types: list[int]
    inflight: int
    runs: Mapping[str, int] = field(default_factory=dict)

    def encode(self) -> bytes:
        return json.dumps(asdict(self), separators=(",", ":")).encode()


async def beat_until_cancelled(
    store: WorkerStore, report: Callable[[], WorkerReport], *, every_seconds: float = BEAT_SECONDS
) -> None:
    """Beat now and every every_seconds until the task running this is cancelled."""
    worker_id = new_worker_id()
    while True:
        try:
            await store.beat(
                worker_id, report().encode(), forget_after_seconds=FORGET_AFTER_SECONDS
            )
        except StoreError as error:
            # The claim loop reports outages; a second voice would only repeat it.
            log.debug("heartbeat skipped", error=type(error).__name__)
        await asyncio.sleep(every_seconds)


@contextlib.asynccontextmanager
async def beating(store: WorkerStore, report: Callable[[], WorkerReport]) -> AsyncIterator[None]:
    """Beat on store for the length of the block, then close store."""
    try:
        async with in_background(beat_until_cancelled(store, report)):
            yield
    finally:
        await store.aclose()


def worker_report(
    metrics: WorkerMetrics, types: Iterable[int], concurrency: int
) -> Callable[[], WorkerReport]:
    """A function reading the worker's report at each beat, from its own metrics."""
    started_at = datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    listed = sorted(types)
    host, version = socket.gethostname(), build_version()

    def report() -> WorkerReport:
        # Read from the worker's own counts: collecting the whole registry here stalled the
        # event loop for milliseconds at every beat.
        return WorkerReport(
            host=host,
            pid=os.getpid(),
            version=version,
            started_at=started_at,
            concurrency=concurrency,
            types=listed,
            inflight=metrics.inflight_now(),
            runs=metrics.runs_by_outcome(),
        )

    return report
