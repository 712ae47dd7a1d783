"""What only the Redis stores have: scripts, keys, namespaces, and claim/settle/extend/stats.

Leases that must run out are short (SHORT_LEASE) and waited out with asyncio.sleep just past
them; leases that must hold are long (LONG_LEASE), so a slow machine cannot flip an outcome.
"""

from __future__ import annotations

import contextlib
import threading
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import redis
import redis.asyncio

from store import (
    Change,
    NotFoundError,
    NotReplicatedError,
    Ordering,
    Rate,
    Reason,
    Record,
    RedisStore,
    State,
    StoreUnavailable,
    SyncRedisStore,
    ValidationError,
)
from tests.conftest import namespace_keys
from tests.servers import redis_server, wait_for

SHORT_LEASE = 0.05
PAST_SHORT_LEASE = 0.08
LONG_LEASE = 30.0
T0 = datetime(2024, 5, 17, 12, 0, tzinfo=UTC)
FAR = datetime.now(UTC) + timedelta(days=30)


def rec(task_id: str, **fields: Any) -> Record:
    values: dict[str, Any] = {"type": 7, "data": b"payload"} | fields
    return Record(task_id=task_id, **values)


def delete_namespace(client: redis.Redis, name: str) -> None:
    keys = namespace_keys(client, "{" + name + "}:*")
    if keys:
        client.delete(*keys)


@pytest.fixture
def other_namespace(admin_client: redis.Redis) -> Iterator[str]:
    """A second namespace on the same Redis, cleaned like `namespace`."""
    name = f"o-{uuid.uuid4().hex[:12]}"
    yield name
    delete_namespace(admin_client, name)


# --- scripts, keys, namespaces -----------------------------------------------------------------


async def test_every_operation_survives_script_flush(private_redis_url: str) -> None:
    """An emptied script cache (restart, SCRIPT FLUSH) is reloaded, never a NOSCRIPT error."""
    name = f"f-{uuid.uuid4().hex[:12]}"
    admin = redis.Redis.from_url(private_redis_url)
    try:
        async with RedisStore.from_url(private_redis_url, namespace=name) as store:
            first = rec("a")
            await store.put_all(first)
            checks: list[Callable[[], Awaitable[object]]] = [
                lambda: store.put_all(rec(f"b-{uuid.uuid4().hex}")),
                lambda: store.update(first),
                lambda: store.get_all_ready_by_state(State.PENDING, FAR),
                lambda: store.count_by_state(State.PENDING),
                lambda: store.claim({7: 3}, limit=1, lease_seconds=LONG_LEASE),
                lambda: store.extend([first], lease_seconds=LONG_LEASE),
                lambda: store.settle([Change(first, State.PENDING, 0)]),
                lambda: store.stats(),
                lambda: store.list_tasks(State.PENDING, FAR),
                lambda: store.inspect("a"),
                lambda: store.cancel("a"),
                lambda: store.retry("a"),
                lambda: store.retry_failed(limit=10),
                lambda: store.prune(confirmed_seconds=60, failed_seconds=60),
                lambda: store.delete("a"),
            ]
            for check in checks:
                await store.client.script_flush()
                await check()
            assert await store.count_by_state(State.PENDING) == 1
        with SyncRedisStore.from_url(private_redis_url, namespace=name) as sync:
            admin.script_flush()
            sync.put_all(rec("sync"))
            admin.script_flush()
            assert sync.count_by_state(State.PENDING) == 2
            admin.script_flush()
            assert sync.get_all_ready_by_state(State.PENDING, FAR)
    finally:
        delete_namespace(admin, name)
        admin.close()


