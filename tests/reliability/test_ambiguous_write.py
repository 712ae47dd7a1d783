"""Reliability scenario 7: ambiguous writes. A TCP proxy between the client and redis-server
drops the reply to one script call after the server ran it (then closes that connection, as a
network fault would), or black-holes every connection. The store must not report failure for a
batch it stored, a lost settle reply must not apply an outcome twice, and no call may hang.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta

import pytest
import redis

from store import ExistsError, Record, RedisStore, State, StoreUnavailable, SyncRedisStore
from store._codec import decode_record
from store._scripts import SCRIPT_NAMES, ScriptName, source
from tests.reliability.chaos_handlers import NORMAL
from tests.reliability.conftest import PoolFactory
from tests.reliability.harness import (
    REPORT,
    Ledger,
    ReportRow,
    check_invariants,
    put_tasks,
    wait_until_settled,
)
from tests.reliability.proxy import Proxy
from tests.servers import HOST, RedisServer, wait_for

SOCKET_TIMEOUT = 0.5
# A call may wait one socket_timeout on its command, and put_all a second on its re-send.
TIMEOUT_SLACK = 1.0


def sha(name: ScriptName) -> bytes:
    """The SHA1 the client sends in EVALSHA for one of the store's scripts."""
    digest = hashlib.sha1(source(name).encode("utf-8"))  # noqa: S324 (Redis names scripts by SHA1)
    return digest.hexdigest().encode()


def load_scripts(client: redis.Redis) -> None:
    """Load the store's scripts directly, so that no NOSCRIPT reply is the one the proxy drops."""
    for name in SCRIPT_NAMES:
        client.script_load(source(name))


@pytest.fixture
def proxy(store_server: RedisServer, store_client: redis.Redis) -> Iterator[Proxy]:
    load_scripts(store_client)
    with Proxy(store_server.port) as started:
        yield started


def batch(prefix: str, n: int, data: bytes = b"{}") -> list[Record]:
    later = datetime.now(UTC) + timedelta(hours=1)  # not due: no worker involved here
    return [
        Record(
            task_id=f"{prefix}{i}",
            type=NORMAL,
            data=data,
            reference_id=f"ref-{i}",
            next_attempt_at=later,
        )
        for i in range(n)
    ]


def stored(client: redis.Redis, ns: str, task_id: str) -> Record:
    packed = client.hget("{" + ns + "}:tasks", task_id)
    assert isinstance(packed, bytes), f"{task_id} is not stored"
    return decode_record(task_id, packed)


def test_put_all_reply_lost_is_not_a_failure(
    proxy: Proxy, store_client: redis.Redis, ns: str
) -> None:
    """The put_all script runs, its reply is lost: the store re-sends, finds the batch stored
    exactly as sent, and reports success with the stored ids. A batch that differs still gets
    ExistsError, and so does a batch put twice with no fault at all."""
    with SyncRedisStore.from_url(proxy.url, namespace=ns, socket_timeout=2.0) as store:
        records = batch("sync-", 50)
        proxy.drop_reply_once(sha("put_all"))
        store.put_all(*records)  # must not raise
        assert proxy.dropped.is_set(), "the fault was not injected"
        ids = [r.id for r in records]
        assert ids[0] > 0
        assert ids == list(range(ids[0], ids[0] + 50))
        for r in records:
            assert stored(store_client, ns, r.task_id) == r  # filled from what is stored
            assert r.version == 1
            assert r.created_at is not None

        # The contract: the same batch put again, no fault -> ExistsError.
        with pytest.raises(ExistsError):
            store.put_all(*batch("sync-", 50))
        # A lost reply for a batch that is not the one stored -> still ExistsError.
        proxy.drop_reply_once(sha("put_all"))
        with pytest.raises(ExistsError):
            store.put_all(*batch("sync-", 50, data=b"other"))
        assert proxy.dropped.is_set()
        # A batch that was never stored, whose reply is lost: stored once, reported once.
        fresh = batch("fresh-", 3)
        proxy.drop_reply_once(sha("put_all"))
        store.put_all(*fresh)
        assert [stored(store_client, ns, r.task_id).id for r in fresh] == [r.id for r in fresh]

    async def put_async() -> list[Record]:
        async with RedisStore.from_url(proxy.url, namespace=ns, socket_timeout=2.0) as store:
            records = batch("async-", 50)
            proxy.drop_reply_once(sha("put_all"))
            await store.put_all(*records)
            assert proxy.dropped.is_set(), "the fault was not injected"
            with pytest.raises(ExistsError):
                await store.put_all(*batch("async-", 50))
            return records

    records = asyncio.run(put_async())
    assert all(stored(store_client, ns, r.task_id) == r for r in records)
    assert int(store_client.get("{" + ns + "}:seq") or 0) == 103  # no id was taken twice
    REPORT.append(
        ReportRow(
            "7 put_all reply lost",
            103,
            0,
            0,
            "-",
            "3 lost replies acknowledged, 1 different batch refused (ExistsError)",
        )
    )


