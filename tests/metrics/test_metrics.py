"""/metrics after known workloads through a real Worker, scraped over HTTP from a real listener."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import redis
from prometheus_client import CONTENT_TYPE_LATEST

from store import Record, RedisStore, State
from tests.metrics.client import Samples, get, samples, scrape, value
from tests.metrics.conftest import listening
from tests.servers import redis_server
from worker.config import Config
from worker.loop import Worker
from worker.metrics import build_version
from worker.registry import Registry, handler

OK, FAILS_AT_ONCE, RETRIES_LATER, UNHANDLED = 1, 2, 3, 9
CONFIRMED_N, FAILED_N, RETRIED_N, WAITING_N = 5, 3, 2, 4
WAITED = timedelta(minutes=2)


def _registry() -> Registry:
    reg = Registry()

    @handler(type=OK, registry=reg)
    async def succeed(record: Record) -> None:
        return None

    @handler(type=FAILS_AT_ONCE, max_attempts=1, registry=reg)
    def fail(record: Record) -> None:
        raise RuntimeError("always")

    @handler(type=RETRIES_LATER, max_attempts=5, initial_delay=3600, registry=reg)
    async def fail_for_now(record: Record) -> None:
        raise RuntimeError("not yet")

    return reg


def _config() -> Config:
    config = Config.from_mapping({"worker": {"concurrency": 4, "poll_interval": 0.05}})
    return dataclasses.replace(config, metrics=dataclasses.replace(config.metrics, port=0))


async def _workload(store: RedisStore) -> tuple[Worker, list[str]]:
    """Run 5 successes, 3 exhausted failures, 2 retries-in-an-hour; leave 4 due unhandled."""
    waiting_since = datetime.now(UTC) - WAITED
    records = [Record(f"ok-{i}", OK, b"x") for i in range(CONFIRMED_N)]
    records += [Record(f"fail-{i}", FAILS_AT_ONCE, b"x") for i in range(FAILED_N)]
    records += [Record(f"retry-{i}", RETRIES_LATER, b"x") for i in range(RETRIED_N)]
    records += [
        Record(f"wait-{i}", UNHANDLED, b"x", next_attempt_at=waiting_since)
        for i in range(WAITING_N)
    ]
    await store.put_all(*records)
    worker = Worker(store, _registry(), _config())
    await worker.run(burst=True)
    return worker, [r.task_id for r in records]


async def test_metrics_report_exact_counts_after_a_known_workload(
    redis_store: RedisStore,
) -> None:
    """Store gauges, runs by outcome, inflight and build info match what the worker did."""
    worker, _ = await _workload(redis_store)
    async with listening(redis_store, metrics=worker.metrics, worker=worker) as port:
        reply = await get(port, "/metrics")
    assert reply.status == 200
    assert reply.content_type == CONTENT_TYPE_LATEST
    got = samples(reply.body.decode())
    assert value(got, "retryd_tasks", state="pending") == RETRIED_N + WAITING_N
    assert value(got, "retryd_tasks", state="confirmed") == CONFIRMED_N
    assert value(got, "retryd_tasks", state="failed") == FAILED_N
    assert value(got, "retryd_tasks_ready") == WAITING_N  # the retries are due in an hour
    age = value(got, "retryd_oldest_ready_age_seconds")
    assert age is not None
    assert WAITED.total_seconds() <= age < WAITED.total_seconds() + 60
    assert value(got, "retryd_tasks_ready_unhandled") == WAITING_N  # type 9 has no handler
    stats_age = value(got, "retryd_store_stats_age_seconds")
    assert stats_age is not None
    assert 0 <= stats_age < 1.0
    assert value(got, "retryd_inflight") == 0
    assert value(got, "retryd_build_info", version=build_version()) == 1
    assert value(got, "retryd_redis_errors_total") == 0
    expected_runs = {
        (OK, "confirmed"): CONFIRMED_N,
        (FAILS_AT_ONCE, "failed"): FAILED_N,
        (RETRIES_LATER, "retried"): RETRIED_N,
    }
    for task_type in (OK, FAILS_AT_ONCE, RETRIES_LATER):
        for outcome in ("confirmed", "retried", "failed", "released", "conflict"):
            runs = value(got, "retryd_task_runs_total", type=str(task_type), outcome=outcome)
            assert runs == expected_runs.get((task_type, outcome), 0), (task_type, outcome)
        runs_of_type = CONFIRMED_N if task_type == OK else FAILED_N
        runs_of_type = RETRIED_N if task_type == RETRIES_LATER else runs_of_type
        for histogram in ("retryd_task_duration_seconds", "retryd_task_start_delay_seconds"):
            count = value(got, f"{histogram}_count", type=str(task_type))
            assert count == runs_of_type, (histogram, task_type)


async def test_oldest_ready_age_is_zero_when_nothing_is_due(redis_store: RedisStore) -> None:
    """With only future tasks the age gauge reads 0, not the age of a task not yet due."""
    later = datetime.now(UTC) + timedelta(hours=1)
    await redis_store.put_all(Record("later", OK, b"x", next_attempt_at=later))
    async with listening(redis_store) as port:
        got = await scrape(port)
    assert value(got, "retryd_tasks", state="pending") == 1
    assert value(got, "retryd_tasks_ready") == 0
    assert value(got, "retryd_oldest_ready_age_seconds") == 0


async def test_labels_never_carry_a_task_id(redis_store: RedisStore) -> None:
    """Every label is one of a few bounded names, and no label value is a task id."""
    worker, task_ids = await _workload(redis_store)
    async with listening(redis_store, metrics=worker.metrics, worker=worker) as port:
        got = await scrape(port)
    names = {name for (_, labels) in got for name, _ in labels}
    assert names == {"state", "type", "outcome", "le", "version", "loop", "limit"}
    values = {v for (_, labels) in got for _, v in labels}
    assert values.isdisjoint(task_ids)
    types = {v for (_, labels) in got for k, v in labels if k == "type"}
    assert types == {str(OK), str(FAILS_AT_ONCE), str(RETRIES_LATER)}  # the unhandled 9: absent


def _stats_calls(client: redis.Redis) -> int:
    """EVALSHA calls the server has run: each stats() is exactly one."""
    stats = client.info("commandstats").get("cmdstat_evalsha", {"calls": 0})
    return int(stats["calls"])


async def test_scrapes_within_a_second_share_one_stats_call() -> None:
    """Two scrapes, a probe and ten concurrent scrapes within 1 s cost Redis one stats call."""
    with redis_server() as server, server.client() as admin:
        async with RedisStore.from_url(server.url, namespace="cache") as store:
            await store.stats()  # loads the script: later calls are one EVALSHA each
            async with listening(store) as port:
                before = _stats_calls(admin)
                first, second = await scrape(port), await scrape(port)
                assert (await get(port, "/readyz")).status == 200
                await asyncio.gather(*(scrape(port) for _ in range(10)))
                assert _stats_calls(admin) - before == 1
                assert first == second
                await asyncio.sleep(1.05)  # past the cache's second
                await scrape(port)
                assert _stats_calls(admin) - before == 2


async def test_scrape_without_redis_serves_worker_metrics_and_counts_the_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Redis down: /metrics is 200 with the worker's series, the store gauges keep their last
    values (an alert on them must not resolve mid-outage) with their staleness, errors counted;
    Redis back on the same port (its AOF reloaded): fresh gauges again."""
    monkeypatch.setattr("worker.http.STATS_CACHE_SECONDS", 0.0)  # every request asks Redis
    with redis_server("--appendonly", "yes") as server:
        async with RedisStore.from_url(server.url, namespace="down") as store:
            worker, _ = await _workload(store)
            async with listening(store, metrics=worker.metrics, worker=worker) as port:
                up = await scrape(port)
                assert value(up, "retryd_tasks", state="confirmed") == CONFIRMED_N
                server.stop()
                await asyncio.sleep(0.2)
                down = [await scrape(port), await scrape(port)]
                for got, errors in zip(down, (1, 2), strict=True):
                    assert value(got, "retryd_tasks", state="confirmed") == CONFIRMED_N
                    assert value(got, "retryd_tasks_ready") == WAITING_N
                    assert _number(got, "retryd_store_stats_age_seconds") >= 0.2
                    assert _number(got, "retryd_oldest_ready_age_seconds") >= _number(
                        up, "retryd_oldest_ready_age_seconds"
                    )  # the due task still waits: nobody can claim it meanwhile
                    assert value(got, "retryd_redis_errors_total") == errors
                    assert value(got, "retryd_inflight") == 0
                    ok_runs = value(got, "retryd_task_runs_total", type="1", outcome="confirmed")
                    assert ok_runs == CONFIRMED_N
                server.start()
                back = await scrape(port)
                assert value(back, "retryd_tasks", state="confirmed") == CONFIRMED_N
                assert value(back, "retryd_redis_errors_total") == 2
                assert _number(back, "retryd_store_stats_age_seconds") < 0.2


