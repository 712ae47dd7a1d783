"""The handler `python -m bench.lifecycle_bench` runs in its worker: type 1, nine in ten tasks
confirmed at once, one in ten failed for good with a reason (so FAILED tasks, their failures
and the pruning of both are part of the steady load)."""

from __future__ import annotations

import zlib

from store import Record
from worker import Permanent, handler

__all__ = ["STEADY_TYPE"]

STEADY_TYPE = 1


@handler(type=STEADY_TYPE)
async def steady(record: Record) -> None:
    if zlib.crc32(record.task_id.encode()) % 10 == 0:
        raise Permanent(f"declined by the bench for {record.task_id}")
