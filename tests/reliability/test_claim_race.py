"""Scenario 8: four worker processes race to claim 10,000 tasks that are all due at once."""

from __future__ import annotations

import itertools
import time

import redis

from tests.reliability.conftest import PoolFactory
from tests.reliability.harness import (
    REPORT,
    Ledger,
    ReportRow,
    check_invariants,
    put_tasks,
    wait_until_settled,
)
from tests.servers import RedisServer, wait_for

TASKS = 10_000
WORKERS = 4
CONCURRENCY = 16


def test_claim_race_runs_each_task_once(
    store_server: RedisServer,
    store_client: redis.Redis,
    ns: str,
    ledger: Ledger,
    make_pool: PoolFactory,
) -> None:
    """4 processes x 16 handlers on 10,000 due tasks: every task runs exactly once, and no two
    runs of one task ever overlap."""
    pool = make_pool(store_server.url, worker={"concurrency": CONCURRENCY, "batch": CONCURRENCY})
    plans = {f"r{i:05d}": {"sleep": 0.001} for i in range(TASKS)}
    put_tasks(store_server.url, ns, plans, batch=1000)
    procs = [pool.start(wait=False) for _ in range(WORKERS)]
    wait_for(lambda: all(p.count("worker started") for p in procs), "the workers to start", 20)
    started = time.monotonic()
    wait_until_settled(store_client, ns, timeout=90)
    elapsed = time.monotonic() - started
    verdict = check_invariants(store_client, ns, plans, ledger, pool.faults)

    assert verdict.duplicates == 0
    assert {t: len(r) for t, r in verdict.runs.items()} == dict.fromkeys(plans, 1)
    for task_runs in verdict.runs.values():
        for a, b in itertools.pairwise(task_runs):
            assert a.end is not None
            assert a.end <= b.start, f"overlapping runs of {a.task_id}"
    by_worker = {p.pid: 0 for p in procs}
    for task_runs in verdict.runs.values():
        by_worker[task_runs[0].pid] += 1
    assert all(by_worker.values()), f"a worker ran nothing: {by_worker}"
    REPORT.append(
        ReportRow(
            "8 claim race 4x16",
            TASKS,
            verdict.lost,
            verdict.duplicates,
            "-",
            f"0 overlaps; drained in {elapsed:.1f} s ({TASKS / elapsed:.0f}/s); "
            f"per worker {sorted(by_worker.values())}",
        )
    )
