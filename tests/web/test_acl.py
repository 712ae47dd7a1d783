"""The read-only dashboard as a Redis ACL user that can read its namespace and write nothing.

These are the rules docs/dashboard.md gives operators for a `read_only = true` dashboard: the
namespace's keys, only the read commands the dashboard's scripts run, no channel. (Not `%R~`
read-only key permissions: EVALSHA declares its keys as written, so Redis refuses them to a
read-only key pattern; without a single write command, no script can write either.) Every page
works as that user; a write is refused by Redis itself, before anything is written.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from redis.exceptions import NoPermissionError

from store import Record, RedisStore, State, StoreError, SyncRedisStore, TypeCursor
from tests.servers import RedisServer, redis_server
from worker.config import WebSettings
from worker.web import Board, create_app

ADMIN_PASSWORD = "admin-pw"
VIEWER_PASSWORD = "viewer-pw"
NAMESPACE = "retryd"

# What the dashboard reads: its scripts (by SHA, reloaded by SCRIPT LOAD or EVAL after a flush),
# the read commands they run, and what redis-py sends on connect and for health checks.
VIEWER_COMMANDS = (
    "+evalsha +eval +script|load +script|exists +hget +hmget +exists +smembers "
    "+zrange +zrangebyscore +zrevrangebyscore +zrank +zcard +zcount +time +ping "
    "+client|setinfo +client|setname"
)


def viewer_rules(namespace: str, password: str) -> list[str]:
    tag = "{" + namespace + "}"
    return ["on", f">{password}", "resetkeys", f"~{tag}:*", "resetchannels", "-@all",
            *VIEWER_COMMANDS.split()]  # fmt: skip


@pytest.fixture(scope="module")
def server() -> Iterator[RedisServer]:
    with redis_server(password=ADMIN_PASSWORD) as started:
        with started.client() as admin:
            rules = viewer_rules(NAMESPACE, VIEWER_PASSWORD)
            if str(admin.info("server")["redis_version"]) < "7.2":
                rules.remove("+client|setinfo")  # Redis 7.0/7.1 do not know it
            admin.execute_command("ACL", "SETUSER", "retryd-web", *rules)
        admin_url = f"redis://:{ADMIN_PASSWORD}@127.0.0.1:{started.port}"
        with SyncRedisStore.from_url(admin_url, namespace=NAMESPACE) as store:
            store.put_all(Record("p-1", 1, b"x"), Record("f-1", 2, b"{}", state=State.FAILED))
        yield started


def viewer_url(server: RedisServer) -> str:
    return f"redis://retryd-web:{VIEWER_PASSWORD}@127.0.0.1:{server.port}"


async def test_every_page_works_as_the_read_only_user(server: RedisServer) -> None:
    async with RedisStore.from_url(viewer_url(server), namespace=NAMESPACE) as store:
        app = create_app(WebSettings(read_only=True), Board(store), redis_label="viewer")
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
            for path in ("/", "/tasks?state=pending", "/tasks?state=failed", "/task?id=f-1",
                         "/task?id=f-1&view=hex", "/tasks?state=failed&type=2&order=oldest",
                         "/tasks?state=failed&type=2&after_at=0&after_id=gone"):  # fmt: skip
                page = await client.get(path)
                assert page.status_code == 200, (path, page.text)
            assert "f-1" in (await client.get("/tasks?state=failed")).text
            assert "f-1" in (await client.get("/tasks?state=failed&type=2")).text
        # A page resumed from a task still in place: the script's ZRANK path.
        failed = await store.get_by_task_id("f-1")
        assert await store.list_by_type(State.FAILED, 2, TypeCursor.after(failed)) == []


async def test_the_read_only_user_cannot_change_a_task(server: RedisServer) -> None:
    async with RedisStore.from_url(viewer_url(server), namespace=NAMESPACE) as store:
        with pytest.raises((StoreError, NoPermissionError)):
            await store.retry("f-1")
        with pytest.raises((StoreError, NoPermissionError)):
            await store.beat("me", b"", forget_after_seconds=60)
        assert (await store.inspect("f-1")).record.state is State.FAILED
