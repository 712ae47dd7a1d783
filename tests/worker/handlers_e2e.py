"""Handlers for the end-to-end tests: `retryd run` imports this module by name.

Type 1 notes each start as "<task_id> <pid>" on the Redis list E2E_RUNS_KEY (at E2E_REDIS_URL),
then does what the task's data says. Type 2 sleeps past its [types.2] timeout. Type 3 does
nothing and notes nothing, for tests that take Redis away.
"""

from __future__ import annotations

import asyncio
import os
import time

import redis.asyncio

from store import Record
from worker import Permanent, RetryLater, handler

HANG_SECONDS = 60.0
_client: redis.asyncio.Redis | None = None


def _runs() -> redis.asyncio.Redis:
    global _client  # one client per worker process, made inside its event loop
    if _client is None:
        _client = redis.asyncio.Redis.from_url(os.environ["E2E_REDIS_URL"])
    return _client


@handler(type=1)
async def scripted(record: Record) -> None:
    await _runs().rpush(os.environ["E2E_RUNS_KEY"], f"{record.task_id} {os.getpid()}")
    match record.data:
        case b"ok":
            return
        case b"fail_once" if record.failed_attempts == 0:
            raise RuntimeError("first attempt fails")
        case b"fail_once":
            return
        case b"fail":
            raise RuntimeError("always fails")
        case b"permanent":
            raise Permanent("cannot succeed")
        case b"later":
            raise RetryLater(30)
        case b"hang" if os.environ.get("E2E_HANG") == "1":
            await asyncio.sleep(HANG_SECONDS)
        case b"hang":
            return
        case b"hang_first" if record.failed_attempts == 0:
            await asyncio.sleep(HANG_SECONDS)
        case b"hang_first":
            return
        case _:
            raise Permanent(f"unknown script {record.data!r}")


@handler(type=2)
async def too_slow(record: Record) -> None:
    await asyncio.sleep(HANG_SECONDS)


@handler(type=3)
async def quick(record: Record) -> None:
    await asyncio.sleep(0.01)


@handler(type=4)
def blocking(record: Record) -> None:
    """A plain function that hangs in its thread when E2E_HANG=1 (as a stuck socket would)."""
    import redis as sync_redis

    with sync_redis.Redis.from_url(os.environ["E2E_REDIS_URL"]) as client:
        client.rpush(os.environ["E2E_RUNS_KEY"], f"{record.task_id} {os.getpid()}")
    if os.environ.get("E2E_HANG") == "1":
        time.sleep(HANG_SECONDS)
