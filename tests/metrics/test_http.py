"""The listener's HTTP handling: GET only, one request per connection, bounded size and time."""

from __future__ import annotations

import asyncio

import pytest

from store import RedisStore
from tests.metrics.client import get, get_json
from tests.metrics.conftest import listening


async def _raw(port: int, request: bytes) -> bytes:
    """Send request bytes as they are; return everything the server sends before closing."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request)
        await writer.drain()
        return await asyncio.wait_for(reader.read(), timeout=10)
    finally:
        writer.close()
        await writer.wait_closed()


async def test_unknown_path_is_404_and_the_query_string_is_ignored(
    redis_store: RedisStore,
) -> None:
    """/nope is 404; /healthz?x=1 is /healthz."""
    async with listening(redis_store) as port:
        assert (await get(port, "/nope")).status == 404
        assert (await get(port, "/healthz?x=1")).status == 200


async def test_only_get_is_answered(redis_store: RedisStore) -> None:
    """POST /metrics is 405 with Allow: GET, and the connection is closed after it."""
    async with listening(redis_store) as port:
        reply = await _raw(port, b"POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
    head = reply.split(b"\r\n\r\n", 1)[0].split(b"\r\n")
    assert head[0] == b"HTTP/1.1 405 Method Not Allowed"
    assert b"Allow: GET" in head
    assert b"Connection: close" in head


async def test_an_oversized_request_is_refused_and_the_server_keeps_serving(
    redis_store: RedisStore,
) -> None:
    """A head past 8 KiB is 431, not buffered; the next request is answered as usual."""
    async with listening(redis_store) as port:
        # 12 KiB: past the limit, yet read whole, so closing does not reset the client's read.
        huge = b"GET /metrics HTTP/1.1\r\nX-Pad: " + b"a" * 12288 + b"\r\n\r\n"
        reply = await _raw(port, huge)
        assert reply.startswith(b"HTTP/1.1 431 ")
        assert await get_json(port, "/healthz") == (200, {"status": "ok"})


async def test_a_silent_client_is_dropped_after_the_read_timeout(
    redis_store: RedisStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A client that never finishes its request gets 408 and a closed connection."""
    monkeypatch.setattr("worker.http.READ_TIMEOUT_SECONDS", 0.2)
    async with listening(redis_store) as port:
        reply = await _raw(port, b"GET /metrics HTTP/1.1\r\n")  # no blank line: never complete
    assert reply.startswith(b"HTTP/1.1 408 ")


async def test_a_malformed_request_line_is_400(redis_store: RedisStore) -> None:
    """A request line that is not METHOD TARGET HTTP/1.x is 400."""
    async with listening(redis_store) as port:
        reply = await _raw(port, b"hello\r\n\r\n")
    assert reply.startswith(b"HTTP/1.1 400 ")
