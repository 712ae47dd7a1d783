"""Run timeouts with one event-loop timer, instead of a TimerHandle made and cancelled per run.

Runs with the same timeout reach their deadlines in the order they started, so each timeout
value keeps its runs in a FIFO queue, and one timer waits for the earliest head. A run that
ends early is not removed at once (that would be the cancel this module saves): its entry
leaves when it reaches the head. Deadlines stay exact: the timer fires at the head's deadline.
"""

from __future__ import annotations

import asyncio
import collections
import math
from collections.abc import Callable
from typing import Generic, Protocol, TypeVar

__all__ = ["Deadlines", "TimedRun"]


class TimedRun(Protocol):
    """A run as the deadlines see it: whether it has ended (its deadline no longer matters)."""

    ended: bool


Run = TypeVar("Run", bound=TimedRun)


class Deadlines(Generic[Run]):
    """Calls on_expired(run) once a run that has not ended reaches its timeout."""

    def __init__(self, loop: asyncio.AbstractEventLoop, on_expired: Callable[[Run], None]) -> None:
        self._loop = loop
        self._on_expired = on_expired
        self._queues: dict[float, collections.deque[tuple[float, Run]]] = {}
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = math.inf

    def add(self, run: Run, timeout_seconds: float) -> None:
        """Watch run from now: on_expired(run) after timeout_seconds unless it ended."""
        queue = self._queues.get(timeout_seconds)
        if queue is None:
            queue = self._queues[timeout_seconds] = collections.deque()
        while queue and queue[0][1].ended:  # keep the queue as short as the runs in flight
            queue.popleft()
        at = self._loop.time() + timeout_seconds
        queue.append((at, run))
        if at < self._timer_at:
            self._arm(queue[0][0])

    def close(self) -> None:
        """Stop watching every run."""
        if self._timer is not None:
            self._timer.cancel()
        self._timer, self._timer_at = None, math.inf
        self._queues.clear()

    def _arm(self, at: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer, self._timer_at = self._loop.call_at(at, self._expire), at

    def _expire(self) -> None:
        self._timer, self._timer_at = None, math.inf
        now = self._loop.time()
        expired = []
        for queue in self._queues.values():
            while queue and (queue[0][1].ended or queue[0][0] <= now):
                _, run = queue.popleft()
                if not run.ended:
                    expired.append(run)
        next_at = min((queue[0][0] for queue in self._queues.values() if queue), default=None)
        if next_at is not None:
            self._arm(next_at)
        for run in expired:
            self._on_expired(run)
