"""retryd's side of the benchmark: the handler `retryd run` imports ([handlers] modules).

The body is the one every peer runs: one INCR on the done counter, or one RPUSH of its start time
for the lag test; a fail-once job raises on its first attempt (failed_attempts == 0).
"""

from __future__ import annotations

import time

from redis.asyncio import Redis

from bench.peers import _common
from store import Record
from worker import handler

__all__ = ["incr"]

_FAIL_ONCE = _common.MODE_FAIL_ONCE.encode()
_LAG = _common.MODE_LAG.encode()
_client: Redis | None = None


@handler(type=1)
async def incr(record: Record) -> None:
    """Run the shared body for one task."""
    global _client  # one client per worker process, created on first use
    mode = record.data[:1]
    if mode == _FAIL_ONCE and record.failed_attempts == 0:
        raise RuntimeError("first attempt fails")
    if _client is None:
        _client = Redis.from_url(_common.redis_url())
    if mode == _LAG:
        await _client.rpush(_common.LAG_KEY, repr(time.time()))
    else:
        await _client.incr(_common.DONE_KEY)
