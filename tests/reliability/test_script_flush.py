"""Scenario 5: the server's script cache is emptied again and again while workers run."""

from __future__ import annotations

import threading

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
from tests.servers import RedisServer

TASKS = 2000


def flush_scripts(server: RedisServer, until: threading.Event) -> int:
    flushes = 0
    with server.client() as client:
        while not until.wait(0.002):
            client.script_flush()
            flushes += 1
    return flushes


def test_script_flush_never_reaches_a_task(
    store_server: RedisServer,
    store_client: redis.Redis,
    ns: str,
    ledger: Ledger,
    make_pool: PoolFactory,
) -> None:
    """SCRIPT FLUSH every 2 ms: scripts are loaded again by themselves; no NOSCRIPT error
    fails a handler, a put or a worker, and every task runs once."""
    pool = make_pool(store_server.url, worker={"concurrency": 8})
    workers = [pool.start() for _ in range(2)]
    done = threading.Event()
    flushes: list[int] = []
    flusher = threading.Thread(target=lambda: flushes.append(flush_scripts(store_server, done)))
    flusher.start()
    try:
        plans = {f"f{i:04d}": {"sleep": 0.002} for i in range(TASKS)}
        put_tasks(store_server.url, ns, plans, batch=50)
        wait_until_settled(store_client, ns, timeout=20)
    except AssertionError:
        raise AssertionError(pool.all_stderr()) from None
    finally:
        done.set()
        flusher.join()
    verdict = check_invariants(store_client, ns, plans, ledger, pool.faults)

    assert all(w.alive() for w in workers)
    logs = pool.all_stderr()
    assert "NOSCRIPT" not in logs
    assert "handler failed" not in logs
    assert "store unavailable" not in logs
    assert verdict.duplicates == 0
    assert all(r.failed_attempts == 0 for r in verdict.scan.records.values())
    REPORT.append(
        ReportRow(
            "5 SCRIPT FLUSH every 2 ms",
            TASKS,
            verdict.lost,
            verdict.duplicates,
            "-",
            f"{flushes[0]} flushes; no NOSCRIPT in logs, no failed attempt",
        )
    )
