"""Issue 12: a Redis that refuses writes for a while (OOM at maxmemory, READONLY as a replica).

Both are replies, not lost connections, and both pass: the worker must keep its outcomes, stop
claiming, retry with backoff and write them once the server takes writes again, without a
failed attempt or a second run. Real `retryd run` processes on a redis-server of the test's own.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import redis

from store import State, StoreUnavailable
from store._codec import decode_record
from tests.reliability.conftest import PoolFactory
from tests.reliability.harness import REPORT, Ledger, ReportRow, WorkerProc, put_tasks
from tests.servers import RedisServer, free_port, wait_for

STALLED = "outcomes cannot be written; claiming paused until they are"
RESUMED = "outcomes written again; claiming resumed"
UNAVAILABLE = "store unavailable; retrying with backoff"


def stored(client: redis.Redis, ns: str, task_id: str) -> Any:
    packed = client.hget("{" + ns + "}:tasks", task_id)
    assert isinstance(packed, bytes), task_id
    return decode_record(task_id, packed)


def ended(ledger: Ledger) -> int:
    return sum(1 for e in ledger.entries() if e[0] == "e")


def errors_logged(worker: WorkerProc) -> list[dict[str, Any]]:
    return [e for e in worker.events() if e.get("level") == "error"]


def assert_each_ran_once_and_confirmed(
    client: redis.Redis, ns: str, ids: list[str], ledger: Ledger
) -> None:
    runs = ledger.runs()
    assert {t: len(runs[t]) for t in ids} == dict.fromkeys(ids, 1), runs
    for task_id in ids:
        record = stored(client, ns, task_id)
        # put 1, claim 2, outcome 3: no second claim, no failed attempt
        assert (record.state, record.version, record.failed_attempts) == (
            State.CONFIRMED,
            3,
            0,
        ), (task_id, record)


def test_oom_refusals_are_ridden_out_and_outcomes_still_written(
    store_server: RedisServer,
    store_client: redis.Redis,
    ns: str,
    ledger: Ledger,
    make_pool: PoolFactory,
) -> None:
    """maxmemory is set below what Redis uses while six runs are in flight, and four more tasks
    fall due during the 4 s it lasts. Redis checks OOM at a script's first write, and only for
    commands that may grow memory: the claims (HSET first) and the lease extensions are refused,
    the settles (ZREM first) are not. OOM passes, so the refusals are ridden out as an outage
    (one warning naming OutOfMemoryError, no error line, no failed attempt): the six outcomes
    are written at maxmemory, nothing is claimed meanwhile, and once memory is freed the four
    run. Each task runs once and ends CONFIRMED at version 3 with failed_attempts 0."""
    pool = make_pool(store_server.url, worker={"concurrency": 8, "lease": 2.0})
    worker = pool.start()
    running = {f"oom-{i}": {"sleep": 1.0} for i in range(6)}
    put_tasks(store_server.url, ns, running)
    wait_for(lambda: ledger.started() == len(running), "the runs to start", 10)
    store_client.config_set("maxmemory", 1)
    try:
        due = datetime.now(UTC) + timedelta(seconds=1)
        later: dict[str, dict[str, Any]] = {f"later-{i}": {} for i in range(4)}
        with pytest.raises(StoreUnavailable, match="OutOfMemoryError"):
            put_tasks(store_server.url, ns, later, next_attempt_at=due)  # refused as well
        store_client.config_set("maxmemory", 0)
        put_tasks(store_server.url, ns, later, next_attempt_at=due)
        store_client.config_set("maxmemory", 1)
        refused_at = time.monotonic()
        wait_for(
            lambda: {stored(store_client, ns, t).state for t in running} == {State.CONFIRMED},
            "the outcomes to be written at maxmemory",
            10,
        )
        wait_for(lambda: worker.count(UNAVAILABLE) == 1, "the claims to be refused", 10)
        time.sleep(max(4.0 - (time.monotonic() - refused_at), 0.0))
        assert {stored(store_client, ns, t).version for t in later} == {1}  # never claimed
    finally:
        store_client.config_set("maxmemory", 0)
    freed_at = time.monotonic()
    wait_for(
        lambda: {stored(store_client, ns, t).state for t in later} == {State.CONFIRMED},
        "the tasks due meanwhile to run",
        10,
    )
    ran_after = time.monotonic() - freed_at
    ids = [*running, *later]
    assert_each_ran_once_and_confirmed(store_client, ns, ids, ledger)
    (outage,) = [e for e in worker.events() if e.get("event") == UNAVAILABLE]
    assert "OutOfMemoryError" in outage["error"], outage
    assert worker.count("handler failed") == 0
    assert errors_logged(worker) == []  # passing, not a failure: no "claim failed", no loop error
    assert worker.alive()
    REPORT.append(
        ReportRow(
            "13 i12.2b OOM (maxmemory) 4 s",
            len(ids),
            0,
            0,
            f"due tasks ran {ran_after:.2f} s after memory was freed",
            "claims/extends refused, ridden out; 6 outcomes written at maxmemory; "
            "1 run each, v3, 0 failed",
        )
    )


def test_a_store_that_turns_replica_and_back_is_ridden_out(
    store_server: RedisServer,
    store_client: redis.Redis,
    ns: str,
    ledger: Ledger,
    make_pool: PoolFactory,
) -> None:
    """REPLICAOF makes the worker's server a replica (of a master that does not answer, so it
    keeps its data) while six runs are in flight: every write gets READONLY. That passes, so the
    outcomes are kept and retried; after REPLICAOF NO ONE they are written: each task ran once,
    CONFIRMED, failed_attempts 0, and tasks put afterwards run too."""
    pool = make_pool(store_server.url, worker={"concurrency": 8, "lease": 2.0})
    worker = pool.start()
    plans = {f"ro-{i}": {"sleep": 1.0} for i in range(6)}
    put_tasks(store_server.url, ns, plans)
    ids = list(plans)
    wait_for(lambda: ledger.started() == len(ids), "the runs to start", 10)
    store_client.replicaof("127.0.0.1", free_port())  # nobody there: it keeps its data
    try:
        wait_for(lambda: ended(ledger) == len(ids), "the runs to end", 10)
        wait_for(lambda: worker.count(STALLED) == 1, "the writer to say it is stalled", 10)
        read_only_for = time.monotonic()
        time.sleep(3.0)  # longer than a lease
        assert {stored(store_client, ns, t).state for t in ids} == {State.PENDING}
    finally:
        store_client.replicaof("NO", "ONE")
    wait_for(
        lambda: {stored(store_client, ns, t).state for t in ids} == {State.CONFIRMED},
        "the outcomes to be written",
        10,
    )
    written_after = time.monotonic() - read_only_for
    assert_each_ran_once_and_confirmed(store_client, ns, ids, ledger)
    (stall,) = [e for e in worker.events() if e.get("event") == STALLED]
    assert "ReadOnlyError" in stall["error"], stall
    assert worker.count("handler failed") == 0
    assert errors_logged(worker) == []
    after: dict[str, dict[str, Any]] = {f"after-{i}": {} for i in range(3)}
    put_tasks(store_server.url, ns, after)
    wait_for(
        lambda: {stored(store_client, ns, t).state for t in after} == {State.CONFIRMED},
        "tasks put afterwards to run",
        10,
    )
    REPORT.append(
        ReportRow(
            "13 i12.2c READONLY (replica), back",
            len(ids) + len(after),
            0,
            0,
            f"written {written_after:.2f} s after the stall (3 s read-only)",
            "outcomes kept through READONLY past the lease; 1 run each, CONFIRMED v3, 0 failed",
        )
    )
