"""Handlers for the flow-control tests: `retryd run` processes import this module by name.

Every type is a plain function that notes its start and its end on the Redis list E2E_RUNS_KEY
(at E2E_REDIS_URL) as "s|<pid>|<type>|<µs>|<task_id>" and "e|...", the instant read from the
host's clock (the same clock as the Redis server's TIME, on this machine), and in between
sleeps as many seconds as its data says (empty data: none).
"""

from __future__ import annotations

import os
import time

import redis

from store import Record
from worker import handler

_client: redis.Redis | None = None


def _ledger() -> redis.Redis:
    global _client  # one client per process; redis-py's pool is safe across the handler threads
    if _client is None:
        _client = redis.Redis.from_url(os.environ["E2E_REDIS_URL"])
    return _client


def _note(phase: str, record: Record) -> None:
    entry = f"{phase}|{os.getpid()}|{record.type}|{time.time_ns() // 1000}|{record.task_id}"
    _ledger().rpush(os.environ["E2E_RUNS_KEY"], entry)


def _run(record: Record) -> None:
    _note("s", record)
    if record.data:
        time.sleep(float(record.data))
    _note("e", record)


@handler(type=7)
def rated(record: Record) -> None:
    _run(record)


@handler(type=8)
def unlimited(record: Record) -> None:
    _run(record)


@handler(type=9)
def few_at_once(record: Record) -> None:
    _run(record)
