"""A real Worker on MemoryStore: the worker's behaviour without any server (like dramatiq's stub
broker). Fast and deterministic; tests/worker/test_worker.py runs the same kinds of cases on
Redis, and tests/store/test_worker_contract.py holds MemoryStore to Redis operation by operation.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from store import Claim, MemoryStore, Record, State, Wakeups, WorkerStore
from tests.worker.burst import BURST_TIMEOUT, TYPE, burst, config, task
from worker import Permanent, Registry, RetryLater, Worker, handler


@pytest.fixture
def store() -> MemoryStore:
    return MemoryStore()


def test_memory_store_is_a_worker_store() -> None:
    """mypy checks the assignment; the test makes the claim visible where workers are tested."""
    worker_store: WorkerStore = MemoryStore()
    assert isinstance(worker_store, MemoryStore)


async def test_each_outcome_is_recorded(store: MemoryStore) -> None:
    registry = Registry()

    @handler(type=TYPE, registry=registry)
    async def steer(record: Record) -> None:
        if record.task_id == "permanent":
            raise Permanent("bad input")
        if record.task_id == "flaky" and record.failed_attempts < 2:
            raise RuntimeError("not yet")
        if record.task_id == "broken":
            raise RuntimeError("never")

    await store.put_all(task("ok"), task("flaky"), task("broken"), task("permanent"))
    worker = await burst(store, registry)
    states = {t: (await store.get_by_task_id(t)) for t in ("ok", "flaky", "broken", "permanent")}
    assert {t: (r.state, r.failed_attempts) for t, r in states.items()} == {
        "ok": (State.CONFIRMED, 0),
        "flaky": (State.CONFIRMED, 2),
        "broken": (State.FAILED, 3),
        "permanent": (State.FAILED, 1),
    }
    runs = worker.metrics.registry.get_sample_value
    assert runs("retryd_task_runs_total", {"type": str(TYPE), "outcome": "confirmed"}) == 2
    assert runs("retryd_task_runs_total", {"type": str(TYPE), "outcome": "failed"}) == 2


_SET_BY_A_HANDLER: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "set_by_a_handler", default=None
)


async def test_what_a_handler_sets_in_its_context_stays_with_its_run(store: MemoryStore) -> None:
    """A run that ends starts the next one from inside its own task (worker/runs.py); the next
    handler must still see the worker's context, not what the last one set in its own."""
    registry, seen = Registry(), []

    @handler(type=TYPE, registry=registry)
    async def leave_a_mark(record: Record) -> None:
        seen.append(_SET_BY_A_HANDLER.get())
        _SET_BY_A_HANDLER.set(record.task_id)
        if record.task_id == "fails" and record.failed_attempts == 0:
            raise RuntimeError("once")

    await store.put_all(*(task(f"t{i}") for i in range(6)), task("fails"))
    await burst(store, registry, config(concurrency=1, batch=2))
    assert seen == [None] * 8  # 7 tasks, one of them run twice
    assert _SET_BY_A_HANDLER.get() is None


async def test_retry_later_waits_without_counting_a_failure(store: MemoryStore) -> None:
    registry, runs = Registry(), []

    @handler(type=TYPE, registry=registry)
    async def later(record: Record) -> None:
        runs.append(time.monotonic())
        if len(runs) == 1:
            raise RetryLater(0.2)

    await store.put_all(task("a"))
    await burst(store, registry)  # burst ends: the retry is not due yet
    waiting = await store.get_by_task_id("a")
    assert (waiting.state, waiting.failed_attempts, len(runs)) == (State.PENDING, 0, 1)
    await asyncio.sleep(0.25)
    await burst(store, registry)
    done = await store.get_by_task_id("a")
    assert (done.state, done.failed_attempts) == (State.CONFIRMED, 0)
    assert runs[1] - runs[0] >= 0.2


async def test_a_timeout_counts_as_a_failure(store: MemoryStore) -> None:
    registry = Registry()

    @handler(type=TYPE, timeout=0.05, max_attempts=1, registry=registry)
    async def slow(record: Record) -> None:
        await asyncio.sleep(5)

    await store.put_all(task("a"))
    await burst(store, registry)
    assert (await store.get_by_task_id("a")).state is State.FAILED


async def test_at_most_concurrency_handlers_run_at_once(store: MemoryStore) -> None:
    registry, running, most = Registry(), [0], [0]

    @handler(type=TYPE, registry=registry)
    async def counted(record: Record) -> None:
        running[0] += 1
        most[0] = max(most[0], running[0])
        await asyncio.sleep(0.01)
        running[0] -= 1

    await store.put_all(*(task(f"t{i}") for i in range(20)))
    await burst(store, registry, config(concurrency=3))
    assert most[0] == 3
    assert await store.count_by_state(State.CONFIRMED) == 20


