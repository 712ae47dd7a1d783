"""Sentinel: a RedisStore on a redis+sentinel:// URL follows a failover by itself, losing nothing.

One master, one replica and one Sentinel run on loopback (tests/servers.py). Producers put tasks
and a settler claims and confirms them while `SENTINEL FAILOVER` promotes the replica; the store
must find the new master by itself and keep every write acknowledged outside the failover window.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import time
from collections.abc import Callable, Iterator

import pytest
from redis.exceptions import RedisError, ResponseError

from store import (
    Change,
    ExistsError,
    NotFoundError,
    Record,
    RedisStore,
    State,
    SyncRedisStore,
    TransientError,
)
from tests.servers import RedisServer, SentinelSetup, sentinel_setup
from worker import Config, Registry, Worker, handler

pytestmark = pytest.mark.cluster

PASSWORD = "sentinel-test-pw"
# What a write may raise while the master changes hands; it was not acknowledged, so it may be
# lost, and it is retried by the application (here: the loop moves on).
# (StoreUnavailable, or NotReplicatedError with replicas_to_ack.)
IN_FLIGHT = TransientError


@pytest.fixture(scope="module")
def sentinel() -> Iterator[SentinelSetup]:
    with sentinel_setup(password=PASSWORD) as setup:
        yield setup


class Ledger:
    """What the store acknowledged, as the application saw it, with when (monotonic time)."""

    def __init__(self) -> None:
        self.put: list[tuple[float, str]] = []
        self.confirmed: list[tuple[float, str]] = []
        self.failed_calls = 0
        self.ambiguous_puts: list[str] = []  # ExistsError on a fresh id: stored, reply lost


async def produce(store: RedisStore, ledger: Ledger, stop: asyncio.Event) -> None:
    i = 0
    while not stop.is_set():
        task_id = f"t{i}"
        i += 1
        try:
            await store.put_all(Record(task_id=task_id, type=1, data=b"payload"))
            ledger.put.append((time.monotonic(), task_id))
        except ExistsError:
            ledger.ambiguous_puts.append(task_id)
        except IN_FLIGHT:
            ledger.failed_calls += 1
            await asyncio.sleep(0.01)


async def settle(store: RedisStore, ledger: Ledger, stop: asyncio.Event) -> None:
    while not stop.is_set():
        try:
            claim = await store.claim({1: 5}, limit=20, lease_seconds=30)
            if not claim.tasks:
                await asyncio.sleep(0.005)
                continue
            changes = [Change(c.record, State.CONFIRMED, 0) for c in claim.tasks]
            done = await store.settle(changes)
            now = time.monotonic()
            settled = zip(changes, done, strict=True)
            ledger.confirmed += [(now, c.record.task_id) for c, ok in settled if ok]
        except IN_FLIGHT:
            ledger.failed_calls += 1
            await asyncio.sleep(0.01)


async def wait_until(check: Callable[[], bool], within: float) -> None:
    deadline = time.monotonic() + within
    while not await asyncio.to_thread(check):
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.05)


def replicated_before(sentinel: SentinelSetup) -> float:
    """An instant before which every acknowledged write is on the replica too.

    Replication is in order: once a probe written after that instant is acknowledged by the
    replica (WAIT), so is everything the master acknowledged before it.
    """
    instant = time.monotonic()
    with sentinel.master.client() as master:
        master.set("{probe}:x", "1")
        assert int(master.execute_command("WAIT", 1, 2000)) == 1
    return instant


async def test_a_store_follows_a_sentinel_failover_by_itself(sentinel: SentinelSetup) -> None:
    """No acknowledged write is lost across SENTINEL FAILOVER.

    Sentinel promotes the replica while the old master still takes writes until it is told to
    follow (seconds): with plain asynchronous replication those writes are discarded when it
    resyncs. With replicas_to_ack=1 a write is acknowledged only after WAIT saw a replica take
    it, so a write to the old master after the promotion fails (NotReplicatedError) instead of
    being acknowledged and lost; the store's pool meanwhile finds the new master by itself.
    """
    first = sentinel.master_address()
    assert first[1] == sentinel.master.port
    ledger, stop = Ledger(), asyncio.Event()
    async with RedisStore.from_url(
        sentinel.url, namespace="failover", socket_timeout=2.0, replicas_to_ack=1
    ) as store:
        workers = [
            asyncio.create_task(produce(store, ledger, stop)),
            asyncio.create_task(settle(store, ledger, stop)),
        ]
        await wait_until(lambda: len(ledger.confirmed) >= 50, within=10)
        safe_until = await asyncio.to_thread(replicated_before, sentinel)
        await wait_until(lambda: _failover(sentinel), within=10)
        await wait_until(lambda: sentinel.master_address() != first, within=15)
        await wait_until(lambda: _role(sentinel.master) == "slave", within=15)
        safe_from = time.monotonic()  # the old master takes no more writes
        before = len(ledger.put), len(ledger.confirmed)
        await wait_until(
            lambda: len(ledger.put) > before[0] + 50 and len(ledger.confirmed) > before[1] + 50,
            within=15,
        )
        stop.set()
        await asyncio.gather(*workers)

        assert sentinel.master_address()[1] == sentinel.replica.port
        lost_in_window = 0
        for at, task_id in ledger.put:
            try:
                await store.get_by_task_id(task_id)
            except NotFoundError:
                assert safe_until < at < safe_from, f"acknowledged put {task_id} lost"
                lost_in_window += 1
        for at, task_id in ledger.confirmed:
            if not safe_until < at < safe_from:
                assert (await store.get_by_task_id(task_id)).state is State.CONFIRMED
    print(  # the figures for the report (pytest -s)
        f"failover: {len(ledger.put)} puts acked, {lost_in_window} of them lost in the "
        f"{safe_from - safe_until:.2f} s window, {len(ledger.confirmed)} confirmed, "
        f"{ledger.failed_calls} calls failed in flight, {len(ledger.ambiguous_puts)} ambiguous"
    )
    assert lost_in_window == 0, f"{lost_in_window} acknowledged puts lost in the failover"


def _failover(sentinel: SentinelSetup) -> bool:
    """Start a failover; False while the Sentinel has not yet vetted the replica (NOGOODSLAVE)."""
    with sentinel.sentinel.client(password=None) as admin:
        try:
            admin.execute_command("SENTINEL FAILOVER", sentinel.service)
        except ResponseError as error:
            if "NOGOODSLAVE" not in str(error):
                raise
            return False
    return True


def _role(server: RedisServer) -> str:
    with server.client(decode_responses=True) as client, contextlib.suppress(RedisError):
        return str(client.info("replication")["role"])
    return "unknown"


async def test_a_worker_follows_a_sentinel_failover_and_loses_no_task(
    sentinel: SentinelSetup,
) -> None:
    """A running Worker rides out SENTINEL FAILOVER: every acknowledged put ends CONFIRMED, and
    no task churns through attempts.

    For seconds after the promotion the new master has no replica (the Sentinel demotes the old
    master only later), so with replicas_to_ack every settle fails NotReplicatedError. The worker
    must then stop claiming and say why, not run tasks again and again: once its pooled
    connections followed the old master back (a redis-py reconnect skips the Sentinel), and the
    same tasks were claimed on both servers with their attempts cycling 1, 2, 3, 1, 2, 3.
    """
    registry = Registry()
    ran: collections.Counter[str] = collections.Counter()

    @handler(type=1, registry=registry)
    async def note(record: Record) -> None:
        ran[record.task_id] += 1

    config = Config.from_mapping(
        {
            "redis": {"replicas_to_ack": 1},
            "worker": {"concurrency": 8, "batch": 20, "lease": 2.0, "poll_interval": 0.1},
            "retry": {"initial_delay": 0.05, "max_delay": 0.2},
        }
    )
    ledger, stop = Ledger(), asyncio.Event()
    async with RedisStore.from_url(
        sentinel.url, namespace="failover-worker", socket_timeout=2.0, replicas_to_ack=1
    ) as store:
        worker = Worker(store, registry, config)
        running = asyncio.create_task(worker.run())
        producer = asyncio.create_task(produce(store, ledger, stop))
        await wait_until(lambda: len(ran) >= 50, within=10)
        first = sentinel.master_address()
        await wait_until(lambda: _failover(sentinel), within=10)
        await wait_until(lambda: sentinel.master_address() != first, within=15)
        before = len(ledger.put)
        # Puts fail until the Sentinel demotes the old master (8 to ~20 s after the switch).
        await wait_until(lambda: len(ledger.put) > before + 50, within=35)
        stop.set()
        await producer
        acknowledged = [task_id for _, task_id in ledger.put]
        # A run whose outcome a failover refused runs again: wait until nothing is pending.
        with SyncRedisStore.from_url(sentinel.url, namespace="failover-worker") as reader:
            await wait_until(lambda: reader.count_by_state(State.PENDING) == 0, within=30)
        worker.stop()
        await running
        records = [await store.get_by_task_id(task_id) for task_id in acknowledged]
    for record in records:
        assert record.state is State.CONFIRMED, record.task_id
    # A task in flight at the promotion may run once more (its claim or outcome written to the
    # old master only): once, never more, and at most one failed attempt counted for it.
    twice = sorted(task_id for task_id, runs in ran.items() if runs == 2)
    assert max(ran.values()) <= 2, ran.most_common(5)
    assert len(twice) <= 8 + 20, twice  # concurrency + one batch: what was in flight
    assert max(r.failed_attempts for r in records) <= 1
    print(
        f"worker failover: {len(acknowledged)} acknowledged puts, all confirmed; "
        f"{sum(ran.values())} runs, {len(twice)} tasks ran twice"
    )
