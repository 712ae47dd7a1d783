"""One coroutine run beside a block of code, and cancelled (and awaited) when the block ends.

For the loops that live as long as something else does: the worker's heartbeat, the dashboard's
heartbeat sampler. Cancelling without awaiting would leave the task to be destroyed pending.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Coroutine
from typing import Any

__all__ = ["in_background"]


# A cancellation can be lost: redis-py swallows one that lands while it connects, and the loop
# then goes on as if never asked (a worker stopped right after it started waited for its
# heartbeat forever, once in 3 tries). A task not ended this long after a cancel gets another.
_CANCEL_AGAIN_SECONDS = 0.5


@contextlib.asynccontextmanager
async def in_background(coroutine: Coroutine[Any, Any, None]) -> AsyncIterator[None]:
    """Run coroutine as a task for the length of the `async with` block."""
    task = asyncio.create_task(coroutine)
    try:
        yield
    finally:
        while not task.done():
            task.cancel()
            await asyncio.wait({task}, timeout=_CANCEL_AGAIN_SECONDS)
        with contextlib.suppress(asyncio.CancelledError):
            await task
