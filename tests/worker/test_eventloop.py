"""The worker's event loop (worker/eventloop.py): its waits are made by select() on the epoll
descriptor, so what must still hold is that anything epoll watches ends a wait at once. (Timers
never fire early on any selector: asyncio checks their deadlines itself.) How much closer to
their deadlines they fire is a figure of bench/retryd_alone.py, the concurrency rows, not a
timed test."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import threading
import time
from collections.abc import Iterator

import pytest

from worker import eventloop

# A wait that does not end when it should runs into this: far beyond any delay of a busy CI.
_LONG_TIMER_SECONDS = 30.0


@pytest.fixture(params=["precise", "fd above FD_SETSIZE"])
def loop(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> Iterator[asyncio.AbstractEventLoop]:
    if request.param != "precise":
        monkeypatch.setattr(eventloop, "_FD_SETSIZE", 0)  # select() cannot watch it: epoll waits
    new = eventloop.new_event_loop()
    try:
        yield new
    finally:
        new.close()


def _later(seconds: float, action: object) -> threading.Timer:
    timer = threading.Timer(seconds, action)  # type: ignore[arg-type]
    timer.start()
    return timer


def test_data_on_a_socket_ends_a_wait_at_once(loop: asyncio.AbstractEventLoop) -> None:
    reader, writer = socket.socketpair()
    try:

        async def wait_for_data() -> float:
            loop.call_later(_LONG_TIMER_SECONDS, lambda: None)  # the loop's wait has a deadline
            readable = asyncio.Event()
            loop.add_reader(reader.fileno(), readable.set)
            _later(0.05, lambda: writer.send(b"x"))
            start = time.monotonic()
            await readable.wait()
            return time.monotonic() - start

        waited = loop.run_until_complete(wait_for_data())
        assert 0.04 <= waited < _LONG_TIMER_SECONDS / 3
    finally:
        reader.close()
        writer.close()


def test_a_signal_ends_a_wait_at_once(loop: asyncio.AbstractEventLoop) -> None:
    async def wait_for_signal() -> float:
        loop.call_later(_LONG_TIMER_SECONDS, lambda: None)
        signalled = asyncio.Event()
        loop.add_signal_handler(signal.SIGUSR1, signalled.set)
        _later(0.05, lambda: os.kill(os.getpid(), signal.SIGUSR1))
        start = time.monotonic()
        await signalled.wait()
        loop.remove_signal_handler(signal.SIGUSR1)
        return time.monotonic() - start

    waited = loop.run_until_complete(wait_for_signal())
    assert 0.04 <= waited < _LONG_TIMER_SECONDS / 3