async def test_namespaces_on_one_redis_do_not_see_each_other(
    redis_url: str, namespace: str, other_namespace: str
) -> None:
    async with (
        RedisStore.from_url(redis_url, namespace=namespace) as one,
        RedisStore.from_url(redis_url, namespace=other_namespace) as two,
    ):
        a1, a2 = rec("same", data=b"one"), rec("same", data=b"two")
        await one.put_all(a1, rec("only-one"))
        await two.put_all(a2)
        assert (a1.id, a2.id) == (1, 1)
        assert (await one.get_by_task_id("same")).data == b"one"
        assert (await two.get_by_task_id("same")).data == b"two"
        with pytest.raises(NotFoundError):
            await two.get_by_task_id("only-one")
        assert await one.count_by_state(State.PENDING) == 2
        assert await two.count_by_state(State.PENDING) == 1
        a1.state = State.CONFIRMED
        await one.update(a1)
        assert (await two.get_by_task_id("same")).state is State.PENDING
        claim = await two.claim({7: 3}, limit=10, lease_seconds=LONG_LEASE)
        assert [c.record.data for c in claim.tasks] == [b"two"]
        assert len(await one.get_all_ready_by_state(State.PENDING, FAR)) == 1


async def test_every_key_of_a_namespace_carries_its_hash_tag(
    redis_store: RedisStore, admin_client: redis.Redis, namespace: str
) -> None:
    """All keys start with '{ns}:' so a namespace lives in one cluster slot."""
    admin_client.zadd(redis_store.keys.index(State.PENDING, 7), {"ghost": 0})
    odd = rec("{other}:tasks", type=2)
    await redis_store.put_all(odd, rec("x", state=State.FAILED), rec("later", next_attempt_at=FAR))
    await redis_store.update(odd)
    claim = await redis_store.claim({7: 3, 2: 3}, limit=10, lease_seconds=LONG_LEASE)
    await redis_store.extend([c.record for c in claim.tasks], lease_seconds=LONG_LEASE)
    await redis_store.settle([Change(c.record, State.CONFIRMED, 0) for c in claim.tasks])
    await redis_store.stats()
    keys = [k.decode() for k in namespace_keys(admin_client, f"*{namespace}*")]
    assert len(keys) >= 5
    tag = "{" + namespace + "}:"
    assert all(k.startswith(tag) for k in keys), keys
    assert redis_store.keys.wake_channel.startswith(tag)


@pytest.mark.parametrize("flavour", ["async", "sync"])
async def test_a_client_that_decodes_responses_is_refused(redis_url: str, flavour: str) -> None:
    if flavour == "async":
        client = redis.asyncio.Redis.from_url(redis_url, decode_responses=True)
        with pytest.raises(ValueError, match="decode_responses"):
            RedisStore(client, namespace="ok")
        await client.aclose()
    else:
        sync_client = redis.Redis.from_url(redis_url, decode_responses=True)
        with pytest.raises(ValueError, match="decode_responses"):
            SyncRedisStore(sync_client, namespace="ok")
        sync_client.close()


@pytest.mark.parametrize("name", ["", "has space", "{tag}", "a/b", "é", "n" * 129, 5, None])
async def test_a_bad_namespace_is_refused(redis_url: str, name: Any) -> None:
    client = redis.asyncio.Redis.from_url(redis_url)
    try:
        with pytest.raises(ValidationError) as caught:
            RedisStore(client, namespace=name)
        assert caught.value.field == "namespace"
    finally:
        await client.aclose()


async def test_a_store_leaves_a_callers_client_open(redis_url: str) -> None:
    client = redis.asyncio.Redis.from_url(redis_url)
    async with RedisStore(client, namespace="unused"):
        pass
    assert await client.ping()
    await client.aclose()


# --- what only Redis has of claim ----------------------------------------------------------


