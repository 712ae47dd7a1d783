"""retryd on PostgreSQL: the adapter the PostgreSQL benchmark drives (handler: bench/jobs_retryd).

The same worker settings as retryd on Redis (bench/peers/retryd_peer.py); only the store's URL
differs: the `bench` schema of the benchmark's own database.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import psycopg

from bench.peers import _common
from bench.peers.base import System, Unavailable
from bench.peers.retryd_peer import CONFIG, retryd_executable
from store import Record
from store.postgres import PostgresStore

__all__ = ["NAMESPACE", "SYSTEM"]

NAMESPACE = "bench"
_BATCH = 1000


class RetrydPostgres(System):
    name = "retryd-pg"
    package = "retryd"
    worker_settings = (
        "retryd run: default concurrency 32 and batch 100, metrics off, log level warning"
    )
    enqueue_api = "PostgresStore.put_all, 1,000 records per call"
    retry_setting = "[retry] initial_delay=0.0, max_delay=0.0 (due again at once)"

    def __init__(self) -> None:
        self._store: PostgresStore | None = None
        self._next_id = 0

    def worker_argv(self, workdir: Path, url: str) -> list[str]:
        exe = retryd_executable()
        if exe is None:
            raise Unavailable("no `retryd` executable beside the interpreter or on PATH")
        config = workdir / "retryd-pg.toml"
        config.write_text(CONFIG.format(url=_common.postgres_url(), handlers="bench.jobs_retryd"))
        return [exe, "run", "--config", str(config)]

    def _get_store(self) -> PostgresStore:
        if self._store is None:
            url = _common.postgres_url()
            self._store = PostgresStore.from_url(url, namespace=NAMESPACE)
        return self._store

    async def _put(self, mode: str, n: int, due: dt.datetime | None) -> None:
        data = _common.payload(mode).encode()
        first, self._next_id = self._next_id, self._next_id + n
        store = self._get_store()
        for start in range(first, first + n, _BATCH):
            stop = min(start + _BATCH, first + n)
            await store.put_all(
                *(Record(f"job-{i}", 1, data, next_attempt_at=due) for i in range(start, stop))
            )

    async def enqueue(self, mode: str, n: int) -> None:
        await self._put(mode, n, None)

    async def enqueue_at(self, mode: str, n: int, due: float) -> None:
        await self._put(mode, n, dt.datetime.fromtimestamp(due, dt.UTC))

    async def reset(self) -> None:
        """Empty the namespace's table between phases (the harness flushes Redis alone)."""
        async with await psycopg.AsyncConnection.connect(_common.postgres_url()) as conn:
            await conn.execute(f'TRUNCATE "{NAMESPACE}".tasks')  # type: ignore[arg-type]

    async def close(self) -> None:
        if self._store is not None:
            await self._store.aclose()
            self._store = None


SYSTEM = RetrydPostgres()
