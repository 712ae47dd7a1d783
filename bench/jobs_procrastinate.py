"""procrastinate's side of the PostgreSQL benchmark: the app and the task its worker runs.

The body is the one every system runs (bench/peers/_common.py): one INCR on the done counter, or
one RPUSH of its start time for the lag test; a fail-once job raises on its first attempt.
"""

from __future__ import annotations

import time

import procrastinate
from redis.asyncio import Redis

from bench.peers import _common

__all__ = ["app", "incr"]

# The benchmark's scratch database, never a default: the schema is applied wherever this points.
app = procrastinate.App(connector=procrastinate.PsycopgConnector(conninfo=_common.postgres_url()))
_client: Redis | None = None


# One retry, due again at once: the smallest delay procrastinate allows.
@app.task(name="bench_incr", retry=procrastinate.RetryStrategy(max_attempts=1), pass_context=True)
async def incr(context: procrastinate.JobContext, payload: str) -> None:
    """Run the shared body for one job."""
    global _client  # one client per worker process, created on first use
    mode = payload[:1]
    assert context.job is not None
    if mode == _common.MODE_FAIL_ONCE and context.job.attempts == 0:
        raise RuntimeError("first attempt fails")
    if _client is None:
        _client = Redis.from_url(_common.redis_url())
    if mode == _common.MODE_LAG:
        await _client.rpush(_common.LAG_KEY, repr(time.time()))
    else:
        await _client.incr(_common.DONE_KEY)
