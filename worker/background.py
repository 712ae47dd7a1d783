"""Coroutines run beside a block of code, and ended (cancelled and awaited) when it ends.

For the loops that live as long as something else does: the worker's heartbeat and helper loops,
the dashboard's heartbeat sampler. Cancelling without awaiting would leave the task to be
destroyed pending; cancelling once is not always enough (see _CANCEL_AGAIN_SECONDS); and a loop
that goes on through every cancellation must not hold up the exit (STOP_SECONDS).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Collection, Coroutine
from typing import Any

import structlog

__all__ = ["STOP_SECONDS", "cancel_and_wait", "in_background"]

log = structlog.get_logger("retryd")

# A cancellation can be lost: redis-py swallows one that lands while it connects or reads a
# pub/sub message, and the loop then goes on as if never asked (a worker stopped right after it
# started waited for its heartbeat forever, once in 3 tries). A task not ended this long after
# a cancel gets another.
_CANCEL_AGAIN_SECONDS = 0.25
# How long loops are given to end once cancelled; after that they are left to end with the
# process.
STOP_SECONDS = 1.0


async def cancel_and_wait(tasks: Collection[asyncio.Task[Any]]) -> set[asyncio.Task[Any]]:
    """Cancel tasks and wait up to STOP_SECONDS for them to end, cancelling again the ones that
    go on; those still running then are named in a warning and returned."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + STOP_SECONDS
    pending = {task for task in tasks if not task.done()}
    while pending and (wait := min(_CANCEL_AGAIN_SECONDS, deadline - loop.time())) > 0:
        for task in pending:
            task.cancel()
        _, pending = await asyncio.wait(pending, timeout=wait)
    if pending:
        log.warning(
            "loops did not end when cancelled; left to end with the process",
            loops=sorted(task.get_name() for task in pending),
        )
    return pending


@contextlib.asynccontextmanager
async def in_background(coroutine: Coroutine[Any, Any, None]) -> AsyncIterator[None]:
    """Run coroutine as a task for the length of the `async with` block; what it raised is
    raised at the block's end."""
    # Named after the loop, for the warning should it not end.
    task = asyncio.create_task(coroutine, name=getattr(coroutine, "__qualname__", None))
    try:
        yield
    finally:
        if not await cancel_and_wait([task]):
            with contextlib.suppress(asyncio.CancelledError):
                await task
