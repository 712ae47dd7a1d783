"""worker/deadlines.py: one timer for every run's timeout, exact and in order."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from worker.deadlines import Deadlines


@dataclass(eq=False)
class _Run:
    name: str
    ended: bool = False
    expired_at: list[float] = field(default_factory=list)


async def test_runs_expire_at_their_own_deadline_whatever_the_order_of_timeouts() -> None:
    loop = asyncio.get_running_loop()
    expired: list[_Run] = []

    def on_expired(run: _Run) -> None:
        run.expired_at.append(loop.time())
        expired.append(run)

    deadlines: Deadlines[_Run] = Deadlines(loop, on_expired)
    started = loop.time()
    slow, fast, ends_early, fast_later = _Run("slow"), _Run("fast"), _Run("early"), _Run("fast2")
    deadlines.add(slow, 0.30)
    deadlines.add(ends_early, 0.10)
    deadlines.add(fast, 0.10)  # a shorter timeout added after a longer one
    await asyncio.sleep(0.05)
    deadlines.add(fast_later, 0.10)
    ends_early.ended = True  # its outcome came first: it must never expire
    await asyncio.sleep(0.5)

    assert expired == [fast, fast_later, slow]
    assert not ends_early.expired_at
    # Never early: each fires at or after its own deadline (margins on the late side only).
    assert fast.expired_at[0] - started >= 0.10
    assert fast_later.expired_at[0] - started >= 0.15
    assert slow.expired_at[0] - started >= 0.30
    assert len(slow.expired_at) == len(fast.expired_at) == 1
    deadlines.close()


async def test_only_runs_still_open_expire_and_close_stops_the_timer() -> None:
    loop = asyncio.get_running_loop()
    expired: list[_Run] = []
    deadlines: Deadlines[_Run] = Deadlines(loop, expired.append)
    for i in range(1000):
        run = _Run(str(i))
        deadlines.add(run, 0.05)
        run.ended = True  # each ends before the next starts, as short runs do
    last = _Run("last")
    deadlines.add(last, 0.05)
    await asyncio.sleep(0.15)
    assert expired == [last]

    closed = _Run("closed")
    deadlines.add(closed, 0.05)
    deadlines.close()
    await asyncio.sleep(0.1)
    assert expired == [last]  # closed: the open run no longer fires
