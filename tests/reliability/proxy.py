"""A TCP proxy for the ambiguous-write scenarios (scenario 7 on Redis, its PostgreSQL
counterpart in test_postgres.py): it forwards a client's connections to a server, and on demand
drops the reply to one request after the server ran it, or black-holes every connection."""

from __future__ import annotations

import asyncio
import threading

from tests.servers import HOST

__all__ = ["Proxy"]


class Proxy:
    """A TCP proxy on a free 127.0.0.1 port to a server (redis-server, PostgreSQL), on an event
    loop of its own thread (sync and async clients alike go through it)."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = 0
        self.black_hole = False  # forward nothing, answer nothing (connections stay open)
        self.dropped = threading.Event()  # set once an armed reply was dropped
        self._armed: bytes | None = None
        self._handlers: set[asyncio.Task[None]] = set()
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    @property
    def url(self) -> str:
        return f"redis://{HOST}:{self.port}"

    def drop_reply_once(self, marker: bytes) -> None:
        """The next request that contains marker (in one read of the client's bytes) reaches
        the server; its reply does not reach the client, whose connection is closed instead."""
        self.dropped.clear()
        self._armed = marker

    def __enter__(self) -> Proxy:
        self._thread.start()
        assert self._ready.wait(5), "the proxy did not start"
        return self

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self._close_all(), self._loop).result(5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)

    async def _close_all(self) -> None:
        for task in self._handlers:
            task.cancel()
        await asyncio.gather(*self._handlers, return_exceptions=True)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        server = self._loop.run_until_complete(asyncio.start_server(self._handle, HOST, 0))
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        try:
            self._loop.run_forever()
        finally:
            server.close()
            self._loop.close()

    async def _handle(self, creader: asyncio.StreamReader, cwriter: asyncio.StreamWriter) -> None:
        this = asyncio.current_task()
        assert this is not None
        self._handlers.add(this)
        this.add_done_callback(self._handlers.discard)
        sreader, swriter = await asyncio.open_connection(HOST, self.target_port)
        drop_next_reply = False

        async def upstream() -> None:
            nonlocal drop_next_reply
            while data := await creader.read(65536):
                if self.black_hole:
                    continue
                if self._armed is not None and self._armed in data:
                    # Set before forwarding: the reply cannot arrive before the flag.
                    self._armed, drop_next_reply = None, True
                swriter.write(data)
                await swriter.drain()

        async def downstream() -> None:
            while data := await sreader.read(65536):
                if self.black_hole:
                    continue
                if drop_next_reply:
                    self.dropped.set()
                    return  # the script ran; its reply goes nowhere and the connection closes
                cwriter.write(data)
                await cwriter.drain()

        pumps = [asyncio.ensure_future(upstream()), asyncio.ensure_future(downstream())]
        try:
            await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            pass  # the proxy closes: end quietly (asyncio's stream callback would log it)
        finally:
            for pump in pumps:
                pump.cancel()
            await asyncio.gather(*pumps, return_exceptions=True)
            for writer in (cwriter, swriter):
                writer.close()
