"""/healthz follows the worker loop, /readyz follows Redis; both answer small JSON bodies."""

from __future__ import annotations

import asyncio
import json
import signal
from collections.abc import Awaitable, Callable

import pytest

from store import Record, RedisStore
from tests.metrics.client import get, get_json, scrape, value
from tests.metrics.conftest import listening
from tests.servers import redis_server
from worker.config import Config
from worker.loop import Worker
from worker.metrics import WorkerMetrics
from worker.registry import Registry, handler

POLL = 0.05
STALL = 0.5  # /healthz's floor in these tests; operators keep 10 s


def _worker(store: RedisStore, poll: float = POLL) -> Worker:
    reg = Registry()

    @handler(type=1, registry=reg)
    async def noop(record: Record) -> None:
        return None

    return Worker(store, reg, Config.from_mapping({"worker": {"poll_interval": poll}}))


async def _until(check: Callable[[], Awaitable[bool]], what: str) -> None:
    """Poll an endpoint (nothing to wait on but its answers) for up to about 10 s."""
    for _ in range(200):
        if await check():
            return
        await asyncio.sleep(0.05)
    pytest.fail(f"timed out waiting for {what}")


async def test_healthz_is_503_while_the_loop_is_stalled_and_200_when_it_ticks_again() -> None:
    """A claim stuck on a frozen Redis stops the ticks: 503 naming why; thawed, 200 again."""
    with redis_server() as server:
        # A long socket timeout: the frozen server holds the claimer instead of failing it.
        store = RedisStore.from_url(server.url, namespace="stall", socket_timeout=60.0)
        async with store:
            worker = _worker(store)
            running = asyncio.create_task(worker.run())
            try:
                async with listening(store, worker=worker, min_stall_seconds=STALL) as port:

                    async def status() -> int:
                        return (await get(port, "/healthz")).status

                    assert await get_json(port, "/healthz") == (200, {"status": "ok"})
                    server.kill(signal.SIGSTOP)
                    try:
                        await _until(lambda: _is(status, 503), "/healthz 503")
                        code, body = await get_json(port, "/healthz")
                        assert code == 503
                        assert body["status"] == "unavailable"
                        assert "has not ticked" in body["reason"]
                    finally:
                        server.kill(signal.SIGCONT)
                    await _until(lambda: _is(status, 200), "/healthz 200 again")
            finally:
                worker.stop()
                await running


async def _is(status: Callable[[], Awaitable[int]], wanted: int) -> bool:
    return await status() == wanted


@pytest.mark.parametrize(
    ("poll", "floor", "limit"),
    [
        pytest.param(0.05, 0.5, 0.5, id="floor-wins"),
        pytest.param(0.2, 0.1, 0.6, id="three-polls-win"),
    ],
)
async def test_healthz_limit_is_three_poll_periods_or_the_floor_whichever_is_longer(
    redis_store: RedisStore, poll: float, floor: float, limit: float
) -> None:
    """A worker that ticked just now is healthy; one quiet past max(3 polls, floor) is not."""
    worker = _worker(redis_store, poll)  # never run: last_tick is when it was made
    async with listening(redis_store, worker=worker, min_stall_seconds=floor) as port:
        assert (await get(port, "/healthz")).status == 200
        await asyncio.sleep(limit + 0.05)
        code, body = await get_json(port, "/healthz")
    assert code == 503
    assert body["reason"].endswith(f"(limit {limit:g} s)")


async def test_healthz_without_a_worker_is_200(redis_store: RedisStore) -> None:
    """`retryd metrics` mode has no loop to watch: the answering process is healthy."""
    async with listening(redis_store) as port:
        assert await get_json(port, "/healthz") == (200, {"status": "ok"})


async def test_readyz_follows_redis_down_and_back_on_the_same_port(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Redis stopped: /readyz 503 with a reason free of the URL, /metrics still 200; restarted on
    the same port: /readyz 200 again."""
    monkeypatch.setattr("worker.http.STATS_CACHE_SECONDS", 0.0)  # every probe asks Redis
    password = "s3cret-canary"
    with redis_server(password=password) as server:
        async with RedisStore.from_url(server.url, namespace="ready") as store:
            metrics = WorkerMetrics([1])
            async with listening(store, metrics=metrics) as port:
                assert await get_json(port, "/readyz") == (200, {"status": "ok"})
                server.stop()
                reply = await get(port, "/readyz")
                assert reply.status == 503
                body = json.loads(reply.body)
                assert body == {
                    "status": "unavailable",
                    "reason": "store unavailable (ConnectionError)",
                }
                assert password.encode() not in reply.body
                assert str(server.port).encode() not in reply.body
                got = await scrape(port)
                assert value(got, "retryd_redis_errors_total") == 2
                assert value(got, "retryd_tasks_ready") == 0  # the last value read, kept
                stale = value(got, "retryd_store_stats_age_seconds")
                assert stale is not None
                assert stale > 0
                server.start()
                assert await get_json(port, "/readyz") == (200, {"status": "ok"})
                assert value(await scrape(port), "retryd_tasks_ready") == 0
