"""The threads plain `def` handlers run in, with cheap hand-offs to and from the event loop.

A ThreadPoolExecutor costs each task a concurrent Future, an asyncio Future wrapping it, a Task
awaiting that, and one wake-up of the event loop (a write to its self-pipe) per completion.
Here a run is handed to an idle thread through one queue, and finished runs are handed back in
batches: the first run to finish after the loop last collected wakes it once, and it takes all
that finished meanwhile. This module never decides an outcome; it only reports what happened.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import queue
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

__all__ = ["HandlerThreads", "ThreadRun"]

THREAD_NAME_PREFIX = "retryd-handler"


class ThreadRun(Protocol):
    """One run as the threads see it: what to call, and where to leave what happened."""

    func: Any  # Callable[[Any], Any], set before the run is handed over
    argument: Any
    error: BaseException | None
    seconds: float


_STOP: Any = object()


class HandlerThreads:
    """Up to `size` threads calling run.func(run.argument); finished runs go to on_done."""

    def __init__(
        self,
        size: int,
        loop: asyncio.AbstractEventLoop,
        on_done: Callable[[list[Any]], None],
    ) -> None:
        self._size = size
        self._loop = loop
        self._on_done = on_done
        self._todo: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._done: collections.deque[Any] = collections.deque()
        self._wake_pending = False
        self._threads: list[threading.Thread] = []

    def submit(self, run: ThreadRun) -> None:
        """Hand run to an idle thread; the first `size` runs each start one more thread."""
        if len(self._threads) < self._size:
            self._start_thread()
        self._todo.put(run)

    def shutdown(self) -> None:
        """Let every thread end once it is idle; a thread still in a handler ends after it."""
        for _ in self._threads:
            self._todo.put(_STOP)

    def _start_thread(self) -> None:
        name = f"{THREAD_NAME_PREFIX}_{len(self._threads)}"
        thread = threading.Thread(target=self._serve, name=name, daemon=True)
        self._threads.append(thread)
        thread.start()

    def _serve(self) -> None:
        """In a thread: run what comes, until told to stop."""
        take, finished = self._todo.get, self._done.append
        while True:
            run = take()
            if run is _STOP:
                return
            started = time.perf_counter()
            try:
                run.func(run.argument)
                run.error = None
            except BaseException as error:  # a handler's exception, whatever it is, is its outcome
                run.error = error
            run.seconds = time.perf_counter() - started
            finished(run)
            if not self._wake_pending:
                self._wake_pending = True
                with contextlib.suppress(RuntimeError):  # the loop is closed: nobody to tell
                    self._loop.call_soon_threadsafe(self._collect)

    def _collect(self) -> None:
        """On the loop: take every finished run at once."""
        # Cleared before taking: a run finished after this line wakes the loop again, and one
        # finished before it is taken below.
        self._wake_pending = False
        done = self._done
        batch = [done.popleft() for _ in range(len(done))]
        if batch:
            self._on_done(batch)
