"""The references: the job body run by the barest loop that can take jobs from Redis.

Not peers, and never counted as the best peer: a loop with no lease, no record, no metrics and
no retry bookkeeping beyond putting a failed job back. What it measures is the floor this machine
sets for the shared body: no queue runs the body faster or starts 500 due jobs sooner than this,
so a target below these figures is below the machine, not below the worker.

- bare-loop: one thread, blocking redis-py, each job's body run inline (the issue's "bare
  redis-py loop, job inline");
- bare-async: one event loop, redis.asyncio, up to 32 bodies at once (retryd's default
  concurrency).

Both take up to 100 due jobs per call (retryd's default batch) with bare_pop.lua, and poll every
millisecond while nothing is due. A job is `<id>|<attempt>|<payload>` in one sorted set scored by
its due instant.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import time
from pathlib import Path

import redis
from redis.asyncio import Redis

from bench.peers import _common
from bench.peers.base import System, python_argv

__all__ = ["ASYNC", "SYSTEM", "main"]

_KEY = "bare:due"
_BATCH = 100
_SLOTS = 32
_IDLE_SECONDS = 0.001
_PUT_BATCH = 1000
_POP = (Path(__file__).with_name("bare_pop.lua")).read_text()


def _job(member: bytes) -> tuple[bytes, int, bytes]:
    """The job's id, its attempt (0 first) and its payload."""
    job_id, attempt, data = member.split(b"|", 2)
    return job_id, int(attempt), data


def _retry(job_id: bytes, attempt: int, data: bytes) -> dict[bytes, float]:
    """The failed job put back, due at once (the smallest retry delay, as every system has)."""
    return {b"%s|%d|%s" % (job_id, attempt + 1, data): time.time()}


def run_blocking() -> None:
    """bare-loop: take due jobs, run each body inline, one after the other."""
    client = redis.Redis.from_url(_common.redis_url())
    pop = client.register_script(_POP)
    fail_once, lag = _common.MODE_FAIL_ONCE.encode(), _common.MODE_LAG.encode()
    while True:
        members = pop(keys=[_KEY], args=[_BATCH])
        if not members:
            time.sleep(_IDLE_SECONDS)
            continue
        for member in members:
            job_id, attempt, data = _job(member)
            mode = data[:1]
            if mode == fail_once and attempt == 0:
                client.zadd(_KEY, _retry(job_id, attempt, data))
            elif mode == lag:
                client.rpush(_common.LAG_KEY, repr(time.time()))
            else:
                client.incr(_common.DONE_KEY)


async def run_async() -> None:
    """bare-async: take due jobs, run up to _SLOTS bodies at once on one event loop."""
    client = Redis.from_url(_common.redis_url())
    pop = client.register_script(_POP)
    fail_once, lag = _common.MODE_FAIL_ONCE.encode(), _common.MODE_LAG.encode()
    slots = asyncio.Semaphore(_SLOTS)
    running: set[asyncio.Task[None]] = set()

    async def body(member: bytes) -> None:
        try:
            job_id, attempt, data = _job(member)
            mode = data[:1]
            if mode == fail_once and attempt == 0:
                await client.zadd(_KEY, _retry(job_id, attempt, data))
            elif mode == lag:
                await client.rpush(_common.LAG_KEY, repr(time.time()))
            else:
                await client.incr(_common.DONE_KEY)
        finally:
            slots.release()

    while True:
        # Never more taken than there are free slots: a job waits in Redis, not here.
        await slots.acquire()
        free = 1
        while free < _BATCH and not slots.locked():
            await slots.acquire()
            free += 1
        members = await pop(keys=[_KEY], args=[free])
        for _ in range(free - len(members)):
            slots.release()
        if not members:
            await asyncio.sleep(_IDLE_SECONDS)
            continue
        for member in members:
            task = asyncio.create_task(body(member))
            running.add(task)
            task.add_done_callback(running.discard)


class BareLoop(System):
    name = "bare-loop"
    package = "redis"
    worker_settings = (
        "reference, not a queue: one thread takes up to 100 due jobs per Lua call from one "
        "sorted set and runs each body inline on blocking redis-py; polls every 1 ms when idle"
    )
    enqueue_api = "ZADD, 1,000 jobs per call"
    retry_setting = "the failed job is put back due at once"
    _mode = "blocking"

    def __init__(self) -> None:
        self._client: Redis | None = None
        self._next_id = 0

    def worker_argv(self, workdir: Path, url: str) -> list[str]:
        return python_argv("-m", "bench.peers.bare_peer", self._mode)

    async def enqueue(self, mode: str, n: int) -> None:
        await self._put(mode, n, time.time())

    async def enqueue_at(self, mode: str, n: int, due: float) -> None:
        await self._put(mode, n, due)

    async def _put(self, mode: str, n: int, due: float) -> None:
        if self._client is None:
            self._client = Redis.from_url(_common.redis_url())
        data = _common.payload(mode).encode()
        first = self._next_id
        self._next_id += n
        for start in range(first, first + n, _PUT_BATCH):
            end = min(start + _PUT_BATCH, first + n)
            await self._client.zadd(_KEY, {b"%d|0|%s" % (i, data): due for i in range(start, end)})

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None


class BareAsync(BareLoop):
    name = "bare-async"
    worker_settings = (
        "reference, not a queue: one event loop takes up to 100 due jobs per Lua call (never "
        "more than its free slots) and runs up to 32 bodies at once on redis.asyncio; polls "
        "every 1 ms when idle"
    )
    _mode = "async"


SYSTEM = BareLoop()
ASYNC = BareAsync()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.peers.bare_peer")
    parser.add_argument("mode", choices=("blocking", "async"))
    args = parser.parse_args()
    with contextlib.suppress(KeyboardInterrupt):
        if args.mode == "blocking":
            run_blocking()
        else:
            asyncio.run(run_async())


if __name__ == "__main__":
    main()
