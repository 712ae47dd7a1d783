"""A real Worker on the test Redis and PostgreSQL, in burst mode: outcomes, leases, concurrency,
wake-ups.

Each test registers its handlers on a private Registry and builds its Config from a mapping
with short leases and no backoff, so burst runs finish in milliseconds. Nothing is mocked.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator
from datetime import datetime, timedelta

import pytest
import structlog

from store import Record, RedisStore, State, WorkerStore
from store.postgres import PostgresStore
from tests.pg import postgres_store
from tests.worker.burst import TYPE, burst, config, task
from worker import Permanent, Registry, RetryLater, Worker, handler


async def server_now(store: WorkerStore) -> datetime:
    return (await store.stats()).now


@pytest.fixture(params=["redis", "postgres"])
async def store(
    request: pytest.FixtureRequest, redis_url: str, namespace: str
) -> AsyncIterator[WorkerStore]:
    """Each server-backed store in turn, on this test's namespace."""
    if request.param == "postgres":
        async with postgres_store(request.getfixturevalue("postgres_url"), namespace) as pg:
            yield pg
        return
    async with RedisStore.from_url(redis_url, namespace=namespace) as redis_store:
        yield redis_store


async def test_success_confirms(store: WorkerStore) -> None:
    registry, seen = Registry(), []

    @handler(type=TYPE, registry=registry)
    async def ok(record: Record) -> None:
        seen.append((record.task_id, record.data))

    await store.put_all(task("a"), task("b"))
    await burst(store, registry)
    assert sorted(seen) == [("a", b"payload"), ("b", b"payload")]
    for task_id in "ab":
        done = await store.get_by_task_id(task_id)
        assert (done.state, done.failed_attempts) == (State.CONFIRMED, 0)


async def test_fail_then_succeed(store: WorkerStore) -> None:
    registry, attempts = Registry(), []

    @handler(type=TYPE, registry=registry)
    async def flaky(record: Record) -> None:
        attempts.append(record.failed_attempts)
        if record.failed_attempts < 2:
            raise RuntimeError("not yet")

    await store.put_all(task("a"))
    await burst(store, registry)
    assert attempts == [0, 1, 2]
    done = await store.get_by_task_id("a")
    assert (done.state, done.failed_attempts) == (State.CONFIRMED, 2)


async def test_attempts_exhausted_fail_the_task(store: WorkerStore) -> None:
    registry, runs = Registry(), []

    @handler(type=TYPE, max_attempts=4, registry=registry)
    async def broken(record: Record) -> None:
        runs.append(record.failed_attempts)
        raise RuntimeError("always")

    await store.put_all(task("a"))
    await burst(store, registry)
    assert runs == [0, 1, 2, 3]
    done = await store.get_by_task_id("a")
    assert (done.state, done.failed_attempts) == (State.FAILED, 4)


async def test_failures_wait_their_backoff(store: WorkerStore) -> None:
    registry = Registry()

    @handler(type=TYPE, registry=registry)
    async def broken(record: Record) -> None:
        raise RuntimeError("down")

    await store.put_all(task("a"))
    cfg = config(retry={"initial_delay": 30, "max_delay": 600})
    before = await server_now(store)
    await burst(store, registry, cfg)  # returns: the retry is not due yet
    after = await server_now(store)
    done = await store.get_by_task_id("a")
    assert (done.state, done.failed_attempts) == (State.PENDING, 1)
    assert done.next_attempt_at is not None
    assert before + timedelta(seconds=30) <= done.next_attempt_at
    assert done.next_attempt_at <= after + timedelta(seconds=60)


async def test_permanent_fails_at_once(store: WorkerStore) -> None:
    registry, runs = Registry(), []

    @handler(type=TYPE, registry=registry)
    async def refuses(record: Record) -> None:
        runs.append(1)
        raise Permanent("bad input")

    await store.put_all(task("a"))
    await burst(store, registry)
    assert runs == [1]
    done = await store.get_by_task_id("a")
    assert (done.state, done.failed_attempts) == (State.FAILED, 1)


async def test_retry_later_is_not_a_failure(store: WorkerStore) -> None:
    registry, runs = Registry(), []

    @handler(type=TYPE, registry=registry)
    async def later(record: Record) -> None:
        runs.append(1)
        raise RetryLater(30)

    await store.put_all(task("a", failed_attempts=1))
    before = await server_now(store)
    await burst(store, registry)
    after = await server_now(store)
    assert runs == [1]
    done = await store.get_by_task_id("a")
    assert (done.state, done.failed_attempts) == (State.PENDING, 1)
    assert done.next_attempt_at is not None
    assert before + timedelta(seconds=30) <= done.next_attempt_at
    assert done.next_attempt_at <= after + timedelta(seconds=30)


