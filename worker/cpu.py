"""One CPU for all the threads of a worker process, moved to a less busy CPU as load shifts.

Under the GIL one thread runs Python at a time, and each blocking call a plain handler makes
hands the GIL to another thread. When those threads sit on different CPUs, every hand-off wakes
a thread on another core, which then waits for the GIL anyway. Measured here (2 CPUs, the peer
benchmark's plain handler: one blocking redis-py call), a worker spent 165 µs of CPU per task
with its threads spread and 78 µs with them on one CPU, and ran 5,800 and 10,200 tasks/s.

A process bound to one CPU is never moved by the kernel, so the worker moves itself: every
REBALANCE_SECONDS (with jitter, so that several workers do not move in step) it reads how busy
each CPU it may use was (/proc/stat), takes its own share out of its CPU's, and moves when the
rest of the machine kept its CPU busier than the least busy one by MOVE_MARGIN of a core.

The cost: a handler that releases the GIL for long computations (numpy, zlib, hashing) cannot
spread them over several CPUs any more, and processes a handler starts inherit the one CPU.
`[worker] one_cpu = false` leaves the threads to the kernel. Linux only; elsewhere, and where
the process may use one CPU anyway, nothing is done.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import time
from collections.abc import Mapping
from pathlib import Path

import structlog

__all__ = ["CPU_SLOT_ENV", "MOVE_MARGIN", "OneCpu", "choose_cpu"]

log = structlog.get_logger("retryd.cpu")

# Set by the supervisor for each child (worker/supervisor.py): children start on distinct CPUs.
CPU_SLOT_ENV = "RETRYD_CPU_SLOT"
REBALANCE_SECONDS = 5.0
# Of one core: below this, a move would cost the threads their warm caches for little.
MOVE_MARGIN = 0.25
# How long a worker looks at the CPUs before it picks one, at start.
_FIRST_LOOK_SECONDS = 0.05
_PROC_STAT = Path("/proc/stat")
_TASKS = Path("/proc/self/task")


def choose_cpu(current: int, busy: Mapping[int, float], own: float) -> int:
    """Where to be: current, unless the others kept it busier than the least busy CPU by
    MOVE_MARGIN. busy: each CPU's busy share of the last interval (1.0: a whole core), own
    included in current's; own: this process's share."""
    if len(busy) < 2 or current not in busy:
        return current
    others_here = busy[current] - own
    best = min((cpu for cpu in busy if cpu != current), key=lambda cpu: (busy[cpu], cpu))
    return best if others_here - busy[best] >= MOVE_MARGIN else current


def _busy_times() -> dict[int, tuple[int, int]]:
    """Each CPU's (busy, total) clock ticks since boot, from /proc/stat."""
    times = {}
    for line in _PROC_STAT.read_text().splitlines():
        name, _, rest = line.partition(" ")
        if not name.startswith("cpu") or name == "cpu":
            continue
        # user nice system idle iowait irq softirq steal (guest time is counted in user)
        ticks = [int(field) for field in rest.split()[:8]]
        idle = ticks[3] + ticks[4]
        times[int(name[3:])] = (sum(ticks) - idle, sum(ticks))
    return times


def _shares(
    before: Mapping[int, tuple[int, int]], after: Mapping[int, tuple[int, int]], cpus: list[int]
) -> dict[int, float]:
    """Each CPU's busy share between two readings of _busy_times (1.0: busy throughout)."""
    shares = {}
    for cpu in cpus:
        if cpu in before and cpu in after:
            total = after[cpu][1] - before[cpu][1]
            shares[cpu] = (after[cpu][0] - before[cpu][0]) / total if total > 0 else 0.0
    return shares


class OneCpu:
    """The threads of this process on one CPU of those it may use."""

    def __init__(self, allowed: list[int], cpu: int) -> None:
        self._allowed = allowed
        self.cpu = cpu
        self._last = (_busy_times(), time.monotonic(), _own_seconds())

    @classmethod
    def start(cls) -> OneCpu | None:
        """Bind every thread of this process to one CPU; None where that is not done."""
        if not hasattr(os, "sched_setaffinity") or not _PROC_STAT.exists():
            return None
        allowed = sorted(os.sched_getaffinity(0))
        if len(allowed) < 2:
            return None
        slot = os.environ.get(CPU_SLOT_ENV, "")
        cpu = allowed[int(slot) % len(allowed)] if slot.isdigit() else _least_busy(allowed)
        one = cls(allowed, cpu)
        one._bind(cpu)
        log.info("threads kept on one CPU ([worker] one_cpu = false to spread them)", cpu=cpu)
        return one

    async def keep(self) -> None:
        """Move to a less busy CPU when the others crowd this one; forever."""
        while True:
            await asyncio.sleep(REBALANCE_SECONDS * random.uniform(0.8, 1.2))
            self.rebalance()

    def rebalance(self) -> None:
        busy, now, own = _busy_times(), time.monotonic(), _own_seconds()
        before, then, own_before = self._last
        self._last = (busy, now, own)
        shares = _shares(before, busy, self._allowed)
        own_share = (own - own_before) / (now - then) if now > then else 0.0
        cpu = choose_cpu(self.cpu, shares, own_share)
        if cpu != self.cpu:
            log.info(
                "threads moved to a less busy CPU",
                cpu=cpu,
                left=self.cpu,
                busy_there=round(shares[cpu], 2),
                busy_here_without_us=round(shares[self.cpu] - own_share, 2),
            )
            self._bind(cpu)

    def _bind(self, cpu: int) -> None:
        self.cpu = cpu
        # The calling thread first: threads it starts from now on inherit its CPU.
        os.sched_setaffinity(0, {cpu})
        for tid in os.listdir(_TASKS):
            with contextlib.suppress(ProcessLookupError):  # the thread ended meanwhile
                os.sched_setaffinity(int(tid), {cpu})


def _own_seconds() -> float:
    times = os.times()
    return times.user + times.system


def _least_busy(allowed: list[int]) -> int:
    """A CPU among the least busy over a short look; workers that start together (and so see
    the same figures) spread over those by their pids instead of all taking the first."""
    before = _busy_times()
    time.sleep(_FIRST_LOOK_SECONDS)
    after = _busy_times()
    shares = _shares(before, after, allowed)
    if not shares:
        return allowed[0]
    calm = [cpu for cpu in sorted(shares) if shares[cpu] <= min(shares.values()) + MOVE_MARGIN]
    return calm[os.getpid() % len(calm)]
