"""Scenarios 2 and 3: SIGTERM drains and releases; SIGSTOP past the lease is fenced off."""

from __future__ import annotations

import os
import signal
import time
import urllib.request

import redis

from store import State
from store._codec import decode_record
from tests.reliability.chaos_handlers import NORMAL
from tests.reliability.conftest import PoolFactory
from tests.reliability.harness import (
    REPORT,
    Ledger,
    ReportRow,
    check_invariants,
    now_us,
    put_tasks,
    wait_until_settled,
)
from tests.servers import RedisServer, free_port, wait_for

GRACE = 0.5
LONG_LEASE = 10.0


def starts_by(ledger: Ledger, pid: int) -> int:
    return sum(1 for e in ledger.entries() if e[0] == "s" and e[1] == pid)


def test_sigterm_drains_then_releases_to_another_worker(
    store_server: RedisServer,
    store_client: redis.Redis,
    ns: str,
    ledger: Ledger,
    make_pool: PoolFactory,
) -> None:
    """SIGTERM: handlers that finish within shutdown_grace are confirmed; the others are
    released, and an idle worker runs them at once, long before their lease would end."""
    pool = make_pool(
        store_server.url,
        worker={"concurrency": 6, "lease": LONG_LEASE, "shutdown_grace": GRACE},
    )
    draining = pool.start()
    plans = {f"long-{i}": {"first_sleep": 30.0} for i in range(4)}
    plans |= {f"short-{i}": {"first_sleep": 0.2} for i in range(2)}
    put_tasks(store_server.url, ns, plans)
    wait_for(lambda: starts_by(ledger, draining.pid) == 6, "6 runs on the first worker", 10)
    taker = pool.start()

    signalled = now_us()
    draining.process.terminate()
    exit_code = draining.process.wait(timeout=GRACE + 5)
    drained = (now_us() - signalled) / 1e6
    wait_until_settled(store_client, ns, timeout=10)
    pool.faults.crashed_pids.add(draining.pid)  # its cancelled handlers run again: expected
    verdict = check_invariants(store_client, ns, plans, ledger, pool.faults)

    assert exit_code == 0, draining.stderr()
    assert drained < GRACE + 1.5, f"drain took {drained:.2f} s with shutdown_grace {GRACE}"
    for task_id in plans:
        runs = verdict.runs[task_id]
        if task_id.startswith("short"):
            assert [r.pid for r in runs] == [draining.pid], runs
            assert runs[0].end is not None
        else:
            assert [r.pid for r in runs] == [draining.pid, taker.pid], runs
            assert runs[0].end is None
        assert verdict.scan.records[task_id].failed_attempts == 0  # a release is no failure
    pickup = max((verdict.runs[t][1].start - signalled) / 1e6 for t in plans if "long" in t)
    assert pickup < GRACE + 1.5 < LONG_LEASE, f"released tasks restarted after {pickup:.2f} s"
    REPORT.append(
        ReportRow(
            "2 SIGTERM drain + release",
            len(plans),
            verdict.lost,
            verdict.duplicates,
            f"exit {drained:.2f} s, rerun {pickup:.2f} s",
            f"grace {GRACE} s, lease {LONG_LEASE} s; 4 released, 2 finished in grace",
        )
    )


def test_sigstop_past_the_lease_is_fenced(
    store_server: RedisServer,
    store_client: redis.Redis,
    ns: str,
    ledger: Ledger,
    make_pool: PoolFactory,
) -> None:
    """A worker frozen past its lease loses the task to another worker; when it wakes, its late
    outcome is refused by the version check, and only the other worker's outcome is stored."""
    lease = 1.0
    pool = make_pool(store_server.url, worker={"concurrency": 2, "lease": lease})
    port = free_port()
    frozen = pool.start(env={"RETRYD_METRICS_HOST": "127.0.0.1", "RETRYD_METRICS_PORT": str(port)})
    plans = {"fenced": {"first_sleep": 0.5}}
    put_tasks(store_server.url, ns, plans)
    wait_for(lambda: starts_by(ledger, frozen.pid) == 1, "the first run", 10)
    os.kill(frozen.pid, signal.SIGSTOP)
    pool.faults.crashed_pids.add(frozen.pid)
    stopped = now_us()
    taker = pool.start()
    wait_until_settled(store_client, ns, timeout=10)
    taken = (now_us() - stopped) / 1e6
    time.sleep(lease)
    os.kill(frozen.pid, signal.SIGCONT)
    wait_for(
        lambda: frozen.count("outcome refused: another worker holds the task now") == 1,
        "the woken worker's outcome to be refused",
        10,
    )
    verdict = check_invariants(store_client, ns, plans, ledger, pool.faults)

    runs = verdict.runs["fenced"]
    assert [(r.pid, r.version) for r in runs] == [(frozen.pid, 2), (taker.pid, 3)]
    assert all(r.end is not None for r in runs)
    assert runs[0].end is not None
    assert runs[1].end is not None
    assert runs[0].end > runs[1].end  # the frozen run finished last, and still lost
    packed = store_client.hget("{" + ns + "}:tasks", "fenced")
    assert isinstance(packed, bytes)
    record = decode_record("fenced", packed)
    # put (1), claim by the frozen worker (2), claim by the other (3), its outcome (4): the late
    # outcome would have made it 5.
    assert (record.state, record.version) == (State.CONFIRMED, 4)
    assert record.failed_attempts == 1  # the lease that ran out is one failed attempt, once
    assert frozen.alive()
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        exposition = response.read().decode()
    conflict = f'retryd_task_runs_total{{outcome="conflict",type="{NORMAL}"}} 1.0'
    assert conflict in exposition, exposition
    REPORT.append(
        ReportRow(
            "3 SIGSTOP past lease, SIGCONT",
            1,
            verdict.lost,
            verdict.duplicates,
            f"taken over {taken:.2f} s",
            f"late outcome refused (conflict metric 1), version 4, lease {lease} s",
        )
    )