async def test_a_timeout_counts_as_a_failure(store: WorkerStore) -> None:
    registry, finished = Registry(), []

    @handler(type=TYPE, timeout=0.1, max_attempts=2, registry=registry)
    async def stuck(record: Record) -> None:
        await asyncio.sleep(5)
        finished.append(1)

    await store.put_all(task("a"))
    started = time.monotonic()
    await burst(store, registry)
    assert time.monotonic() - started < 2.0  # two runs of 0.1 s, not of 5 s
    assert finished == []
    done = await store.get_by_task_id("a")
    assert (done.state, done.failed_attempts) == (State.FAILED, 2)


async def test_a_plain_function_runs_in_a_thread(store: WorkerStore) -> None:
    registry, threads = Registry(), []

    @handler(type=TYPE, registry=registry)
    def blocking(record: Record) -> None:
        time.sleep(0.01)  # blocking is allowed here: this is not the event loop's thread
        threads.append(threading.current_thread())

    await store.put_all(task("a"), task("b"))
    await burst(store, registry)
    assert len(threads) == 2
    assert threading.current_thread() not in threads
    assert all(t.name.startswith("retryd-handler") for t in threads)
    done = await store.get_by_task_id("a")
    assert done.state == State.CONFIRMED


async def test_a_task_of_an_unregistered_type_is_left_untouched(
    store: WorkerStore,
) -> None:
    registry, seen = Registry(), []

    @handler(type=TYPE, registry=registry)
    async def ok(record: Record) -> None:
        seen.append(record.task_id)

    await store.put_all(task("mine"), task("theirs", task_type=TYPE + 1))
    before = await store.get_by_task_id("theirs")
    await burst(store, registry)
    assert seen == ["mine"]
    assert await store.get_by_task_id("theirs") == before


async def test_at_most_concurrency_handlers_run_at_once(store: WorkerStore) -> None:
    registry = Registry()
    running, most = 0, 0

    @handler(type=TYPE, registry=registry)
    async def slow(record: Record) -> None:
        nonlocal running, most
        running += 1
        most = max(most, running)
        await asyncio.sleep(0.03)
        running -= 1

    await store.put_all(*(task(f"t{i}") for i in range(20)))
    await burst(store, registry, config(concurrency=3, batch=10))
    assert most == 3
    assert await store.count_by_state(State.CONFIRMED) == 20


async def test_plain_handlers_also_respect_concurrency(store: WorkerStore) -> None:
    registry, lock = Registry(), threading.Lock()
    running, most = 0, 0

    @handler(type=TYPE, registry=registry)
    def slow(record: Record) -> None:
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)
        time.sleep(0.03)
        with lock:
            running -= 1

    await store.put_all(*(task(f"t{i}") for i in range(12)))
    await burst(store, registry, config(concurrency=2))
    assert most == 2
    assert await store.count_by_state(State.CONFIRMED) == 12


async def test_a_slow_handler_keeps_its_lease_and_runs_once(store: WorkerStore) -> None:
    """A handler running past three leases is extended, never claimed again meanwhile."""
    registry, runs = Registry(), []

    @handler(type=TYPE, registry=registry)
    async def slow(record: Record) -> None:
        runs.append(record.version)
        await asyncio.sleep(1.0)

    await store.put_all(task("a"))
    cfg = config(lease=0.25, poll_interval=0.02)
    # A second worker polls for the task all along: a lapsed lease would hand it over.
    first = Worker(store, registry, cfg)
    second = Worker(store, registry, cfg)
    await asyncio.wait_for(asyncio.gather(first.run(burst=True), second.run(burst=True)), 10)
    assert len(runs) == 1
    done = await store.get_by_task_id("a")
    assert (done.state, done.failed_attempts) == (State.CONFIRMED, 0)


async def wait_for_subscriber(store: WorkerStore) -> None:
    for _ in range(200):
        if await _listeners(store) >= 1:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the worker never subscribed to its wake-up channel")


async def _listeners(store: WorkerStore) -> int:
    """Connections subscribed to the store's wake-up channel (Redis) or listening (PostgreSQL:
    an idle session whose last statement was its LISTEN)."""
    if isinstance(store, RedisStore):
        counts = await store.client.pubsub_numsub(store.keys.wake_channel)
        return int(counts[0][1]) if counts else 0
    assert isinstance(store, PostgresStore)
    listen = "LISTEN " + store.schema.quoted
    await store.pool.open()  # the worker opens it too, on its first call: either may be first
    async with store.pool.connection() as conn:
        row = await (
            await conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE state = 'idle' AND query = %s",
                [listen],
            )
        ).fetchone()
    return int(row[0]) if row else 0


