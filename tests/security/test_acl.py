"""A Redis ACL user with only what retryd needs, on its namespace's keys and channels only.

The rules below are the ones docs/deploy.md gives operators; the test proves the store works
as that user (every operation, the wake channel included) and that anything else is refused.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
import redis
from redis.exceptions import NoPermissionError, ResponseError

from store import (
    Change,
    NotFoundError,
    Record,
    RedisStore,
    State,
    StoreAccessDenied,
    SyncRedisStore,
)
from tests.servers import RedisServer, redis_server

ADMIN_PASSWORD = "admin-pw"
APP_PASSWORD = "app-pw"
NAMESPACE = "retryd"

# What retryd sends: the scripts (EVALSHA, and EVAL/SCRIPT LOAD when the cache was emptied),
# the commands those scripts run, HGET (get_by_task_id), the wake channel, and what redis-py
# sends on connect and for health checks (CLIENT SETINFO, PING). INFO lets the worker check
# the server's persistence and eviction settings without CONFIG. HSCAN: `retryd migrate` pages
# through the tasks hash to list the tasks stored before the listing by id existed. ZRANK:
# `retryd ls --type` resumes a page of one type from its cursor's rank.
COMMANDS = (
    "+evalsha +eval +script|load +script|exists "
    "+hget +hexists +hset +hdel +hmget +hscan +exists +incrby +sadd +smembers "
    "+zadd +zrem +zrange +zrangebyscore +zrevrangebyscore +zrank +zcard +zcount +time "
    "+publish +subscribe +unsubscribe +ping +info +client|setinfo +client|setname"
)


def acl_rules(namespace: str, password: str) -> list[str]:
    """The ACL SETUSER rules of a retryd user confined to one namespace."""
    tag = "{" + namespace + "}"
    return [
        "on",
        f">{password}",
        "resetkeys",
        f"~{tag}:*",
        "resetchannels",
        f"&{tag}:*",
        "-@all",
        *COMMANDS.split(),
    ]


@pytest.fixture(scope="module")
def server() -> Iterator[RedisServer]:
    with redis_server(password=ADMIN_PASSWORD) as started:
        with started.client() as admin:
            rules = acl_rules(NAMESPACE, APP_PASSWORD)
            # CLIENT SETINFO exists from Redis 7.2 on; an older server refuses its name in a rule.
            if str(admin.info("server")["redis_version"]) < "7.2":
                rules.remove("+client|setinfo")
            admin.execute_command("ACL", "SETUSER", "retryd", *rules)
        yield started


def app_url(server: RedisServer) -> str:
    return f"redis://retryd:{APP_PASSWORD}@127.0.0.1:{server.port}"


async def test_every_store_operation_works_as_the_limited_user(server: RedisServer) -> None:
    async with RedisStore.from_url(app_url(server), namespace=NAMESPACE) as store:
        async with store.wakeups() as wake:
            await store.put_all(Record(task_id="a", type=1, data=b"x"), Record("b", 1, b"y"))
            await asyncio.wait_for(wake.wait(), timeout=5)
        assert await store.which_exist(["a", "b", "c"]) == {"a", "b"}
        assert (await store.server_facts()).version.split()[0] in ("redis", "valkey")
        claim = await store.claim({1: 3}, limit=2, lease_seconds=30)
        assert len(claim.tasks) == 2
        a, b = (c.record for c in claim.tasks)
        assert await store.extend([a, b], lease_seconds=60) == [True, True]
        await store.settle([Change(a, State.CONFIRMED, 0), Change(b, State.PENDING, 1, 0.0)])
        b = await store.get_by_task_id("b")
        b.state, b.next_attempt_at = State.FAILED, datetime.now(UTC) + timedelta(seconds=1)
        await store.update(b)
        assert await store.count_by_state(State.FAILED) == 1
        assert [
            r.task_id
            for r in await store.get_all_ready_by_state(
                State.CONFIRMED, datetime.now(UTC) + timedelta(hours=1)
            )
        ] == ["a"]
        assert (await store.stats()).confirmed == 1
        assert [c.failed for c in await store.count_by_type()] == [1]
        await store.beat("worker-1", b"{}", forget_after_seconds=60)
        assert [b.member for b in (await store.beats(within_seconds=60)).beats] == ["worker-1"]
    with server.client() as admin:
        admin.script_flush()  # the user reloads the scripts by itself (SCRIPT LOAD / EVAL)
    with SyncRedisStore.from_url(app_url(server), namespace=NAMESPACE) as sync:
        assert sync.count_by_state(State.CONFIRMED) == 1


async def test_every_admin_operation_works_as_the_limited_user(server: RedisServer) -> None:
    """Inspect, list, cancel, retry, retry every FAILED, prune, delete and relist: the same
    rules."""
    async with RedisStore.from_url(app_url(server), namespace=NAMESPACE) as store:
        ids = ("c1", "c2", "c3")
        await store.put_all(*(Record(task_id=i, type=2, data=b"x") for i in ids))
        assert await store.cancel("c1", "c2") == 2
        assert (await store.inspect("c1")).record.state is State.FAILED
        far = datetime.now(UTC) + timedelta(hours=1)
        listed = {t.record.task_id for t in await store.list_tasks(State.FAILED, far)}
        assert {"c1", "c2"} <= listed
        assert await store.retry("c1") == 1
        assert await store.retry_failed(2) == 1
        assert await store.cancel("c3") == 1
        await asyncio.sleep(0.01)
        pruned = await store.prune(confirmed_seconds=0, failed_seconds=0.001, limit=10)
        assert pruned.failed >= 1  # c3, cancelled: finished at once
        assert await store.delete("c1", "c2") == 2
        with pytest.raises(NotFoundError):
            await store.inspect("c3")
        await store.put_all(Record(task_id="c4", type=2, data=b"x"))
        assert await store.relist_all() == 0  # `retryd migrate`: HSCAN, then the script


@pytest.mark.parametrize(
    "command",
    [
        ("FLUSHALL",),
        ("CONFIG", "GET", "*"),
        ("KEYS", "*"),
        ("GET", "{other}:tasks"),
        ("HGET", "{other}:tasks", "a"),
        ("DEL", "{retryd}:tasks"),
        ("SHUTDOWN",),
        ("PUBLISH", "{other}:wake", ""),
    ],
)
def test_anything_else_is_refused(server: RedisServer, command: tuple[str, ...]) -> None:
    with redis.Redis.from_url(app_url(server)) as client, pytest.raises(NoPermissionError):
        client.execute_command(*command)


def test_scripts_cannot_reach_another_namespace(server: RedisServer) -> None:
    """ACL key patterns hold inside Lua too: a script given this namespace's keys stays there."""
    refused = pytest.raises(ResponseError, match="can't access")
    with redis.Redis.from_url(app_url(server)) as client, refused:
        client.eval("return redis.call('HGET', '{other}:tasks', 'a')", 1, "{retryd}:tasks")


