"""The dashboard on a Redis Cluster URL and on a Sentinel URL: every page, and an action.

The same app and the same Board as on one server: the URL alone picks the client
(store/connection.py), and every key of a namespace is in one slot.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from store import Record, RedisStore, State
from tests.servers import SentinelSetup, sentinel_setup
from worker.config import WebSettings
from worker.web import Board, create_app

pytestmark = pytest.mark.cluster


async def _use_every_page(store: RedisStore) -> None:
    await store.put_all(Record("p-1", 1, b"x"), Record("f-1", 7, b"{}", state=State.FAILED))
    await store.beat("w-1", b'{"types": [1]}', forget_after_seconds=60)
    app = create_app(WebSettings(), Board(store), redis_label="cluster")
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
        overview = await client.get("/")
        assert overview.status_code == 200
        assert "<td>w-1</td>" in overview.text
        for path in ("/tasks?state=failed", "/task?id=f-1", "/task/retry?id=f-1"):
            assert (await client.get(path)).status_code == 200, path
        token = client.cookies["retryd_csrf"]
        done = await client.post("/task/retry", data={"id": "f-1", "csrf": token})
        assert done.status_code == 303
    assert (await store.get_by_task_id("f-1")).state is State.PENDING


async def test_the_dashboard_on_a_cluster_url(cluster_url: str, namespace: str) -> None:
    async with RedisStore.from_url(cluster_url, namespace=namespace) as store:
        await _use_every_page(store)


@pytest.fixture(scope="module")
def sentinel() -> Iterator[SentinelSetup]:
    with sentinel_setup(password="sentinel-pw") as setup:
        yield setup


async def test_the_dashboard_on_a_sentinel_url(sentinel: SentinelSetup) -> None:
    async with RedisStore.from_url(sentinel.url, namespace="web") as store:
        await _use_every_page(store)
