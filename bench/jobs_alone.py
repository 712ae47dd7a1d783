"""The handlers `retryd run` imports for bench/retryd_alone.py ([handlers] modules).

Four bodies, one per task type: nothing at all (the worker's own cost per task), 10 ms of
simulated I/O (how concurrency scales), one RPUSH of the instant the handler started (the
start delay of a single task put due now), and a plain function that computes for about 2 ms
holding the GIL (how worker processes scale). Completion of all but the third is read from the
store's CONFIRMED count, so their bodies make no Redis call.
"""

from __future__ import annotations

import asyncio
import time

from redis.asyncio import Redis

from bench.peers import _common
from store import Record
from worker import handler

__all__ = ["CPU_TYPE", "NOOP_TYPE", "SLEEP_SECONDS", "SLEEP_TYPE", "STAMP_KEY", "STAMP_TYPE"]

NOOP_TYPE, SLEEP_TYPE, STAMP_TYPE, CPU_TYPE = 1, 2, 3, 4
CPU_ITERATIONS = 60_000  # about 2 ms of pure Python on the development machine
SLEEP_SECONDS = 0.01
STAMP_KEY = "alone:started"
_client: Redis | None = None


@handler(type=NOOP_TYPE)
async def noop(record: Record) -> None:
    """Do nothing: what is left is the worker's cost per task."""


@handler(type=SLEEP_TYPE)
async def sleep(record: Record) -> None:
    """Await 10 ms, as a handler waiting on a remote call would."""
    await asyncio.sleep(SLEEP_SECONDS)


@handler(type=STAMP_TYPE)
async def stamp(record: Record) -> None:
    """Record, first thing, when this handler started; the producer compares it with its put."""
    started = time.time()
    global _client  # one client per worker process, created on first use
    if _client is None:
        _client = Redis.from_url(_common.redis_url())
    await _client.rpush(STAMP_KEY, f"{record.task_id} {started!r}")


@handler(type=CPU_TYPE)
def compute(record: Record) -> None:
    """Compute for about 2 ms in pure Python: a thread pool cannot spread this over cores."""
    total = 0
    for i in range(CPU_ITERATIONS):
        total += i * i
