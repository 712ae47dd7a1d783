"""dramatiq: the broker and actor its worker imports, and the adapter the harness drives."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import dramatiq
import redis
from dramatiq.brokers.redis import RedisBroker
from dramatiq.middleware import CurrentMessage

from bench.peers import _common
from bench.peers.base import System, python_argv

__all__ = ["SYSTEM", "broker", "job"]

broker = RedisBroker(url=_common.redis_url())  # type: ignore[no-untyped-call]
# CurrentMessage exposes the retry count to the body, which is how it knows its first attempt.
broker.add_middleware(CurrentMessage())
dramatiq.set_broker(broker)
_client: redis.Redis | None = None


# min_backoff=0: dramatiq's smallest retry delay (the retry still passes through its delay queue).
@dramatiq.actor(broker=broker, max_retries=1, min_backoff=0)
def job(data: str) -> None:
    """The shared body; message.options["retries"] is absent on the first attempt."""
    global _client  # one client per worker process, shared by its threads
    if _client is None:
        _client = redis.Redis.from_url(_common.redis_url(), max_connections=64)
    if data[0] == _common.MODE_FAIL_ONCE:
        message = CurrentMessage.get_current_message()
        if message is not None and message.options.get("retries", 0) == 0:
            raise RuntimeError("first attempt fails")
    if data[0] == _common.MODE_LAG:
        _client.rpush(_common.LAG_KEY, repr(time.time()))
    else:
        _client.incr(_common.DONE_KEY)


class Dramatiq(System):
    name = "dramatiq"
    package = "dramatiq"
    worker_settings = "dramatiq --processes 1 --threads 16 (RedisBroker, default prefetch)"
    enqueue_api = "actor.send in a loop: dramatiq has no bulk enqueue (group() loops too)"
    retry_setting = "max_retries=1, min_backoff=0 ms (the retry goes through the delay queue)"

    def worker_argv(self, workdir: Path, url: str) -> list[str]:
        return python_argv(
            "-m", "dramatiq", "bench.peers.dramatiq_peer", "--processes", "1", "--threads", "16"
        )

    async def enqueue(self, mode: str, n: int) -> None:
        data = _common.payload(mode)

        def send() -> None:
            for _ in range(n):
                job.send(data)

        await asyncio.to_thread(send)

    async def enqueue_at(self, mode: str, n: int, due: float) -> None:
        data = _common.payload(mode)

        def send() -> None:
            for _ in range(n):
                delay_ms = max(0, int((due - time.time()) * 1000))
                job.send_with_options(args=(data,), delay=delay_ms)

        await asyncio.to_thread(send)


SYSTEM = Dramatiq()
