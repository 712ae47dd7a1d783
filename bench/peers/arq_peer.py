"""arq: the WorkerSettings its CLI imports, and the adapter the harness drives."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from pathlib import Path
from typing import Any, ClassVar

from arq import create_pool
from arq.connections import ArqRedis, RedisSettings
from arq.worker import Retry
from redis.asyncio import Redis

from bench.peers import _common
from bench.peers.base import System, python_argv

__all__ = ["SYSTEM", "WorkerSettings", "job"]

# arq has no bulk enqueue; concurrent enqueue_job calls share the pool (redis-py caps it at 100).
_CHUNK = 100


async def job(ctx: dict[str, Any], data: str) -> None:
    """The shared body; arq retries only on Retry, so the first attempt raises that."""
    if data[0] == _common.MODE_FAIL_ONCE and ctx["job_try"] == 1:
        raise Retry(defer=0)
    client: Redis = ctx["bench_client"]
    if data[0] == _common.MODE_LAG:
        await client.rpush(_common.LAG_KEY, repr(time.time()))
    else:
        await client.incr(_common.DONE_KEY)


async def _startup(ctx: dict[str, Any]) -> None:
    ctx["bench_client"] = Redis.from_url(_common.redis_url())


async def _shutdown(ctx: dict[str, Any]) -> None:
    await ctx["bench_client"].aclose()


class WorkerSettings:
    functions: ClassVar[list[Any]] = [job]
    redis_settings = RedisSettings.from_dsn(_common.redis_url())
    max_jobs = 200
    on_startup = _startup
    on_shutdown = _shutdown


class Arq(System):
    name = "arq"
    package = "arq"
    worker_settings = "arq WorkerSettings: max_jobs=200, default poll_delay 0.5 s"
    enqueue_api = "enqueue_job, 100 concurrent calls at a time (arq has no bulk enqueue)"
    retry_setting = "raise Retry(defer=0) (re-queued at its original score, at once)"

    def __init__(self) -> None:
        self._pool: ArqRedis | None = None

    def worker_argv(self, workdir: Path, url: str) -> list[str]:
        return python_argv("-m", "arq", "bench.peers.arq_peer.WorkerSettings")

    async def _get_pool(self) -> ArqRedis:
        if self._pool is None:
            self._pool = await create_pool(RedisSettings.from_dsn(_common.redis_url()))
        return self._pool

    async def enqueue(self, mode: str, n: int) -> None:
        pool = await self._get_pool()
        data = _common.payload(mode)
        for start in range(0, n, _CHUNK):
            count = min(_CHUNK, n - start)
            await asyncio.gather(*(pool.enqueue_job("job", data) for _ in range(count)))

    async def enqueue_at(self, mode: str, n: int, due: float) -> None:
        pool = await self._get_pool()
        data = _common.payload(mode)
        when = dt.datetime.fromtimestamp(due, dt.UTC)
        for start in range(0, n, _CHUNK):
            count = min(_CHUNK, n - start)
            await asyncio.gather(
                *(pool.enqueue_job("job", data, _defer_until=when) for _ in range(count))
            )

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.aclose()
            self._pool = None


SYSTEM = Arq()
