"""Scenario 10: a poison task kills its worker (os._exit) on every run."""

from __future__ import annotations

import itertools
import threading
import time

import redis

from store import State
from tests.reliability.chaos_handlers import POISON
from tests.reliability.conftest import PoolFactory
from tests.reliability.harness import (
    REPORT,
    Ledger,
    Pool,
    ReportRow,
    check_invariants,
    pending_count,
    put_tasks,
)
from tests.servers import RedisServer

MAX_ATTEMPTS = 3
NORMAL_TASKS = 400


def supervise(pool: Pool, until: threading.Event) -> int:
    """Restart each worker that died, as systemd or Kubernetes would; return how many died."""
    deaths = 0
    replaced: set[int] = set()
    while not until.is_set():
        for proc in list(pool.procs):
            if not proc.alive() and proc.pid not in replaced:
                replaced.add(proc.pid)
                pool.faults.crashed_pids.add(proc.pid)
                deaths += 1
                pool.start(wait=False)
        time.sleep(0.05)
    return deaths


def test_poison_task_fails_after_max_attempts_and_others_flow(
    store_server: RedisServer,
    store_client: redis.Redis,
    ns: str,
    ledger: Ledger,
    make_pool: PoolFactory,
) -> None:
    """The poison task takes its worker down each time it runs; after max_attempts runs it is
    FAILED and never claimed again, while ordinary tasks keep completing in between."""
    pool = make_pool(
        store_server.url,
        worker={"concurrency": 4, "lease": 1.0},
        types={POISON: {"max_attempts": MAX_ATTEMPTS}},
    )
    for _ in range(2):
        pool.start()
    put_tasks(store_server.url, ns, {"poison": {"exit": True}}, task_type=POISON)
    plans = {f"n{i:04d}": {"sleep": 0.01} for i in range(NORMAL_TASKS)}
    done = threading.Event()
    deaths: list[int] = []
    supervisor = threading.Thread(target=lambda: deaths.append(supervise(pool, done)))
    supervisor.start()
    try:
        ids = list(plans)
        for i in range(0, NORMAL_TASKS, 40):  # ordinary work arrives while the poison recurs
            put_tasks(store_server.url, ns, {t: plans[t] for t in ids[i : i + 40]})
            time.sleep(0.4)
        deadline = time.monotonic() + 30
        while pending_count(store_client, ns) and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        done.set()
        supervisor.join()
    verdict = check_invariants(
        store_client, ns, [*plans, "poison"], ledger, pool.faults, expect_failed=["poison"]
    )

    poison = verdict.scan.records["poison"]
    poison_runs = verdict.runs["poison"]
    assert (poison.state, poison.failed_attempts) == (State.FAILED, MAX_ATTEMPTS)
    assert len(poison_runs) == MAX_ATTEMPTS
    assert deaths == [MAX_ATTEMPTS]
    # Between the poison's runs, ordinary tasks completed: the queue never wedged on it.
    ends = [r.end for rs in verdict.runs.values() for r in rs if r.end is not None]
    for a, b in itertools.pairwise(poison_runs):
        assert any(a.start < end < b.start for end in ends), "nothing completed between deaths"
    REPORT.append(
        ReportRow(
            "10 poison task (os._exit)",
            NORMAL_TASKS + 1,
            verdict.lost,
            verdict.duplicates,
            f"FAILED after {len(poison_runs)} runs",
            f"{deaths[0]} worker deaths, restarted by the test; others all CONFIRMED",
        )
    )
