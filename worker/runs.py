"""One handler run: whatever it raises is its outcome, and stopping it holds whatever it does.

A handler may raise any class (SystemExit, KeyboardInterrupt, GeneratorExit, a CancelledError of
its own): each is the run's failure, never the worker's end. A handler that ignores the
cancellation its timeout or shutdown sends is given up on ABANDON_SECONDS later: the run ends
with an outcome, and the caller keeps the slot taken until the handler really returns.
This module knows nothing of the store or of outcomes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

__all__ = ["ABANDON_SECONDS", "HandlerRun", "RunResult"]

# How long a stopped handler may take to honour its cancellation before it is abandoned: the
# bound shutdown adds to shutdown_grace, and a timeout to the handler's timeout.
ABANDON_SECONDS = 1.0


@dataclass(frozen=True, slots=True)
class RunResult:
    """How a run ended: its failure (None for success), and whether the worker stopped it."""

    failure: BaseException | None
    stopped: bool  # the worker cancelled it (timeout or shutdown)
    abandoned: bool  # ...and it still runs: it ignored the cancellation


class HandlerRun:
    """A handler's work as a task of its own, so that the worker can stop waiting for it."""

    def __init__(self, work: Awaitable[None]) -> None:
        self._task: asyncio.Future[BaseException | None] = asyncio.ensure_future(_contain(work))
        self._stopped = False
        self._given_up: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._abandon_timer: asyncio.TimerHandle | None = None

    @property
    def running(self) -> bool:
        return not self._task.done()

    def stop(self) -> None:
        """Cancel the handler; give up on it ABANDON_SECONDS later if it ignores that."""
        if self._stopped:
            return
        self._stopped = True
        self._task.cancel()
        loop = asyncio.get_running_loop()
        self._abandon_timer = loop.call_later(ABANDON_SECONDS, self._give_up)

    def when_returned(self, callback: Callable[[], None]) -> None:
        """Call back (on the event loop) once the handler has really returned."""
        self._task.add_done_callback(lambda _: callback())

    async def result(self) -> RunResult:
        try:
            either: set[asyncio.Future[Any]] = {self._task, self._given_up}
            await asyncio.wait(either, return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            self._task.cancel()
            raise
        if self._abandon_timer is not None:
            self._abandon_timer.cancel()
        if not self._task.done():
            return RunResult(None, stopped=True, abandoned=True)
        if self._task.cancelled():
            if self._stopped:
                return RunResult(None, stopped=True, abandoned=False)
            # Nobody cancelled it: the handler raised CancelledError itself.
            own = asyncio.CancelledError("the handler raised CancelledError")
            return RunResult(own, stopped=False, abandoned=False)
        return RunResult(self._task.result(), stopped=self._stopped, abandoned=False)

    def _give_up(self) -> None:
        if not self._given_up.done():
            self._given_up.set_result(None)


async def _contain(work: Awaitable[None]) -> BaseException | None:
    """The handler's exception as a value, whatever its class, so it cannot end the worker.

    SystemExit and KeyboardInterrupt raised in a task escape asyncio's event loop itself; caught
    here, inside the task, they are a failed attempt like any other error.
    """
    try:
        await work
    except asyncio.CancelledError:
        raise
    except BaseException as error:  # any class is the run's outcome
        return error
    return None