async def test_the_wake_channel_of_another_namespace_is_refused(server: RedisServer) -> None:
    client = redis.asyncio.Redis.from_url(app_url(server))
    pubsub = client.pubsub()
    await pubsub.subscribe("{other}:wake")
    with pytest.raises(NoPermissionError):
        await asyncio.wait_for(pubsub.get_message(timeout=1.0), 5)
    await pubsub.aclose()  # type: ignore[no-untyped-call]
    await client.aclose()


async def test_a_command_refused_inside_a_script_is_access_denied(server: RedisServer) -> None:
    """NOPERM from a command a script calls (Redis 7.0 answers it as a plain ERR) is
    StoreAccessDenied, as a refused command is outside a script: an ACL to mend, not a script
    failure. Here the user lost HSET, which put_all's script calls."""
    with server.client() as admin:
        rules = acl_rules(NAMESPACE, APP_PASSWORD)  # the app user's rules, less HSET
        if str(admin.info("server")["redis_version"]) < "7.2":
            rules.remove("+client|setinfo")
        admin.execute_command("ACL", "SETUSER", "no-hset", *rules, "-hset")
    url = f"redis://no-hset:{APP_PASSWORD}@127.0.0.1:{server.port}"
    async with RedisStore.from_url(url, namespace=NAMESPACE) as store:
        with pytest.raises(StoreAccessDenied, match="the put_all script was refused") as refused:
            await store.put_all(Record(task_id="denied", type=1, data=b"x"))
    assert refused.value.kind == "NoPermissionError"
    assert "script:" not in str(refused.value)  # the script's SHA and line are left out
    with server.client() as admin:
        assert not admin.hexists("{" + NAMESPACE + "}:tasks", "denied")
