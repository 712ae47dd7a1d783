"""Retention and failure reasons in the worker: [retention] settings, the pruner's slices and
counts, and the last failure a real handler's exception leaves beside its task."""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from store import Record, RedisStore, State
from worker import Config, ConfigError, Permanent, Registry, Worker, handler, load_config
from worker.metrics import WorkerMetrics
from worker.retention import SLICE, Pruner

TYPE = 7


def retention(**settings: Any) -> Config:
    return Config.from_mapping({"retention": settings})


def finished(task_id: str, state: State, age: timedelta) -> Record:
    when = datetime.now(UTC) - age
    return Record(task_id=task_id, type=TYPE, data=b"x", state=state, next_attempt_at=when)


def pruned_count(metrics: WorkerMetrics, state: str) -> float:
    value = metrics.registry.get_sample_value("retryd_tasks_pruned_total", {"state": state})
    return value or 0.0


# --- [retention] -------------------------------------------------------------------------------


def test_retention_defaults_to_a_week_and_thirty_days() -> None:
    settings = load_config(None, {}).retention
    assert (settings.confirmed, settings.failed) == (604800.0, 2592000.0)


def test_retention_is_read_from_the_file_and_the_environment(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text("[retention]\nconfirmed = 60\nfailed = 0\ninterval = 5\n", encoding="utf-8")
    settings = load_config(path, {"RETRYD_RETENTION_CONFIRMED": "30.5"}).retention
    assert (settings.confirmed, settings.failed, settings.interval) == (30.5, 0.0, 5.0)
    failed_from_env = load_config(path, {"RETRYD_RETENTION_FAILED": "7"}).retention.failed
    assert failed_from_env == 7.0


@pytest.mark.parametrize(
    ("settings", "key"),
    [
        ({"confirmed": -1}, "retention.confirmed"),
        ({"failed": 10**12}, "retention.failed"),
        ({"interval": 0}, "retention.interval"),
        ({"confirmed": "1w"}, "retention.confirmed"),
        ({"keep": 5}, "retention.keep"),
    ],
)
def test_a_bad_retention_setting_is_named(settings: dict[str, Any], key: str) -> None:
    with pytest.raises(ConfigError, match=rf"(^|\W){re.escape(key)}\W"):
        retention(**settings)


# --- the pruner --------------------------------------------------------------------------------


async def test_a_round_prunes_in_slices_and_counts_by_state(redis_store: RedisStore) -> None:
    old = timedelta(hours=2)
    records = [finished(f"c{i}", State.CONFIRMED, old) for i in range(SLICE + 30)]
    records += [finished(f"f{i}", State.FAILED, old) for i in range(5)]
    records += [finished("recent", State.CONFIRMED, timedelta(seconds=1))]
    await redis_store.put_all(*records)
    metrics = WorkerMetrics([TYPE])
    pruner = Pruner(redis_store, retention(confirmed=3600, failed=3600).retention, metrics)
    assert await pruner.round() == SLICE + 35
    assert pruned_count(metrics, "confirmed") == SLICE + 30
    assert pruned_count(metrics, "failed") == 5
    assert await redis_store.count_by_state(State.CONFIRMED) == 1
    assert await pruner.round() == 0


async def test_workers_pruning_together_count_each_task_once(redis_store: RedisStore) -> None:
    await redis_store.put_all(
        *(finished(f"c{i}", State.CONFIRMED, timedelta(hours=1)) for i in range(3 * SLICE))
    )
    settings = retention(confirmed=60, failed=60).retention
    metrics = [WorkerMetrics([TYPE]) for _ in range(4)]
    rounds = await asyncio.gather(*(Pruner(redis_store, settings, m).round() for m in metrics))
    assert sum(rounds) == 3 * SLICE
    assert sum(pruned_count(m, "confirmed") for m in metrics) == 3 * SLICE


async def test_a_running_worker_prunes_every_interval(redis_store: RedisStore) -> None:
    registry = Registry()

    @handler(type=TYPE, registry=registry)
    async def ok(record: Record) -> None:
        return None

    cfg = Config.from_mapping(
        {
            "worker": {"poll_interval": 0.05},
            "retention": {"confirmed": 1, "failed": 0, "interval": 0.1},
        }
    )
    worker = Worker(redis_store, registry, cfg)
    running = asyncio.create_task(worker.run())
    try:
        await redis_store.put_all(Record(task_id="a", type=TYPE, data=b"x"))
        await redis_store.put_all(finished("kept", State.FAILED, timedelta(days=400)))
        deadline = asyncio.get_running_loop().time() + 10
        while await redis_store.count_by_state(State.CONFIRMED) or not pruned_count(
            worker.metrics, "confirmed"
        ):
            assert asyncio.get_running_loop().time() < deadline, "task a was never pruned"
            await asyncio.sleep(0.05)
    finally:
        worker.stop()
        await asyncio.wait_for(running, 10)
    assert await redis_store.count_by_state(State.FAILED) == 1  # failed = 0 keeps forever
    await redis_store.put_all(Record(task_id="a", type=TYPE, data=b"again"))


async def test_prune_failures_never_stop_the_pruner(redis_store: RedisStore) -> None:
    """A round that fails (here: the client closed under it) is logged; run() goes on."""
    settings = retention(confirmed=1, failed=1, interval=0.01).retention
    broken = RedisStore.from_url("redis://127.0.0.1:1/0", namespace="nowhere")
    runner = asyncio.create_task(Pruner(broken, settings, WorkerMetrics([TYPE])).run())
    await asyncio.sleep(0.3)
    assert not runner.done()
    runner.cancel()
    with pytest.raises(asyncio.CancelledError):
        await runner
    await broken.aclose()


# --- failure reasons ---------------------------------------------------------------------------


async def test_a_failed_attempt_leaves_its_exception_beside_the_task(
    redis_store: RedisStore,
) -> None:
    registry = Registry()

    @handler(type=TYPE, max_attempts=5, registry=registry)
    async def broken(record: Record) -> None:
        if record.failed_attempts == 0:
            raise ValueError("bad payload: " + "x" * 3000)
        raise Permanent("the downstream refused it for good")

    cfg = Config.from_mapping(
        {"worker": {"poll_interval": 0.05}, "retry": {"initial_delay": 0, "max_delay": 0}}
    )
    await redis_store.put_all(Record(task_id="a", type=TYPE, data=b"x"))
    await asyncio.wait_for(Worker(redis_store, registry, cfg).run(burst=True), 10)
    details = await redis_store.inspect("a")
    assert details.record.state is State.FAILED
    error = details.last_error
    assert error is not None
    assert error.kind == "worker.errors.Permanent"
    assert error.message == "the downstream refused it for good"
    assert error.failed_attempts == 2
    assert error.at == details.record.next_attempt_at
