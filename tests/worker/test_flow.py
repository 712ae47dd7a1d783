"""Per-type flow control in a real Worker: [types.N] concurrency and rate, on MemoryStore, the
test Redis and PostgreSQL, in burst mode.

Handlers are async and count themselves in and out on the test's own event loop, so the most
runs of a type at once is exact, not sampled. Nothing is mocked.
"""

from __future__ import annotations

import asyncio
import collections
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from store import MemoryStore, Record, RedisStore, State, WorkerStore
from tests.pg import postgres_store
from tests.worker.burst import BURST_TIMEOUT, task
from worker import Config, Registry, Worker, handler

LIMITED, OTHER = 7, 8


@pytest.fixture(params=["memory", "redis", "postgres"])
async def store(
    request: pytest.FixtureRequest, redis_url: str, namespace: str
) -> AsyncIterator[WorkerStore]:
    if request.param == "memory":
        yield MemoryStore()
        return
    if request.param == "postgres":
        async with postgres_store(request.getfixturevalue("postgres_url"), namespace) as pg:
            yield pg
        return
    async with RedisStore.from_url(redis_url, namespace=namespace) as redis_store:
        yield redis_store


def flow_config(types: dict[str, dict[str, Any]], **worker: Any) -> Config:
    settings = {"concurrency": 8, "batch": 20, "lease": 5.0, "poll_interval": 0.05} | worker
    retry = {"max_attempts": 3, "initial_delay": 0, "max_delay": 0, "timeout": 5}
    return Config.from_mapping({"worker": settings, "retry": retry, "types": types})


class Overlap:
    """Runs in flight per type, and the most there ever were at once."""

    def __init__(self) -> None:
        self.now: collections.Counter[int] = collections.Counter()
        self.most: collections.Counter[int] = collections.Counter()
        self.started: list[tuple[float, int]] = []  # (monotonic, type)

    async def run(self, record: Record, seconds: float) -> None:
        self.started.append((time.monotonic(), record.type))
        self.now[record.type] += 1
        self.most[record.type] = max(self.most[record.type], self.now[record.type])
        try:
            await asyncio.sleep(seconds)
        finally:
            self.now[record.type] -= 1


def registry_of(overlap: Overlap, seconds: float) -> Registry:
    registry = Registry()
    for task_type in (LIMITED, OTHER):

        @handler(type=task_type, registry=registry)
        async def note(record: Record) -> None:
            await overlap.run(record, seconds)

    return registry


async def burst(store: WorkerStore, registry: Registry, cfg: Config) -> Worker:
    worker = Worker(store, registry, cfg)
    await asyncio.wait_for(worker.run(burst=True), BURST_TIMEOUT)
    return worker


def sample(worker: Worker, name: str, **labels: str) -> float | None:
    return worker.metrics.registry.get_sample_value(name, labels)


@pytest.mark.parametrize(
    "seconds",
    [
        0.0,  # runs this short are claimed ahead of free slots: the type's room counts them
        0.05,  # runs too long for claiming ahead
    ],
)
async def test_a_type_never_runs_more_than_its_concurrency_and_the_others_use_the_rest(
    store: WorkerStore, seconds: float
) -> None:
    overlap = Overlap()
    await store.put_all(
        *(task(f"a{i}", LIMITED) for i in range(40)), *(task(f"b{i}", OTHER) for i in range(40))
    )
    cfg = flow_config({str(LIMITED): {"concurrency": 2}})
    worker = await burst(store, registry_of(overlap, seconds), cfg)
    assert await store.count_by_state(State.CONFIRMED) == 80
    assert overlap.most[LIMITED] <= 2
    if seconds:  # runs long enough to overlap: the other type took the free slots
        assert overlap.most[LIMITED] == 2
        assert overlap.most[OTHER] >= 4
    assert sample(worker, "retryd_type_concurrency_limit", type=str(LIMITED)) == 2
    assert sample(worker, "retryd_type_concurrency_limit", type=str(OTHER)) is None
    held = sample(worker, "retryd_type_held_back_total", type=str(LIMITED), limit="concurrency")
    assert held is not None
    assert held >= 1
    assert sample(worker, "retryd_type_held_back_total", type=str(OTHER), limit="rate") == 0


async def test_a_rate_spaces_a_types_starts_and_the_other_type_runs_meanwhile(
    store: WorkerStore,
) -> None:
    """Type 7 at 5 starts a second (burst 1): its 6 tasks, the oldest due, start over at least
    a second, while type 8's 30 run at once. The burst run waits for the held tasks instead of
    ending, and sleeps until each next token, not poll_interval (30 s here)."""
    overlap = Overlap()
    await store.put_all(*(task(f"a{i}", LIMITED) for i in range(6)))  # put first: due first
    await store.put_all(*(task(f"b{i}", OTHER) for i in range(30)))
    cfg = flow_config({str(LIMITED): {"rate": 5, "burst": 1}}, poll_interval=30.0)
    worker = await burst(store, registry_of(overlap, 0.0), cfg)
    assert await store.count_by_state(State.CONFIRMED) == 36
    limited = [at for at, t in overlap.started if t == LIMITED]
    others = [at for at, t in overlap.started if t == OTHER]
    assert len(limited) == 6
    # Five intervals of 0.2 s between six starts, by Redis's clock; a little less here.
    assert limited[-1] - limited[0] >= 0.8
    assert max(others) < limited[-1]  # the other type did not wait behind the held one
    assert sample(worker, "retryd_type_rate_limit", type=str(LIMITED)) == 5
    assert sample(worker, "retryd_type_rate_burst", type=str(LIMITED)) == 1
    held = sample(worker, "retryd_type_held_back_total", type=str(LIMITED), limit="rate")
    assert held is not None
    assert held >= 1


async def test_a_type_with_both_a_concurrency_and_a_rate_keeps_both_and_no_claim_fails(
    store: WorkerStore,
) -> None:
    """At its concurrency limit the type is left out of the claim, and so must its rate be: a
    claim naming the rate of a type it does not claim was refused (every claim, while the type
    was full), found by running it as a user would."""
    overlap = Overlap()
    await store.put_all(*(task(f"a{i}", LIMITED) for i in range(8)))
    await store.put_all(*(task(f"b{i}", OTHER) for i in range(20)))
    cfg = flow_config({str(LIMITED): {"concurrency": 1, "rate": 20, "burst": 2}})
    worker = await burst(store, registry_of(overlap, 0.05), cfg)
    assert await store.count_by_state(State.CONFIRMED) == 28
    assert overlap.most[LIMITED] == 1
    assert sample(worker, "retryd_worker_errors_total", loop="claimer") == 0


async def test_runs_in_flight_are_shown_per_type(store: WorkerStore) -> None:
    registry, release = Registry(), asyncio.Event()
    inside = asyncio.Semaphore(0)

    @handler(type=LIMITED, registry=registry)
    async def waits(record: Record) -> None:
        inside.release()
        await release.wait()

    await store.put_all(*(task(f"a{i}", LIMITED) for i in range(5)))
    worker = Worker(store, registry, flow_config({str(LIMITED): {"concurrency": 3}}))
    running = asyncio.create_task(asyncio.wait_for(worker.run(burst=True), BURST_TIMEOUT))
    for _ in range(3):
        await asyncio.wait_for(inside.acquire(), BURST_TIMEOUT)
    assert sample(worker, "retryd_type_inflight", type=str(LIMITED)) == 3
    release.set()
    await running
    assert sample(worker, "retryd_type_inflight", type=str(LIMITED)) == 0
    assert await store.count_by_state(State.CONFIRMED) == 5
