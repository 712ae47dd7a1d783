"""Recent throughput from the workers' heartbeats: runs per minute, confirmed and failed.

Each heartbeat carries its worker's run counts since it started. What a worker ran between two
beats this process saw is the difference, put in the minute of the later beat. A worker seen
for the first time, or again after a gap, sets a baseline and adds nothing: the chart never
shows a worker's lifetime as one minute's spike. Kept in this process's memory: a restarted
dashboard starts an empty chart. It never touches the store.
"""

from __future__ import annotations

import collections
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

__all__ = ["FAILED_OUTCOMES", "Minute", "Throughput"]

MINUTES_KEPT = 30
# A beat later than this after the previous one starts a new baseline (the gap is unknown).
MAX_GAP = timedelta(seconds=90)
FAILED_OUTCOMES = ("retried", "failed")


@dataclass(frozen=True, slots=True)
class Minute:
    """Runs that ended in one minute, as the workers reported them."""

    start: datetime
    confirmed: int
    failed: int


class Throughput:
    """Per-minute run counts summed over every worker seen."""

    def __init__(self) -> None:
        self._last: dict[str, tuple[datetime, Mapping[str, int]]] = {}
        self._minutes: collections.OrderedDict[datetime, list[int]] = collections.OrderedDict()

    def observe(self, worker: str, at: datetime, runs: Mapping[str, int]) -> None:
        """Take one worker's beat (its cumulative run counts at instant at)."""
        previous = self._last.get(worker)
        if previous is not None and at <= previous[0]:
            return  # the same beat read again
        self._last[worker] = (at, runs)
        if previous is None or at - previous[0] > MAX_GAP:
            return
        confirmed = _grown(previous[1], runs, ("confirmed",))
        failed = _grown(previous[1], runs, FAILED_OUTCOMES)
        bucket = self._minutes.setdefault(at.replace(second=0, microsecond=0), [0, 0])
        bucket[0] += confirmed
        bucket[1] += failed
        while len(self._minutes) > MINUTES_KEPT:
            self._minutes.popitem(last=False)

    def minutes(self, now: datetime) -> list[Minute]:
        """The last MINUTES_KEPT minutes up to now, oldest first, empty minutes as zeros."""
        last = now.replace(second=0, microsecond=0)
        starts = [last - timedelta(minutes=n) for n in range(MINUTES_KEPT - 1, -1, -1)]
        return [Minute(s, *self._minutes.get(s, (0, 0))) for s in starts]


def _grown(before: Mapping[str, int], after: Mapping[str, int], outcomes: tuple[str, ...]) -> int:
    """How much the outcomes' counts grew; a count that fell means a restart: count it anew."""
    total = 0
    for outcome in outcomes:
        old, new = before.get(outcome, 0), after.get(outcome, 0)
        total += new - old if new >= old else new
    return total
