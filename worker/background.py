"""Coroutines run beside a block of code, and ended (cancelled and awaited) when it ends.

For the loops that live as long as something else does: the worker's heartbeat and helper loops,
the dashboard's heartbeat sampler. Cancelling without awaiting would leave the task to be
destroyed pending; cancelling once is not always enough (see _CANCEL_AGAIN_SECONDS).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Collection, Coroutine
from typing import Any

__all__ = ["cancel_and_wait", "in_background"]


# A cancellation can be lost: redis-py swallows one that lands while it connects or reads a
# pub/sub message, and the loop then goes on as if never asked (a worker stopped right after it
# started waited for its heartbeat forever, once in 3 tries). A task not ended this long after
# a cancel gets another.
_CANCEL_AGAIN_SECONDS = 0.25


async def cancel_and_wait(
    tasks: Collection[asyncio.Task[Any]], *, give_up_after: float | None = None
) -> set[asyncio.Task[Any]]:
    """Cancel tasks and wait for them to end, cancelling again the ones that go on; returns
    those still running after give_up_after seconds (None: wait as long as it takes)."""
    loop = asyncio.get_running_loop()
    deadline = None if give_up_after is None else loop.time() + give_up_after
    pending = {task for task in tasks if not task.done()}
    while pending:
        wait = _CANCEL_AGAIN_SECONDS
        if deadline is not None:
            wait = min(wait, deadline - loop.time())
            if wait <= 0:
                break
        for task in pending:
            task.cancel()
        _, pending = await asyncio.wait(pending, timeout=wait)
    return pending


@contextlib.asynccontextmanager
async def in_background(coroutine: Coroutine[Any, Any, None]) -> AsyncIterator[None]:
    """Run coroutine as a task for the length of the `async with` block; what it raised is
    raised at the block's end."""
    task = asyncio.create_task(coroutine)
    try:
        yield
    finally:
        await cancel_and_wait([task])
        with contextlib.suppress(asyncio.CancelledError):
            await task
