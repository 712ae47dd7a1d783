"""saq: the settings its CLI imports, and the adapter the harness drives."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from redis.asyncio import Redis
from saq import Queue

from bench.peers import _common
from bench.peers.base import System, python_argv

__all__ = ["SYSTEM", "job", "settings"]

# saq has no bulk enqueue; Queue.map itself gathers enqueue calls, so we do the same in chunks.
_CHUNK = 1000
_client: Redis | None = None


async def job(ctx: dict[str, Any], *, data: str) -> None:
    """The shared body; job.attempts counts this attempt, so it is 1 on the first."""
    global _client  # one client per worker process, created on first use
    if data[0] == _common.MODE_FAIL_ONCE and ctx["job"].attempts == 1:
        raise RuntimeError("first attempt fails")
    if _client is None:
        _client = Redis.from_url(_common.redis_url())
    if data[0] == _common.MODE_LAG:
        await _client.rpush(_common.LAG_KEY, repr(time.time()))
    else:
        await _client.incr(_common.DONE_KEY)


settings = {
    "queue": Queue.from_url(_common.redis_url()),
    "functions": [job],
    "concurrency": 10,
}


class Saq(System):
    name = "saq"
    package = "saq"
    worker_settings = "saq --workers 1, concurrency=10 (default timers: schedule every 1 s)"
    enqueue_api = "queue.enqueue, 1,000 concurrent calls at a time (as Queue.map does)"
    retry_setting = "retries=2 (two attempts), retry_delay=0.0, no backoff"

    def __init__(self) -> None:
        self._queue: Queue | None = None

    def worker_argv(self, workdir: Path, url: str) -> list[str]:
        return python_argv("-m", "saq", "bench.peers.saq_peer.settings", "--workers", "1")

    async def _get_queue(self) -> Queue:
        if self._queue is None:
            self._queue = Queue.from_url(_common.redis_url())
            await self._queue.connect()
        return self._queue

    async def _put(self, mode: str, n: int, scheduled: int) -> None:
        queue = await self._get_queue()
        data = _common.payload(mode)
        for start in range(0, n, _CHUNK):
            count = min(_CHUNK, n - start)
            await asyncio.gather(
                *(
                    queue.enqueue("job", data=data, retries=2, retry_delay=0.0, scheduled=scheduled)
                    for _ in range(count)
                )
            )

    async def enqueue(self, mode: str, n: int) -> None:
        await self._put(mode, n, 0)

    async def enqueue_at(self, mode: str, n: int, due: float) -> None:
        await self._put(mode, n, int(due))

    async def close(self) -> None:
        if self._queue is not None:
            await self._queue.disconnect()
            self._queue = None


SYSTEM = Saq()