async def test_claim_sets_aside_index_entries_without_a_sound_record(
    redis_store: RedisStore, admin_client: redis.Redis
) -> None:
    """A missing or damaged record is moved to {ns}:idx:damaged and reported, never leased."""
    await redis_store.put_all(rec("good", next_attempt_at=T0 + timedelta(seconds=1)))
    pending = redis_store.keys.index(State.PENDING, 7)
    admin_client.zadd(pending, {"ghost": 10, "broken": 20})
    admin_client.hset(redis_store.keys.tasks, "broken", b"\x07not a record")
    claim = await redis_store.claim({7: 3}, limit=10, lease_seconds=LONG_LEASE)
    assert [c.record.task_id for c in claim.tasks] == ["good"]
    assert sorted(claim.damaged) == ["broken", "ghost"]
    assert admin_client.zscore(redis_store.keys.damaged, "ghost") == 10
    assert admin_client.zscore(redis_store.keys.damaged, "broken") == 20
    assert admin_client.zscore(pending, "ghost") is None
    assert admin_client.hget(redis_store.keys.tasks, "broken") == b"\x07not a record"
    again = await redis_store.claim({7: 3}, limit=10, lease_seconds=LONG_LEASE)
    assert (again.tasks, again.damaged) == ([], [])


@pytest.mark.parametrize("walk", [False, True], ids=["by-time", "by-listing"])
async def test_pages_leave_out_damaged_records_and_keep_their_order(
    redis_store: RedisStore, admin_client: redis.Redis, walk: bool
) -> None:
    """A damaged record (short, or long with an unknown format) or an index entry without a
    record is left out of get_all_ready_by_state and list_tasks as claim sets it aside; the
    sound records keep their pages: id order, cursor, both directions, full pages."""
    if walk:
        redis_store._commands.page_sort_limit = 0  # every page walks the listing
    names = ["g0", "short", "g1", "g2", "long", "g3", "g4"]
    await redis_store.put_all(*(rec(n, next_attempt_at=T0) for n in names))
    admin_client.hset(redis_store.keys.tasks, "short", b"\x01not a record")
    admin_client.hset(redis_store.keys.tasks, "long", b"\x07" + b"\xff" * 80)
    admin_client.zadd(redis_store.keys.index(State.PENDING, 7), {"ghost": 0})
    sound = [await redis_store.get_by_task_id(f"g{i}") for i in range(5)]
    for direction in (Ordering.ASC, Ordering.DESC):
        expected = sorted(sound, key=lambda r: r.id, reverse=direction is Ordering.DESC)
        pages: list[list[str]] = []
        cursor = None
        while True:
            try:
                page = await redis_store.get_all_ready_by_state(
                    State.PENDING, FAR, cursor, 2, direction
                )
            except NotFoundError:
                break
            details = await redis_store.list_tasks(State.PENDING, FAR, cursor, 2, direction)
            assert [d.record for d in details] == page
            pages.append([r.task_id for r in page])
            cursor = page[-1].id
        want = [r.task_id for r in expected]
        assert pages == [want[0:2], want[2:4], want[4:5]]
    assert admin_client.hget(redis_store.keys.tasks, "short") == b"\x01not a record"
    claim = await redis_store.claim({7: 3}, limit=10, lease_seconds=LONG_LEASE)
    assert sorted(claim.damaged) == ["ghost", "long", "short"]


# --- the synchronous store's settle ------------------------------------------------------------


@pytest.fixture
async def sync_store(redis_url: str, namespace: str) -> AsyncIterator[SyncRedisStore]:
    with SyncRedisStore.from_url(redis_url, namespace=namespace) as store:
        yield store


async def test_sync_settle_sees_the_same_records(
    redis_store: RedisStore, sync_store: SyncRedisStore
) -> None:
    sync_store.put_all(rec("a"), rec("b"))
    claim = await redis_store.claim({7: 3}, limit=2, lease_seconds=LONG_LEASE)
    a, b = (c.record for c in claim.tasks)
    stale = b.clone()
    stale.version = 1
    assert sync_store.settle([Change(a, State.CONFIRMED, 0), Change(stale, State.FAILED, 1)]) == [
        True,
        False,
    ]
    assert sync_store.count_by_state(State.CONFIRMED) == 1
    assert (await redis_store.get_by_task_id("b")).state is State.PENDING


