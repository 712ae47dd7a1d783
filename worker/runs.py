"""One handler run: whatever it raises is its outcome, and stopping it holds whatever it does.

A handler may raise any class (SystemExit, KeyboardInterrupt, GeneratorExit, a CancelledError of
its own): each is the run's failure, never the worker's end. A handler that ignores the
cancellation its timeout or shutdown sends is given up on ABANDON_SECONDS later: the run ends
with an outcome, and the caller keeps the slot taken until the handler really returns.
This module knows nothing of the store or of outcomes.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

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
    """A handler's work as a task of its own; on_end(result) is called once, on the event loop,
    when it returns, raises, or is given up on.

    Callbacks, not a task awaiting the handler's: a second task, a future and asyncio.wait per
    run were a third of the worker's own cost for short async handlers. A run that ends by
    itself is ended from inside its task, as its last step: a done callback runs one loop
    iteration later, and in a busy worker that delayed the next run by a fraction of a
    millisecond each time. on_end still runs in the context HandlerRun was made in, never in
    the handler's own (whatever contextvars the handler set stay with it).
    """

    def __init__(self, work: Awaitable[None], on_end: Callable[[RunResult], None]) -> None:
        self._on_end = on_end
        self._stopped = False
        self._ended = False  # on_end was called
        self._abandon_timer: asyncio.TimerHandle | None = None
        self._context = contextvars.copy_context()
        self._task: asyncio.Future[BaseException | None] = asyncio.ensure_future(
            _contain(work, self._ended_by_itself)
        )
        self._task.add_done_callback(self._returned, context=self._context)

    @property
    def running(self) -> bool:
        return not self._task.done()

    def stop(self) -> None:
        """Cancel the handler; give up on it ABANDON_SECONDS later if it ignores that."""
        if self._stopped or self._ended:
            return
        self._stopped = True
        self._task.cancel()
        loop = asyncio.get_running_loop()
        self._abandon_timer = loop.call_later(ABANDON_SECONDS, self._give_up)

    def when_returned(self, callback: Callable[[], None]) -> None:
        """Call back (on the event loop) once the handler has really returned."""
        self._task.add_done_callback(lambda _: callback())

    def _ended_by_itself(self, failure: BaseException | None) -> None:
        """In the handler's task, as it returns or raises: the run ends now. A run being
        stopped is left to _returned, which knows whether it honoured the stop."""
        if self._stopped or self._ended:
            return
        self._ended = True
        self._context.run(self._on_end, RunResult(failure, stopped=False, abandoned=False))

    def _returned(self, task: asyncio.Future[BaseException | None]) -> None:
        if self._abandon_timer is not None:
            self._abandon_timer.cancel()
        if self._ended:
            return  # given up on already; when_returned's callbacks take it from here
        self._ended = True
        if task.cancelled():
            if self._stopped:
                self._on_end(RunResult(None, stopped=True, abandoned=False))
            else:  # nobody cancelled it: the handler raised CancelledError itself
                own = asyncio.CancelledError("the handler raised CancelledError")
                self._on_end(RunResult(own, stopped=False, abandoned=False))
            return
        self._on_end(RunResult(task.result(), stopped=self._stopped, abandoned=False))

    def _give_up(self) -> None:
        if not self._ended:
            self._ended = True
            self._on_end(RunResult(None, stopped=True, abandoned=True))


async def _contain(
    work: Awaitable[None], ended: Callable[[BaseException | None], None]
) -> BaseException | None:
    """The handler's exception as a value, whatever its class, so it cannot end the worker;
    ended(failure) is told before the task ends.

    SystemExit and KeyboardInterrupt raised in a task escape asyncio's event loop itself; caught
    here, inside the task, they are a failed attempt like any other error.
    """
    failure: BaseException | None = None
    try:
        await work
    except asyncio.CancelledError:
        raise
    except BaseException as error:  # any class is the run's outcome
        failure = error
    ended(failure)
    return failure
