"""procrastinate: the adapter the PostgreSQL benchmark drives (its task: bench/jobs_procrastinate).

Its tables live in the benchmark's own database, beside retryd's `bench` schema.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import psycopg

from bench.jobs_procrastinate import app, incr
from bench.peers import _common
from bench.peers.base import System, python_argv

__all__ = ["SYSTEM"]

_BATCH = 1000
_CONCURRENCY = 64


class Procrastinate(System):
    name = "procrastinate"
    package = "procrastinate"
    worker_settings = (
        f"procrastinate worker --concurrency {_CONCURRENCY} (one process), default "
        "fetch_job_polling_interval (5 s) and LISTEN/NOTIFY on"
    )
    enqueue_api = "task.batch_defer_async, 1,000 jobs per call"
    retry_setting = "RetryStrategy(max_attempts=1): retried at once"

    def __init__(self) -> None:
        self._open = False

    def worker_argv(self, workdir: Path, url: str) -> list[str]:
        return python_argv(
            "-m", "procrastinate", "--app", "bench.jobs_procrastinate.app",
            "worker", "--concurrency", str(_CONCURRENCY),
        )  # fmt: skip

    async def _opened(self) -> None:
        if not self._open:
            await app.open_async()
            self._open = True

    async def enqueue(self, mode: str, n: int) -> None:
        await self._defer(incr.configure(), mode, n)

    async def enqueue_at(self, mode: str, n: int, due: float) -> None:
        when = dt.datetime.fromtimestamp(due, dt.UTC)
        await self._defer(incr.configure(schedule_at=when), mode, n)

    async def _defer(self, deferrer: object, mode: str, n: int) -> None:
        await self._opened()
        payload = _common.payload(mode)
        for start in range(0, n, _BATCH):
            size = min(_BATCH, n - start)
            await deferrer.batch_defer_async(*({"payload": payload} for _ in range(size)))  # type: ignore[attr-defined]

    async def reset(self) -> None:
        """Empty procrastinate's tables between phases (the harness flushes Redis alone)."""
        async with await psycopg.AsyncConnection.connect(_common.postgres_url()) as conn:
            await conn.execute("TRUNCATE procrastinate_jobs CASCADE")

    async def close(self) -> None:
        if self._open:
            await app.close_async()
            self._open = False


SYSTEM = Procrastinate()
