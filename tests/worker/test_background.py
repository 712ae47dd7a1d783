"""worker/background.py: the loop run beside a block ends with the block, even when something
inside it swallows the cancellation (as redis-py can while it connects)."""

from __future__ import annotations

import asyncio
import contextlib
import time

import pytest
from structlog.testing import capture_logs

from worker.background import STOP_SECONDS, in_background


async def test_a_loop_that_swallows_its_first_cancellation_still_ends_with_the_block() -> None:
    swallowed = False

    async def loop_swallowing_once() -> None:
        nonlocal swallowed
        while True:
            try:
                await asyncio.sleep(5)  # the loop's own wait, as the heartbeat's between beats
            except asyncio.CancelledError:
                if swallowed:
                    raise
                swallowed = True  # as a library that catches it while it connects would

    # The timeout only bounds the test: with a single cancel, the block's end would wait for
    # the loop for ever (the timeout's own cancel, not the block, would then end it).
    started = time.monotonic()
    async with asyncio.timeout(3), in_background(loop_swallowing_once()):
        await asyncio.sleep(0.001)
    assert swallowed
    assert time.monotonic() - started < 2


async def test_a_loop_that_raises_raises_at_the_end_of_the_block() -> None:
    async def failing() -> None:
        raise RuntimeError("the loop broke")

    with pytest.raises(RuntimeError, match="the loop broke"):
        async with in_background(failing()):
            await asyncio.sleep(0.01)


async def test_a_loop_that_swallows_every_cancellation_is_left_and_named() -> None:
    let_go = asyncio.Event()

    async def stubborn_loop() -> None:
        while not let_go.is_set():
            with contextlib.suppress(asyncio.CancelledError):
                await let_go.wait()

    task_count = len(asyncio.all_tasks())
    started = time.monotonic()
    with capture_logs() as logs:
        async with in_background(stubborn_loop()):
            await asyncio.sleep(0.001)
    assert time.monotonic() - started < STOP_SECONDS + 1
    assert [(e["event"], e["loops"]) for e in logs if "loops" in e] == [
        (
            "loops did not end when cancelled; left to end with the process",
            [
                "test_a_loop_that_swallows_every_cancellation_is_left_and_named.<locals>."
                "stubborn_loop"
            ],
        )
    ]
    assert len(asyncio.all_tasks()) == task_count + 1  # still running: left, not awaited
    let_go.set()
    await asyncio.sleep(0.01)
    assert len(asyncio.all_tasks()) == task_count
