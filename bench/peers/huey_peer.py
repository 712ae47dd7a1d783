"""huey: the job module its consumer imports, and the adapter the harness drives."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from pathlib import Path
from typing import Any

import redis
from huey import RedisHuey

from bench.peers import _common
from bench.peers.base import System, python_argv

__all__ = ["SYSTEM", "huey", "job"]

# results=False: the body returns nothing and the other systems are not asked to keep results.
huey = RedisHuey("bench", url=_common.redis_url(), results=False)
_client: redis.Redis | None = None


@huey.task(retries=1, retry_delay=0, context=True)  # type: ignore[untyped-decorator]
def job(data: str, task: Any = None) -> None:
    """The shared body; task.retries is 1 on the first attempt and 0 on the retry."""
    global _client  # one client per worker process, created on first use
    if _client is None:
        _client = redis.Redis.from_url(_common.redis_url())
    if data[0] == _common.MODE_FAIL_ONCE and task is not None and task.retries == 1:
        raise RuntimeError("first attempt fails")
    if data[0] == _common.MODE_LAG:
        _client.rpush(_common.LAG_KEY, repr(time.time()))
    else:
        _client.incr(_common.DONE_KEY)


class Huey(System):
    name = "huey"
    package = "huey"
    worker_settings = "huey_consumer -w 1 -k thread (one worker thread; blocking BRPOP dequeue)"
    enqueue_api = "task.map(iterable): huey has no pipelined bulk enqueue"
    retry_setting = "retries=1, retry_delay=0 (re-enqueued at once)"

    def worker_argv(self, workdir: Path, url: str) -> list[str]:
        return python_argv(
            "-m", "huey.bin.huey_consumer", "bench.peers.huey_peer.huey", "-w", "1", "-k", "thread"
        )

    async def enqueue(self, mode: str, n: int) -> None:
        data = _common.payload(mode)
        await asyncio.to_thread(job.map, [(data,)] * n)

    async def enqueue_at(self, mode: str, n: int, due: float) -> None:
        data = _common.payload(mode)
        eta = dt.datetime.fromtimestamp(due, dt.UTC)

        def schedule() -> None:
            for _ in range(n):
                job.schedule((data,), eta=eta)

        await asyncio.to_thread(schedule)


SYSTEM = Huey()