def _number(got: Samples, name: str) -> float:
    found = value(got, name)
    assert found is not None, f"{name} is missing"
    return found


@pytest.mark.parametrize("refusal", ["busy", "oom"])
async def test_busy_and_oom_replies_count_as_redis_errors(refusal: str) -> None:
    """A claim refused with BUSY (a long script runs) or OOM (maxmemory reached) is a failed
    Redis call: counted in retryd_redis_errors_total, and the work resumes once it clears."""
    with redis_server("--busy-reply-threshold", "50") as server, server.client() as admin:
        async with RedisStore.from_url(server.url, namespace="refused") as store:
            await store.put_all(Record("due", OK, b"x"))
            worker = Worker(store, _registry(), _config())
            clear = _refuse_with_busy(server) if refusal == "busy" else _refuse_with_oom(admin)
            running = asyncio.create_task(worker.run(burst=True))
            await asyncio.sleep(0.5)
            assert not running.done()
            clear()
            await asyncio.wait_for(running, timeout=10)
            assert (await store.get_by_task_id("due")).state == State.CONFIRMED
    errors = worker.metrics.registry.get_sample_value("retryd_redis_errors_total")
    assert errors is not None
    assert errors >= 1


def _refuse_with_busy(server: Any) -> Callable[[], None]:
    """Run an endless read-only script: past busy-reply-threshold every other call gets BUSY."""

    def spin() -> None:
        with server.client() as client, contextlib.suppress(redis.ResponseError):
            client.eval("while true do end", 0)  # ends with an error when killed

    spinner = threading.Thread(target=spin)
    spinner.start()
    time.sleep(0.2)

    def clear() -> None:
        with server.client() as client:
            client.script_kill()
        spinner.join(timeout=10)

    return clear


def _refuse_with_oom(admin: redis.Redis) -> Callable[[], None]:
    """maxmemory below what is used, no eviction: every script that may write gets OOM."""
    admin.config_set("maxmemory", 1)

    def clear() -> None:
        admin.config_set("maxmemory", 0)

    return clear