async def test_an_idle_worker_starts_a_task_put_due_now_at_once(store: WorkerStore) -> None:
    """Woken by the put, not by polling: the poll interval is 30 s."""
    registry = Registry()
    started: asyncio.Queue[float] = asyncio.Queue()

    @handler(type=TYPE, registry=registry)
    async def note(record: Record) -> None:
        started.put_nowait(time.monotonic())

    worker = Worker(store, registry, config(poll_interval=30.0))
    running = asyncio.create_task(worker.run())
    try:
        await wait_for_subscriber(store)
        await asyncio.sleep(0.05)  # the claimer has found nothing and gone to sleep
        delays = []
        for i in range(5):
            put_at = time.monotonic()
            await store.put_all(task(f"t{i}"))
            delays.append(await asyncio.wait_for(started.get(), 5) - put_at)
            await asyncio.sleep(0.02)
    finally:
        worker.stop()
        await asyncio.wait_for(running, 5)
    print(f"wake-up start delays (ms): {[round(d * 1000, 1) for d in delays]}")
    # Woken, not polled: far below the 30 s poll, with room for a loaded machine (speed is
    # bench/'s business). On PostgreSQL the put's commit, the NOTIFY delivered on commit and
    # the claim's own commit each wait for the WAL to reach the disk.
    assert max(delays) < 1.0, delays


async def test_stop_returns_from_an_idle_run(store: WorkerStore) -> None:
    registry = Registry()

    @handler(type=TYPE, registry=registry)
    async def ok(record: Record) -> None: ...

    worker = Worker(store, registry, config(poll_interval=30.0))
    running = asyncio.create_task(worker.run())
    await asyncio.sleep(0.1)
    worker.stop()
    await asyncio.wait_for(running, 2)


async def test_a_timed_out_plain_handler_holds_its_slot_until_its_thread_returns(
    store: WorkerStore,
) -> None:
    """A thread cannot be interrupted: the next task waits for the slot, it does not time out
    in the pool's queue without ever running."""
    registry, events = Registry(), []

    @handler(type=TYPE, timeout=0.2, registry=registry)
    def plain(record: Record) -> None:
        events.append(("start", record.task_id, time.monotonic()))
        if record.task_id == "stuck":
            time.sleep(0.6)
        events.append(("end", record.task_id, time.monotonic()))

    await store.put_all(task("stuck"))
    await store.put_all(task("next"))
    await burst(store, registry, config(concurrency=1, retry={"max_attempts": 1}))
    assert [(kind, task_id) for kind, task_id, _ in events] == [
        ("start", "stuck"),
        ("end", "stuck"),
        ("start", "next"),
        ("end", "next"),
    ]
    stuck, after = (
        await store.get_by_task_id("stuck"),
        await store.get_by_task_id("next"),
    )
    assert (stuck.state, stuck.failed_attempts) == (State.FAILED, 1)
    assert (after.state, after.failed_attempts) == (State.CONFIRMED, 0)


async def test_an_outcome_refused_for_a_deleted_task_calls_it_vanished(store: WorkerStore) -> None:
    """A task deleted while it runs has its outcome refused, and the log says it vanished, not
    that another worker holds it (tests/reliability/test_signals.py has that case)."""
    registry = Registry()

    @handler(type=TYPE, registry=registry)
    async def deleting(record: Record) -> None:
        if record.task_id == "deleted":
            await store.delete("deleted")

    await store.put_all(task("deleted"), task("kept"))
    with structlog.testing.capture_logs() as logs:
        await burst(store, registry)
    refused = [(e["task_id"], e["event"], e["outcome"]) for e in logs if "refused" in e["event"]]
    assert refused == [
        ("deleted", "outcome refused: the task vanished (deleted while it ran)", "confirmed")
    ]
    assert await store.which_exist(["deleted", "kept"]) == {"kept"}
    assert (await store.get_by_task_id("kept")).state is State.CONFIRMED


async def test_an_outcome_refused_for_a_cancelled_task_says_it_was_cancelled(
    store: WorkerStore,
) -> None:
    """A task cancelled while it runs has its outcome refused, and the log says so (every store
    records a cancel as the last failure 'Cancelled'), not that another worker holds it."""
    registry = Registry()

    @handler(type=TYPE, registry=registry)
    async def cancelling(record: Record) -> None:
        if record.task_id == "cancelled":
            await store.cancel("cancelled")

    await store.put_all(task("cancelled"), task("kept"))
    with structlog.testing.capture_logs() as logs:
        await burst(store, registry)
    refused = [(e["task_id"], e["event"], e["outcome"]) for e in logs if "refused" in e["event"]]
    assert refused == [
        ("cancelled", "outcome refused: the task was cancelled while it ran", "confirmed")
    ]
    assert (await store.get_by_task_id("cancelled")).state is State.FAILED
    assert (await store.get_by_task_id("kept")).state is State.CONFIRMED
