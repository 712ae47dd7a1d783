"""Handlers for the supervisor tests: `retryd run --processes N` children import this module.

Type 1, a plain function, notes each start as "<task_id> <pid>" on the Redis list E2E_RUNS_KEY
(at E2E_REDIS_URL), then sleeps as many seconds as its data says (empty data: none), so a test
can tell which process ran what and can stop workers with handlers in flight.
"""

from __future__ import annotations

import os
import time

import redis

from store import Record
from worker import handler

_client: redis.Redis | None = None


def _runs() -> redis.Redis:
    global _client  # one client per process; redis-py's pool is safe across the handler threads
    if _client is None:
        _client = redis.Redis.from_url(os.environ["E2E_REDIS_URL"])
    return _client


@handler(type=1)
def note_and_sleep(record: Record) -> None:
    _runs().rpush(os.environ["E2E_RUNS_KEY"], f"{record.task_id} {os.getpid()}")
    if record.data:
        time.sleep(float(record.data))
