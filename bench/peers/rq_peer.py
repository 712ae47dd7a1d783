"""rq: the job function its worker imports, and the adapter the harness drives."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from pathlib import Path

import redis
from rq import Queue, Retry, get_current_job

from bench.peers import _common
from bench.peers.base import System, python_argv

__all__ = ["SYSTEM", "job"]

_BATCH = 1000
_client: redis.Redis | None = None


def job(data: str) -> None:
    """The shared body; retries_left is 1 on the first attempt of a fail-once job."""
    global _client  # one client per worker process, created on first use
    if data[0] == _common.MODE_FAIL_ONCE:
        current = get_current_job()
        if current is not None and current.retries_left == 1:
            raise RuntimeError("first attempt fails")
    if _client is None:
        _client = redis.Redis.from_url(_common.redis_url())
    if data[0] == _common.MODE_LAG:
        _client.rpush(_common.LAG_KEY, repr(time.time()))
    else:
        _client.incr(_common.DONE_KEY)


class Rq(System):
    name = "rq"
    package = "rq"
    worker_settings = "rq worker -w rq.worker.SimpleWorker --with-scheduler (no fork per job)"
    enqueue_api = "Queue.enqueue_many(Queue.prepare_data(...)) in one pipeline per 1,000"
    retry_setting = "Retry(max=1, interval=0) (re-enqueued at once, no scheduler hop)"

    def __init__(self) -> None:
        self._conn: redis.Redis | None = None

    def worker_argv(self, workdir: Path, url: str) -> list[str]:
        return python_argv(
            "-m", "rq.cli", "worker", "--url", url, "-w", "rq.worker.SimpleWorker",
            "--with-scheduler", "-q", "default",
        )  # fmt: skip

    def _queue(self) -> Queue:
        if self._conn is None:
            self._conn = redis.Redis.from_url(_common.redis_url())
        return Queue("default", connection=self._conn)

    async def enqueue(self, mode: str, n: int) -> None:
        queue = self._queue()
        data = _common.payload(mode)
        retry = Retry(max=1, interval=0) if mode == _common.MODE_FAIL_ONCE else None

        def put() -> None:
            for start in range(0, n, _BATCH):
                count = min(_BATCH, n - start)
                queue.enqueue_many(
                    [Queue.prepare_data(job, (data,), retry=retry) for _ in range(count)]
                )

        await asyncio.to_thread(put)

    async def enqueue_at(self, mode: str, n: int, due: float) -> None:
        queue = self._queue()
        data = _common.payload(mode)
        when = dt.datetime.fromtimestamp(due, dt.UTC)

        def put() -> None:
            for _ in range(n):
                queue.enqueue_at(when, job, data)

        await asyncio.to_thread(put)

    async def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


SYSTEM = Rq()