# --- replicas_to_ack ---------------------------------------------------------------------------


async def test_a_write_no_replica_confirmed_is_not_acknowledged(
    redis_url: str, namespace: str
) -> None:
    """With replicas_to_ack on a server without replicas, puts and outcomes raise
    NotReplicatedError (WAIT answered 0) instead of returning as if they were safe; a claim
    does not wait (a lost lease only makes a task due again), and reads never do."""
    async with RedisStore.from_url(redis_url, namespace=namespace, replicas_to_ack=1) as store:
        with pytest.raises(NotReplicatedError):
            await store.put_all(rec("a"))
        (claimed,) = (await store.claim({7: 3}, limit=1, lease_seconds=LONG_LEASE)).tasks
        assert await store.extend([claimed.record], lease_seconds=LONG_LEASE) == [True]
        with pytest.raises(NotReplicatedError):
            await store.settle([Change(claimed.record, State.CONFIRMED, 0)])
        assert await store.count_by_state(State.CONFIRMED) == 1  # reads do not wait


def test_the_sync_store_waits_for_replicas_too(redis_url: str, namespace: str) -> None:
    with (
        SyncRedisStore.from_url(redis_url, namespace=namespace, replicas_to_ack=1) as store,
        pytest.raises(NotReplicatedError),
    ):
        store.put_all(rec("a"))


# --- packed batches cut short --------------------------------------------------------------------


@pytest.mark.parametrize("script", ["put_all", "settle", "settle-with-reason", "extend"])
async def test_a_batch_cut_short_is_refused_before_any_write(
    redis_store: RedisStore, script: str
) -> None:
    """Every proper prefix of a one-entry packed batch is refused INVALID, and nothing is
    written: the scripts read the whole batch before their first write. (A prefix ending
    between two entries would be a well-formed shorter batch, hence one entry.)"""
    await redis_store.put_all(rec("held"))
    claim = await redis_store.claim({7: 3}, limit=1, lease_seconds=LONG_LEASE)
    commands = redis_store._commands  # the packing under test, not the public API
    call = {
        "put_all": lambda: commands.put_all([rec("new", reference_id="r")]),
        "settle": lambda: commands.settle([Change(claim.tasks[0].record, State.CONFIRMED, 0)]),
        "settle-with-reason": lambda: commands.settle(
            [Change(claim.tasks[0].record, State.FAILED, 1, reason=Reason("E", "boom"))]
        ),
        "extend": lambda: commands.extend([claim.tasks[0].record], LONG_LEASE),
    }[script]()
    batch = call.args[-1]
    assert isinstance(batch, bytes)
    before = await redis_store.client.hgetall(redis_store.keys.tasks)
    assert not await redis_store.client.exists(redis_store.keys.errors)
    script_of_call = redis_store._scripts[call.script]
    for cut in range(1, len(batch)):
        with pytest.raises(redis.exceptions.ResponseError, match=r"^INVALID"):
            await script_of_call(keys=call.keys, args=[*call.args[:-1], batch[:cut]])
    assert await redis_store.client.hgetall(redis_store.keys.tasks) == before
    assert not await redis_store.client.exists(redis_store.keys.errors)


# --- claim's per-type limits and rates -----------------------------------------------------------

# One good group of claim.lua's ARGV per type: type, max_attempts, cap, per_second, burst.
GOOD_GROUP = ["7", "3", "2", "20.0", "5"]


