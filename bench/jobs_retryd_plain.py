"""retryd's side of the benchmark with a plain `def` handler, as most Python users write one.

The same body as bench/jobs_retryd.py, with blocking redis-py instead of redis.asyncio: one INCR
on the done counter, or one RPUSH of its start time for the lag test; a fail-once job raises on
its first attempt. The worker runs it in its thread pool.
"""

from __future__ import annotations

import time

import redis

from bench.peers import _common
from store import Record
from worker import handler

__all__ = ["incr"]

_FAIL_ONCE = _common.MODE_FAIL_ONCE.encode()
_LAG = _common.MODE_LAG.encode()
# One client per worker process; redis-py's pool hands each handler thread its own connection.
_client = redis.Redis.from_url(_common.redis_url())


@handler(type=1)
def incr(record: Record) -> None:
    """Run the shared body for one task."""
    mode = record.data[:1]
    if mode == _FAIL_ONCE and record.failed_attempts == 0:
        raise RuntimeError("first attempt fails")
    if mode == _LAG:
        _client.rpush(_common.LAG_KEY, repr(time.time()))
    else:
        _client.incr(_common.DONE_KEY)