async def test_a_slow_handler_keeps_its_lease_and_runs_once(store: MemoryStore) -> None:
    registry, runs = Registry(), []

    @handler(type=TYPE, registry=registry)
    async def slow(record: Record) -> None:
        runs.append(record.task_id)
        await asyncio.sleep(0.5)  # five leases long: only extensions keep it ours

    await store.put_all(task("a"))
    await burst(store, registry, config(lease=0.1))
    assert runs == ["a"]
    done = await store.get_by_task_id("a")
    assert (done.state, done.failed_attempts) == (State.CONFIRMED, 0)


async def test_an_idle_worker_starts_a_task_put_due_now_at_once(store: MemoryStore) -> None:
    registry, started = Registry(), asyncio.Event()

    @handler(type=TYPE, registry=registry)
    async def note(record: Record) -> None:
        started.set()

    worker = Worker(store, registry, config(poll_interval=30.0))
    running = asyncio.create_task(worker.run())
    await asyncio.sleep(0.1)  # claimed nothing; now asleep for a poll_interval of 30 s
    put_at = time.monotonic()
    await store.put_all(task("a"))
    await asyncio.wait_for(started.wait(), 5)
    assert time.monotonic() - put_at < 1.0  # the wake-up, not the poll
    worker.stop()
    await asyncio.wait_for(running, 5)
    assert (await store.get_by_task_id("a")).state is State.CONFIRMED


async def test_a_task_of_an_unregistered_type_is_left_untouched(store: MemoryStore) -> None:
    registry = Registry()

    @handler(type=TYPE, registry=registry)
    async def ok(record: Record) -> None:
        pass

    await store.put_all(task("mine"), task("other", task_type=TYPE + 1))
    await burst(store, registry)
    other = await store.get_by_task_id("other")
    assert (other.state, other.version) == (State.PENDING, 1)


class _WakeupsSwallowingOneCancel:
    """Wakeups whose wait() swallows the first cancellation and returns, as redis-py's pub/sub
    read can: the listener then simply waits again."""

    def __init__(self, inner: Wakeups) -> None:
        self._inner = inner
        self.swallowed = 0

    async def wait(self) -> None:
        try:
            await self._inner.wait()
        except asyncio.CancelledError:
            if self.swallowed:
                raise
            self.swallowed += 1


class _StoreSwallowingOneCancel(MemoryStore):
    def __init__(self) -> None:
        super().__init__()
        self.listeners: list[_WakeupsSwallowingOneCancel] = []

    @contextlib.asynccontextmanager
    async def wakeups(self) -> AsyncIterator[Wakeups]:
        async with super().wakeups() as inner:
            listener = _WakeupsSwallowingOneCancel(inner)
            self.listeners.append(listener)
            yield listener


async def test_a_stopped_worker_leaves_no_loop_behind_though_one_swallows_a_cancel() -> None:
    store, registry = _StoreSwallowingOneCancel(), Registry()

    @handler(type=TYPE, registry=registry)
    async def ok(record: Record) -> None:
        pass

    worker = Worker(store, registry, config())
    running = asyncio.create_task(worker.run())
    await asyncio.sleep(0.1)  # every loop started; the listener waits for a wake-up
    worker.stop()
    await asyncio.wait_for(running, 5)
    assert [listener.swallowed for listener in store.listeners] == [1]
    left = [t.get_name() for t in asyncio.all_tasks() if t.get_name().startswith("retryd-")]
    assert left == []


class _SlowClaims(MemoryStore):
    """Claims that take claim_seconds to come back, as PostgreSQL's or a distant server's do;
    records how many tasks each claim asked for."""

    def __init__(self, claim_seconds: float) -> None:
        super().__init__()
        self._claim_seconds = claim_seconds
        self.limits: list[int] = []

    async def claim(self, max_attempts: Any, *, limit: int, **options: Any) -> Claim:
        self.limits.append(limit)
        await asyncio.sleep(self._claim_seconds)
        return await super().claim(max_attempts, limit=limit, **options)


async def _most_asked_for(claim_seconds: float) -> int:
    """Of 400 runs of 2 ms at concurrency 8 and batch 50, the largest claim asked for."""
    store, registry = _SlowClaims(claim_seconds), Registry()

    @handler(type=TYPE, registry=registry)
    async def short(record: Record) -> None:
        await asyncio.sleep(0.002)

    await store.put_all(*(task(f"t{i}") for i in range(400)))
    worker = Worker(store, registry, config(concurrency=8, batch=50))
    await asyncio.wait_for(worker.run(burst=True), BURST_TIMEOUT)
    assert await store.count_by_state(State.CONFIRMED) == 400
    return max(store.limits)


async def test_a_slow_claim_is_met_by_more_tasks_claimed_ahead_up_to_batch() -> None:
    """A claim slower than the runs it feeds: the tasks claimed ahead cover two of its round
    trips (at most batch), so the slots do not wait for each claim; a fast claim keeps the
    usual min(batch, concurrency) ahead."""
    assert await _most_asked_for(0.0) <= 16  # 8 free slots + min(50, 8) ahead
    # 20 ms claims, ~3,000 starts/s: ~120 starts in two round trips, so batch (50) ahead; a
    # claim is made once half of those have started.
    assert 16 < await _most_asked_for(0.02) <= 50
