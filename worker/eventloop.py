"""The event loop a worker process runs on: asyncio's own, with timers that fire on time.

epoll_wait() takes its timeout in whole milliseconds, and asyncio rounds it up so as never to
wake early. In a busy worker the loop wakes many times during a handler's `asyncio.sleep(0.01)`
(claims, settles, other handlers), and each wait is rounded up again from wherever it began:
measured here, a 10 ms sleep ended 0.6-0.9 ms late at the median, which at concurrency 128 was a
third of the gap to the ideal rate. select() takes microseconds, and an epoll descriptor is
itself readable when any of its descriptors is: so the wait is made by select() on the epoll
descriptor, and epoll then collects the events without waiting. Waits with no deadline, and
polls, go to epoll directly, as before.
"""

from __future__ import annotations

import asyncio
import select
import selectors
from typing import Any

__all__ = ["new_event_loop"]

# select() cannot watch a descriptor at or above FD_SETSIZE; the epoll descriptor is made when
# the loop is, so it is small, but a process that opened over a thousand files first still works.
_FD_SETSIZE = 1024


class _PreciseEpollSelector(selectors.EpollSelector):
    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        if timeout is not None and timeout > 0:
            epoll_fd = self.fileno()
            if epoll_fd < _FD_SETSIZE:
                select.select([epoll_fd], [], [], timeout)
                timeout = 0
        return super().select(timeout)


def new_event_loop() -> asyncio.AbstractEventLoop:
    """A loop whose timers fire on time where epoll is (Linux); asyncio's default elsewhere."""
    if not hasattr(selectors, "EpollSelector"):
        return asyncio.new_event_loop()
    selector: Any = _PreciseEpollSelector()
    return asyncio.SelectorEventLoop(selector)