@pytest.mark.parametrize(
    "group",
    [
        ["7", "3", "-1", "0", "0"],  # a negative cap
        ["7", "3", "2", "1e3", "5"],  # not a plain decimal
        ["7", "3", "2", " 20", "5"],
        ["7", "3", "2", "-20", "5"],
        ["7", "3", "2", "0x10", "5"],
        ["7", "3", "2", "0.00001", "5"],  # below MIN_RATE
        ["7", "3", "2", "100000.5", "5"],  # above MAX_RATE
        ["7", "3", "2", "20.0", "0"],  # a rate without a burst
        ["7", "3", "2", "0", "5"],  # a burst without a rate
        ["7", "3", "2", "20.0", "100001"],
        ["7", "3", "2", "20.0"],  # a group cut short
        [*GOOD_GROUP, *GOOD_GROUP],  # a type twice
    ],
)
async def test_claim_script_refuses_bad_limits_and_rates_before_any_write(
    redis_store: RedisStore, group: list[str]
) -> None:
    """claim.lua checks every group of its ARGV before it writes: a malformed one (sent past
    the Python checks) is refused INVALID, and no task is leased, no bucket touched."""
    await redis_store.put_all(rec("a"), rec("b", type=8))
    call = redis_store._commands.claim({8: 3}, 10, LONG_LEASE, rates={8: Rate(1.0, 1)})
    before = await redis_store.client.hgetall(redis_store.keys.tasks)
    script = redis_store._scripts["claim"]
    # The well-formed group for type 8 first: it would lease "b" and take a token.
    args = [*call.args, *group]
    with pytest.raises(redis.exceptions.ResponseError, match=r"^INVALID"):
        await script(keys=call.keys, args=args)
    assert await redis_store.client.hgetall(redis_store.keys.tasks) == before
    assert not await redis_store.client.exists(redis_store.keys.rates)


async def test_a_claim_without_rates_leaves_the_buckets_alone(redis_store: RedisStore) -> None:
    await redis_store.put_all(rec("a"), rec("b"))
    await redis_store.claim({7: 3}, limit=1, lease_seconds=LONG_LEASE, type_limits={7: 1})
    assert not await redis_store.client.exists(redis_store.keys.rates)
    claim = await redis_store.claim(
        {7: 3}, limit=1, lease_seconds=LONG_LEASE, rates={7: Rate(1.0, 5)}
    )
    # One token taken from a full bucket: it is full again one interval (1 s) after now.
    stored = await redis_store.client.hget(redis_store.keys.rates, "7")
    assert stored is not None
    assert (
        float(stored)
        == (claim.now - datetime(1970, 1, 1, tzinfo=UTC)) / timedelta(microseconds=1) + 1_000_000
    )


async def test_a_busy_server_is_an_outage_not_a_failure() -> None:
    """Another client's script running past busy-reply-threshold: every script call is answered
    BUSY and not run. That passes (the script ends or is killed), so it is StoreUnavailable (the
    worker backs off as through an outage), never a plain StoreError logged as a loop failure."""
    with redis_server("--busy-reply-threshold", "100") as server:
        store = RedisStore.from_url(server.url, namespace="busy")
        await store.put_all(Record("a", 7, b"x"))
        blocker = threading.Thread(target=_run_busy_script, args=(server.url,), daemon=True)
        blocker.start()
        try:
            wait_for(lambda: _busy(server.url), "the server to answer BUSY", 10)
            with pytest.raises(StoreUnavailable) as caught:
                await store.claim({7: 3}, limit=1, lease_seconds=5.0)
            assert caught.value.kind == "BUSY"
            assert "the claim script was refused: BUSY" in str(caught.value)
        finally:
            with redis.Redis.from_url(server.url) as client:
                client.script_kill()
            blocker.join(10)
        claim = await store.claim({7: 3}, limit=1, lease_seconds=5.0)  # refused, not run: now it is
        assert [c.record.task_id for c in claim.tasks] == ["a"]
        await store.aclose()


def _run_busy_script(url: str) -> None:
    with redis.Redis.from_url(url) as client, contextlib.suppress(redis.ResponseError):
        client.eval("while true do end", 0)  # ends with an error reply once killed


def _busy(url: str) -> bool:
    with redis.Redis.from_url(url) as client:
        try:
            client.ping()
        except redis.ResponseError as error:
            return str(error).startswith("BUSY")
        return False