def test_settle_reply_lost_applies_the_outcome_once(
    proxy: Proxy,
    store_server: RedisServer,
    store_client: redis.Redis,
    ns: str,
    ledger: Ledger,
    make_pool: PoolFactory,
) -> None:
    """A worker's settle runs but its reply is lost: the worker sends the batch again, which is
    answered as already applied (not a conflict), and the failure is counted once, not twice."""
    pool = make_pool(proxy.url, worker={"concurrency": 2})
    worker = pool.start()
    proxy.drop_reply_once(sha("settle"))
    plans = {"fails-once": {"fail": 1}}
    put_tasks(store_server.url, ns, plans)
    wait_for(proxy.dropped.is_set, "the settle reply to be dropped", 10)
    wait_until_settled(store_client, ns, 10)
    assert worker.count("outcome refused: another worker holds the task now") == 0
    verdict = check_invariants(store_client, ns, plans, ledger, pool.faults)
    runs = verdict.runs["fails-once"]
    assert [(r.version, r.raised) for r in runs] == [(2, True), (4, False)], runs
    record = stored(store_client, ns, "fails-once")
    # put 1, claim 2, the failure (reply lost) 3, the re-sent failure found applied, claim 4,
    # done 5.
    assert (record.state, record.version, record.failed_attempts) == (State.CONFIRMED, 5, 1)
    REPORT.append(
        ReportRow(
            "7 settle reply lost",
            len(plans),
            verdict.lost,
            verdict.duplicates,
            "-",
            "re-sent settle answered as applied; failed_attempts 1, not 2",
        )
    )


def test_black_holed_redis_fails_every_call_within_the_timeout(
    proxy: Proxy, store_client: redis.Redis, ns: str
) -> None:
    """Every store call on a connection that never answers fails within socket_timeout (put_all
    within two: it re-sends once), on a pooled connection and on new ones alike."""

    async def calls() -> dict[str, float]:
        store = RedisStore.from_url(
            proxy.url,
            namespace=ns,
            socket_timeout=SOCKET_TIMEOUT,
            socket_connect_timeout=SOCKET_TIMEOUT,
        )
        async with store:
            await store.put_all(Record(task_id="known", type=NORMAL, data=b"{}"))
            proxy.black_hole = True
            known = Record(task_id="known", type=NORMAL, data=b"{}", version=1)
            attempts: dict[str, Callable[[], Awaitable[object]]] = {
                "get_by_task_id": lambda: store.get_by_task_id("known"),
                "claim": lambda: store.claim({NORMAL: 3}, limit=10, lease_seconds=1.0),
                "extend": lambda: store.extend([known], lease_seconds=1.0),
                "stats": store.stats,
                "count_by_state": lambda: store.count_by_state(State.PENDING),
                "put_all": lambda: store.put_all(Record(task_id="new", type=NORMAL, data=b"")),
            }
            took: dict[str, float] = {}
            for name, call in attempts.items():
                started = time.monotonic()
                with pytest.raises(StoreUnavailable):
                    await asyncio.wait_for(call(), timeout=30)  # a hang fails the test, slowly
                took[name] = time.monotonic() - started
            return took

    took = asyncio.run(calls())
    for name, seconds in took.items():
        bound = SOCKET_TIMEOUT * (2 if name == "put_all" else 1) + TIMEOUT_SLACK
        assert seconds < bound, f"{name} took {seconds:.2f} s on a black-holed connection"
    assert store_client.hget("{" + ns + "}:tasks", "new") is None
    slowest = max(took, key=took.__getitem__)
    REPORT.append(
        ReportRow(
            "7 black-holed Redis",
            1,
            0,
            0,
            f"slowest call {took[slowest]:.2f} s ({slowest})",
            f"socket_timeout {SOCKET_TIMEOUT} s; {len(took)} calls each raised",
        )
    )


def test_recovery_accepts_only_this_batch(store_client: redis.Redis, ns: str) -> None:
    """What put_all accepts after a lost reply: the batch stored as sent by one script run, even
    once a worker claimed it; not a batch that differs, nor ids stored by separate puts."""

    async def check() -> None:
        async with RedisStore.from_url(
            f"redis://{HOST}:{store_client.connection_pool.connection_kwargs['port']}",
            namespace=ns,
        ) as store:
            due_now = [Record(task_id=f"c{i}", type=NORMAL, data=b"x") for i in range(3)]
            await store.put_all(*due_now)
            claim = await store.claim({NORMAL: 3}, limit=10, lease_seconds=30)
            assert len(claim.tasks) == 3
            ids = [r.task_id for r in due_now]

            async def recovered(records: list[Record]) -> bool:
                stored = await store.client.hmget(store.keys.tasks, [r.task_id for r in records])
                return store._commands.put_all_recovered(records, stored)

            again = [Record(task_id=t, type=NORMAL, data=b"x") for t in ids]
            assert await recovered(again)  # claimed since (version 2): still this batch
            assert [r.version for r in again] == [2, 2, 2]
            assert [r.id for r in again] == [r.id for r in due_now]
            assert not await recovered([Record(task_id=t, type=NORMAL, data=b"y") for t in ids])
            assert not await recovered(
                [Record(task_id=t, type=NORMAL, data=b"x", reference_id="r") for t in ids]
            )
            assert not await recovered(
                [Record(task_id=t, type=NORMAL, data=b"x") for t in reversed(ids)]
            )
            await store.put_all(Record(task_id="between", type=NORMAL, data=b"x"))
            await store.put_all(Record(task_id="solo", type=NORMAL, data=b"x"))
            split = [Record(task_id=t, type=NORMAL, data=b"x") for t in ("c2", "solo")]
            assert not await recovered(split)  # each as sent, but ids 3 and 5: not one put
            missing = [Record(task_id=t, type=NORMAL, data=b"x") for t in ("c0", "nope")]
            assert not await recovered(missing)

    asyncio.run(check())
