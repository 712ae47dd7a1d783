"""Handlers the reliability suite's `retryd run` processes import ([handlers] modules).

Each run appends two entries to a ledger list on a separate plain Redis: one when the handler
starts and one when it ends. The timestamps come from that server's TIME inside a script, so
every worker, skewed clock or not, writes on one clock. The task's data (JSON) says what the run
does: sleep, sleep longer on its first claim, raise, or kill the whole process (os._exit).
This module is test code: it must never be imported by the worker itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import time
from typing import Any

import redis.asyncio

from store import Record
from worker import RetryLater, handler

__all__ = ["HOSTILE", "HOSTILE_SYNC", "LEDGER_KEY_ENV", "LEDGER_URL_ENV", "NORMAL", "POISON"]

NORMAL = 7001
POISON = 7002  # same handler; its own [types.7002] max_attempts
HOSTILE = 7003  # an async handler that misbehaves as its plan says (issue 12)
HOSTILE_SYNC = 7004  # a plain def that raises what its plan says
LEDGER_URL_ENV = "RELIABILITY_LEDGER_URL"
LEDGER_KEY_ENV = "RELIABILITY_LEDGER_KEY"

# One entry: '<phase>|<pid>|<claim version>|<server time in us>|<task id>' (the id comes last:
# it may hold '|'). Phase 's' = started, 'e' = ended (returned), 'x' = ended by raising.
_APPEND = """
local t = redis.call('TIME')
local us = tonumber(t[1]) * 1000000 + tonumber(t[2])
redis.call('RPUSH', KEYS[1], ARGV[1] .. string.format('%d', us) .. '|' .. ARGV[2])
return 1
"""

_client: Any = None


async def _append(phase: str, record: Record) -> None:
    global _client
    if _client is None:
        _client = redis.asyncio.Redis.from_url(os.environ[LEDGER_URL_ENV], socket_timeout=5.0)
    prefix = f"{phase}|{os.getpid()}|{record.version}|"
    await _client.eval(_APPEND, 1, os.environ[LEDGER_KEY_ENV], prefix, record.task_id)


@handler(type=NORMAL)
@handler(type=POISON)
async def chaos(record: Record) -> None:
    """Do what the task's data says, between a 'started' and an 'ended' ledger entry."""
    plan: dict[str, Any] = json.loads(record.data or b"{}")
    await _append("s", record)
    if plan.get("exit"):
        os._exit(1)  # a poison task: takes the whole worker down, every time
    # version 2 is the task's first claim (put_all stores version 1, each claim adds 1)
    first = record.version == 2
    await asyncio.sleep(plan.get("first_sleep", 0.0) if first else 0.0)
    await asyncio.sleep(plan.get("sleep", 0.0))
    if record.failed_attempts < plan.get("fail", 0):
        await _append("x", record)
        raise RuntimeError("planned failure")
    await _append("e", record)


# What a hostile plan's "raise" names: each built when raised, in the handler.
_RAISE: dict[str, Any] = {
    "SystemExit": lambda: SystemExit(0),
    "KeyboardInterrupt": KeyboardInterrupt,
    "GeneratorExit": GeneratorExit,
    "CancelledError": asyncio.CancelledError,
    "RetryLater": lambda seconds: RetryLater(float(seconds)),
}


def _raised(plan: dict[str, Any]) -> BaseException:
    make = _RAISE[plan["raise"]]
    return make(plan["seconds"]) if "seconds" in plan else make()  # type: ignore[no-any-return]


@handler(type=HOSTILE)
async def hostile(record: Record) -> None:
    """Block the event loop, ignore cancellation, or raise any class, as the plan says."""
    plan: dict[str, Any] = json.loads(record.data or b"{}")
    await _append("s", record)
    # version 2 is the task's first claim: "block_first" blocks that run only
    block = plan.get("block", 0.0) + (plan.get("block_first", 0.0) if record.version == 2 else 0)
    time.sleep(block)  # noqa: ASYNC251 - blocks the event loop, on purpose
    deadline = time.monotonic() + plan.get("swallow", 0.0)
    while time.monotonic() < deadline:  # a cancellation is caught and ignored
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.sleep(0.05)
    await asyncio.sleep(plan.get("sleep", 0.0))
    if "raise" in plan:
        await _append("x", record)
        raise _raised(plan)
    await _append("e", record)


@handler(type=HOSTILE_SYNC)
def hostile_sync(record: Record) -> None:
    """A plain def (in the thread pool) that raises what the plan says."""
    plan: dict[str, Any] = json.loads(record.data or b"{}")
    raise _raised(plan)
