"""Reliability scenario 9: clock skew. Two `retryd run` processes, one whose wall clock runs
5 minutes ahead and one 5 minutes behind (time.time, time.time_ns and datetime.now patched in
that process by a sitecustomize.py). Due-ness and leases are decided by the Redis server's
clock, so: no task starts before its next_attempt_at, and no lease expires early.

The ledger records each run's start on its own server's clock (the same machine's clock as the
store server's), never on the skewed worker's.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path

import redis

from store import Record, SyncRedisStore
from store.record import from_micros
from tests.reliability.chaos_handlers import NORMAL
from tests.reliability.conftest import PoolFactory
from tests.reliability.harness import (
    REPORT,
    Ledger,
    ReportRow,
    WorkerProc,
    check_invariants,
    skewed_clock_env,
    wait_until_settled,
)
from tests.servers import RedisServer

SKEW = 300.0  # seconds: far beyond any lease, delay or poll interval of the scenario
# Long enough that a keeper thread starved by a loaded machine (load average 8 on 2 cores)
# still extends within the lease: what is under test is the clock that judges the lease.
LEASE = 2.0
# The queue settles in a few seconds on a quiet machine; this is the ceiling under load.
SETTLE_SECONDS = 60
INITIAL_DELAY = 0.3  # the first retry waits at least this long after a failure


def server_now_us(client: redis.Redis) -> int:
    seconds, micros = client.time()
    return int(seconds) * 1_000_000 + int(micros)


def logged_skew(proc: WorkerProc) -> float:
    """How far the worker's log timestamps (its own wall clock) are from ours, in seconds."""
    started = next(e for e in proc.events() if e.get("event") == "worker started")
    logged = datetime.fromisoformat(started["timestamp"].replace("Z", "+00:00"))
    return (logged - datetime.now(UTC)).total_seconds()


def put(url: str, ns: str, plans: Mapping[str, Mapping[str, object]], due: dict[str, int]) -> None:
    with SyncRedisStore.from_url(url, namespace=ns) as store:
        store.put_all(
            *(
                Record(
                    task_id=task_id,
                    type=NORMAL,
                    data=json.dumps(plan).encode(),
                    next_attempt_at=from_micros(due[task_id]),
                )
                for task_id, plan in plans.items()
            )
        )


def test_skewed_worker_clocks_change_nothing(
    tmp_path: Path,
    store_server: RedisServer,
    store_client: redis.Redis,
    ns: str,
    ledger: Ledger,
    make_pool: PoolFactory,
) -> None:
    """A worker 5 min ahead would start tasks due within 5 min at once if it judged due-ness by
    its clock; one 5 min behind would write leases already expired, and the other worker would
    run its long tasks again. Neither happens."""
    pool = make_pool(
        store_server.url,
        worker={"concurrency": 4, "lease": LEASE},
        retry={"initial_delay": INITIAL_DELAY, "max_delay": 2 * INITIAL_DELAY},
    )
    ahead = pool.start(env=skewed_clock_env(tmp_path, SKEW))
    behind = pool.start(env=skewed_clock_env(tmp_path, -SKEW))
    # The patch is in effect: each process logs on its own, wrong, clock.
    # Within a minute of the skew (the start may have been logged seconds ago): far from 0.
    assert abs(logged_skew(ahead) - SKEW) < 60, ahead.stderr()[:2000]
    assert abs(logged_skew(behind) + SKEW) < 60, behind.stderr()[:2000]

    # Phase 1: tasks due over the next 2.5 s (the ahead worker thinks all of them are due), and
    # tasks that fail once (their retry is due INITIAL_DELAY after the failure, at the least).
    now = server_now_us(store_client)
    later: dict[str, dict[str, float]] = {f"later-{i}": {} for i in range(12)}
    due = {task_id: now + 500_000 + 180_000 * i for i, task_id in enumerate(later)}
    failing: dict[str, dict[str, float]] = {f"fails-{i}": {"fail": 1} for i in range(4)}
    due |= dict.fromkeys(failing, now)
    put(store_server.url, ns, later | failing, due)
    wait_until_settled(store_client, ns, SETTLE_SECONDS)

    # Phase 2: handlers that run 2.5 leases; each worker takes 4 (its concurrency). The lease
    # keeper must extend them, by the server's clock; the behind worker's leases must not look
    # expired to the ahead one.
    now = server_now_us(store_client)
    long = {f"long-{i}": {"sleep": 2.5 * LEASE} for i in range(8)}
    due |= dict.fromkeys(long, now)
    put(store_server.url, ns, long, due)
    wait_until_settled(store_client, ns, SETTLE_SECONDS)

    plans = later | failing | long
    verdict = check_invariants(store_client, ns, plans, ledger, pool.faults)
    runs = verdict.runs
    early = []
    for task_id in plans:
        first, *rest = runs[task_id]
        if first.start < due[task_id]:
            early.append((task_id, (due[task_id] - first.start) / 1e6))
        for failed, retry in zip(runs[task_id], rest, strict=False):
            assert failed.raised
            assert failed.end is not None
            if retry.start < failed.end + INITIAL_DELAY * 1_000_000:
                early.append((task_id, (failed.end + INITIAL_DELAY * 1e6 - retry.start) / 1e6))
    assert not early, f"runs started before they were due (task, seconds early): {early}"
    assert all(len(runs[t]) == 2 for t in failing), {t: runs[t] for t in failing}
    assert all(len(runs[t]) == 1 for t in later | long)  # no lease expired early
    long_pids = {runs[t][0].pid for t in long}
    assert long_pids == {ahead.pid, behind.pid}, "each skewed worker must hold long leases"
    ran_by = {r.pid for task_runs in runs.values() for r in task_runs}
    assert ran_by == {ahead.pid, behind.pid}
    for proc in (ahead, behind):
        assert proc.count("lease lost; the outcome of this run will be refused") == 0
    margin = min(runs[t][0].start - due[t] for t in later) / 1e6
    REPORT.append(
        ReportRow(
            "9 clock skew +-5 min",
            len(plans),
            verdict.lost,
            verdict.duplicates,
            "-",
            f"0 early starts (closest {margin * 1000:.0f} ms after due); "
            f"8 runs of 2.5 leases ran once",
        )
    )
