"""Scenarios 4 and 6: redis-server killed under load, and Redis away at start and mid-run."""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.reliability.conftest import PoolFactory, ServerFactory
from tests.reliability.harness import (
    REPORT,
    Ledger,
    ReportRow,
    WorkerProc,
    check_invariants,
    now_us,
    put_tasks,
    wait_until_settled,
)
from tests.servers import RedisServer, free_port, wait_for

UNAVAILABLE = "store unavailable; retrying with backoff"
AVAILABLE = "store available again"


def first_end_after(ledger: Ledger, moment_us: int) -> float:
    """Seconds from moment_us to the first handler run that ended after it."""

    def ends() -> list[int]:
        return [e[3] for e in ledger.entries() if e[0] == "e" and e[3] > moment_us]

    wait_for(lambda: bool(ends()), "a handler run to end", 10)
    return (min(ends()) - moment_us) / 1e6


@pytest.mark.parametrize("fsync", ["always", "everysec"])
def test_kill_redis_under_load(
    fsync: str,
    store_server_factory: ServerFactory,
    ns: str,
    ledger: Ledger,
    make_pool: PoolFactory,
) -> None:
    """kill -9 redis-server mid-run and start it again on its AOF: the workers carry on by
    themselves; with appendfsync always no acknowledged write is lost, so no task runs twice."""
    server = store_server_factory("--appendonly", "yes", "--appendfsync", fsync)
    lease = 3.0  # longer than the outage: a rerun can only come from a lost write
    pool = make_pool(server.url, worker={"concurrency": 8, "lease": lease})
    workers = [pool.start() for _ in range(2)]
    plans = {f"k{i:04d}": {"sleep": 0.04} for i in range(1500)}
    put_tasks(server.url, ns, plans)
    time.sleep(1.2)  # everysec: the puts are on disk; the transitions since may not be
    killed = now_us()
    server.kill()
    time.sleep(0.5)
    server.start()
    restarted = now_us()
    with server.client() as client:
        wait_until_settled(client, ns, timeout=30)
        pool.faults.windows.append((killed, restarted + int(lease * 1e6)))
        verdict = check_invariants(
            client, ns, plans, ledger, pool.faults, writes_may_be_lost=fsync != "always"
        )
    resumed = first_end_after(ledger, restarted)

    assert all(w.alive() for w in workers), pool.all_stderr()
    assert resumed < 5.0
    outages = [e["down_seconds"] for w in workers for e in w.events() if e["event"] == AVAILABLE]
    REPORT.append(
        ReportRow(
            f"4 kill -9 redis, appendfsync {fsync}",
            len(plans),
            verdict.lost,
            verdict.duplicates,
            f"work resumed {resumed:.2f} s after restart",
            f"down 0.5 s; workers saw outages of {', '.join(f'{d:.1f}' for d in outages)} s",
        )
    )


def readyz(port: int) -> int:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=3) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return int(error.code)


def start_observed(pool_start: object, port: int) -> WorkerProc:
    env = {"RETRYD_METRICS_HOST": "127.0.0.1", "RETRYD_METRICS_PORT": str(port)}
    return pool_start(env=env)  # type: ignore[operator, no-any-return]


@pytest.mark.slow
def test_redis_down_at_start_and_mid_run(
    tmp_path: Path, ns: str, ledger: Ledger, make_pool: PoolFactory
) -> None:
    """Workers started with Redis away stay up and log it once; /readyz says 503 until Redis
    is back, then 200; a 5 s outage mid-run is ridden out the same way, and nothing is lost."""
    server = RedisServer(
        tmp_path / "redis", args=["--appendonly", "yes", "--appendfsync", "always"]
    )
    pool = make_pool(server.url, worker={"concurrency": 8})
    ports = [free_port(), free_port()]
    try:
        workers = [start_observed(pool.start, port) for port in ports]
        time.sleep(2.0)
        assert all(w.alive() for w in workers), pool.all_stderr()
        assert [w.count(UNAVAILABLE) for w in workers] == [1, 1]
        assert [readyz(p) for p in ports] == [503, 503]
        server.start()
        up = now_us()
        wait_for(lambda: [readyz(p) for p in ports] == [200, 200], "/readyz 200", 10)
        plans = {f"a{i:04d}": {"sleep": 0.05} for i in range(1000)}
        put_tasks(server.url, ns, plans)
        wait_for(lambda: ledger.started() > 0, "a first run", 10)
        first = first_end_after(ledger, up)
        time.sleep(0.8)
        down_at = now_us()
        server.kill()
        time.sleep(1.0)
        assert [readyz(p) for p in ports] == [503, 503]
        time.sleep(4.0)
        assert all(w.alive() for w in workers), pool.all_stderr()
        server.start()
        back = now_us()
        with server.client() as client:
            wait_until_settled(client, ns, timeout=30)
            pool.faults.windows.append((down_at, back + 1_000_000))
            verdict = check_invariants(client, ns, plans, ledger, pool.faults)
        resumed = first_end_after(ledger, back)
        assert [readyz(p) for p in ports] == [200, 200]
        # One line per outage; a pooled connection left from before the restart can fail once
        # more after it: within 1 s of the recovery that is the same outage (no line), later a
        # zero-length one (see docs/reliability.md): at most one more.
        lines = [w.count(UNAVAILABLE) for w in workers]
        assert all(2 <= n <= 3 for n in lines), lines
        assert "Traceback" not in pool.all_stderr()
        assert resumed < 3.0  # the outage backoff is capped at 1 s
    finally:
        pool.stop_all()
        server.stop()
    REPORT.append(
        ReportRow(
            "6 redis down at start, 5 s mid-run",
            len(plans),
            verdict.lost,
            verdict.duplicates,
            f"first run {first:.2f} s after start; resumed {resumed:.2f} s after return",
            f"'unavailable' lines per worker {lines} for 2 outages; /readyz 503 then 200",
        )
    )
