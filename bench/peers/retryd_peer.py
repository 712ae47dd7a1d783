"""retryd: the adapter the harness drives (the handler lives in bench/jobs_retryd.py)."""

from __future__ import annotations

import datetime as dt
import shutil
import sys
from pathlib import Path

from bench.peers import _common
from bench.peers.base import System, Unavailable
from store import Record, RedisStore

__all__ = ["CONFIG", "SYSTEM", "retryd_executable"]

_BATCH = 1000
# [worker] left at its defaults (concurrency 32, batch 100): what users run.
CONFIG = """\
[redis]
url = "{url}"
namespace = "bench"
[retry]
initial_delay = 0.0
max_delay = 0.0
[handlers]
modules = ["{handlers}"]
[metrics]
port = 0
[log]
level = "warning"
"""


def retryd_executable() -> str | None:
    beside = Path(sys.executable).with_name("retryd")
    return str(beside) if beside.exists() else shutil.which("retryd")


class Retryd(System):
    name = "retryd"
    package = "retryd"
    handlers = "bench.jobs_retryd"
    worker_settings = (
        "retryd run, `async def` handler (redis.asyncio): default concurrency 32 and batch 100,"
        " metrics off, log level warning"
    )
    enqueue_api = "RedisStore.put_all, 1,000 records per call"
    retry_setting = "[retry] initial_delay=0.0, max_delay=0.0 (due again at once)"

    def __init__(self) -> None:
        self._store: RedisStore | None = None
        self._next_id = 0

    def worker_argv(self, workdir: Path, url: str) -> list[str]:
        exe = retryd_executable()
        if exe is None:
            raise Unavailable("no `retryd` executable beside the interpreter or on PATH")
        config = workdir / "retryd.toml"
        config.write_text(CONFIG.format(url=url, handlers=self.handlers))
        return [exe, "run", "--config", str(config)]

    def _get_store(self) -> RedisStore:
        if self._store is None:
            self._store = RedisStore.from_url(_common.redis_url(), namespace="bench")
        return self._store

    def _records(self, mode: str, n: int, due: dt.datetime | None) -> list[Record]:
        data = _common.payload(mode).encode()
        first = self._next_id
        # Ids keep counting across phases: earlier tasks stay stored (CONFIRMED) in the namespace.
        self._next_id += n
        return [
            Record(task_id=f"job-{i}", type=1, data=data, next_attempt_at=due)
            for i in range(first, first + n)
        ]

    async def _put(self, records: list[Record]) -> None:
        store = self._get_store()
        for start in range(0, len(records), _BATCH):
            await store.put_all(*records[start : start + _BATCH])

    async def enqueue(self, mode: str, n: int) -> None:
        await self._put(self._records(mode, n, None))

    async def enqueue_at(self, mode: str, n: int, due: float) -> None:
        await self._put(self._records(mode, n, dt.datetime.fromtimestamp(due, dt.UTC)))

    async def close(self) -> None:
        if self._store is not None:
            await self._store.aclose()
            self._store = None


class RetrydPlain(Retryd):
    """The same worker and settings with a plain `def` handler (blocking redis-py)."""

    name = "retryd-def"
    handlers = "bench.jobs_retryd_plain"
    worker_settings = (
        "retryd run, plain `def` handler (blocking redis-py, run in the worker's threads):"
        " default concurrency 32 and batch 100, metrics off, log level warning"
    )


SYSTEM = Retryd()
PLAIN = RetrydPlain()
