"""Scenarios 14-17 on PostgreSQL: workers SIGKILLed mid-handler, the database crashed and
restarted mid-run, four processes racing to claim, and replies lost after the server ran the
statement (scenario 7's TCP proxy, tests/reliability/proxy.py).

The same harness as the Redis scenarios (real `retryd run` processes, the run ledger on a plain
Redis, Faults to explain every rerun), with the store on PostgreSQL: the machine's server (a
database of the session's own) or, where the scenario crashes it, a server of the test's own
(initdb on a free loopback port).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import random
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import psycopg
import pytest
from psycopg import sql

from store import ExistsError, Record, State
from store.postgres import PostgresStore, SyncPostgresStore
from tests.pg import PostgresServer, migrated_namespace, postgres_server
from tests.reliability.chaos_handlers import NORMAL
from tests.reliability.conftest import PoolFactory
from tests.reliability.harness import REPORT, Faults, Ledger, ReportRow, Run, now_us
from tests.reliability.proxy import Proxy
from tests.servers import wait_for

pytestmark = pytest.mark.slow

_FAR = datetime(2200, 1, 1, tzinfo=UTC)  # as_of for "every task, due or not"


@pytest.fixture
def pg_ns(postgres_url: str, ns: str) -> Iterator[str]:
    """The test's namespace (the one make_pool's workers use), migrated on the session's
    database; its schema dropped afterwards."""
    with migrated_namespace(postgres_url, ns) as namespace:
        yield namespace


@pytest.fixture
def own_server() -> Iterator[PostgresServer]:
    with postgres_server() as server:
        yield server


def put_tasks(url: str, namespace: str, plans: Mapping[str, Mapping[str, Any]]) -> None:
    ids = list(plans)
    with SyncPostgresStore.from_url(url, namespace=namespace) as store:
        for i in range(0, len(ids), 500):
            store.put_all(
                *(Record(t, NORMAL, json.dumps(plans[t]).encode()) for t in ids[i : i + 500])
            )


def records(url: str, namespace: str) -> dict[str, Record]:
    """Every task of the namespace, read straight from its table."""
    with SyncPostgresStore.from_url(url, namespace=namespace) as store:
        found: dict[str, Record] = {}
        for state in (State.PENDING, State.CONFIRMED, State.FAILED):
            for row in store.list_tasks(state, _FAR, limit=1_000_000):
                found[row.record.task_id] = row.record
        return found


def pending(url: str, namespace: str) -> int:
    with psycopg.connect(url, connect_timeout=2) as conn:
        table = sql.Identifier(namespace, "tasks")
        row = conn.execute(sql.SQL("SELECT count(*) FROM {} WHERE state = 1").format(table))
        return int(row.fetchone()[0])  # type: ignore[index]


def wait_until_settled(url: str, namespace: str, timeout: float) -> float:
    started = time.monotonic()
    done = wait_for(lambda: pending(url, namespace) == 0, "every task to settle", timeout, 0.1)
    return done - started


@dataclass
class Verdict:
    lost: int
    duplicates: int
    runs: dict[str, list[Run]]


def check_invariants(
    url: str, namespace: str, put_ids: Iterable[str], ledger: Ledger, faults: Faults
) -> Verdict:
    """Every acknowledged task CONFIRMED, none lost; reruns only where a fault explains them,
    never two runs at one claim version."""
    put = set(put_ids)
    stored = records(url, namespace)
    lost = sorted(put - set(stored))
    assert not lost, f"{len(lost)} acknowledged tasks lost, e.g. {lost[:5]}"
    unfinished = {t: r.state for t, r in stored.items() if r.state is not State.CONFIRMED}
    assert not unfinished, f"tasks not CONFIRMED: {dict(itertools.islice(unfinished.items(), 5))}"
    runs = ledger.runs()
    duplicates = 0
    for task_id, task_runs in runs.items():
        assert task_id in put, f"ledger names unknown {task_id}"
        versions = [r.version for r in task_runs]
        assert len(set(versions)) == len(versions), f"{task_id}: two runs at one version"
        for earlier, later in itertools.pairwise(task_runs):
            if earlier.raised:
                continue  # a planned failure and its retry: not a duplicate
            duplicates += 1
            assert faults.explains(earlier), (
                f"{task_id}: ran again (pid {later.pid}) after a run no fault explains: "
                f"{task_runs} windows {faults.windows}"
            )
    assert set(runs) == put, f"{len(put - set(runs))} tasks never ran"
    return Verdict(len(lost), duplicates, runs)


def busy_pids(ledger: Ledger) -> set[int]:
    return {r.pid for rs in ledger.runs().values() for r in rs if r.end is None}


def test_postgres_sigkill_mid_handler_loses_nothing(
    postgres_url: str, pg_ns: str, ledger: Ledger, make_pool: PoolFactory
) -> None:
    """SIGKILL a busy worker again and again (a supervisor restarts it): nothing is lost, every
    rerun follows a kill, and the orphaned tasks run again about one lease later."""
    lease, kills_wanted = 1.0, 4
    pool = make_pool(postgres_url, worker={"concurrency": 4, "lease": lease})
    for _ in range(3):
        pool.start(wait=True)
    rng = random.Random(11)
    plans = {f"t{i:05d}": {"sleep": round(rng.uniform(0.01, 0.04), 3)} for i in range(1000)}
    ids = list(plans)

    def produce() -> None:
        # ~100 tasks/s, a quarter of the pool's capacity: an orphaned task then waits for its
        # lease, not behind a backlog (claims go oldest due first).
        for i in range(0, len(ids), 25):
            put_tasks(postgres_url, pg_ns, {t: plans[t] for t in ids[i : i + 25]})
            time.sleep(0.25)

    producer = threading.Thread(target=produce)
    producer.start()
    time.sleep(1.0)
    kills = 0
    while kills < kills_wanted and producer.is_alive():
        victims = [p for p in pool.alive() if p.pid in busy_pids(ledger)]
        if not victims:
            time.sleep(0.05)
            continue
        pool.kill(rng.choice(victims))
        kills += 1
        # The supervisor's restart; the next kill only once it runs, so two workers are always
        # there to take the orphans (a loaded machine starts a Python process in seconds).
        pool.start(wait=True)
        time.sleep(0.5)
    producer.join()
    settled = wait_until_settled(postgres_url, pg_ns, timeout=60)
    verdict = check_invariants(postgres_url, pg_ns, plans, ledger, pool.faults)

    recovery = []
    for pid, killed_at in pool.faults.kills:
        waits = [
            (later.start - killed_at) / 1e6
            for rs in verdict.runs.values()
            for earlier, later in itertools.pairwise(rs)
            if earlier.pid == pid and earlier.end is None
        ]
        recovery += [max(waits)] if waits else []
    assert kills == kills_wanted, f"only {kills} kills before the queue drained ({settled:.1f} s)"
    assert verdict.duplicates <= kills * 2 * 4
    assert recovery, "no kill orphaned a run"
    assert max(recovery) < lease + 2.0, recovery
    REPORT.append(
        ReportRow(
            "14 PostgreSQL: SIGKILL workers mid-handler",
            len(plans),
            verdict.lost,
            verdict.duplicates,
            f"max {max(recovery):.2f} s",
            f"{kills} kills, lease {lease} s",
        )
    )


def test_postgres_restarted_mid_run_loses_nothing(
    own_server: PostgresServer, ns: str, ledger: Ledger, make_pool: PoolFactory
) -> None:
    """The database crashes (immediate shutdown) while two workers run 1,500 tasks and comes
    back 2 s later: the workers ride out the outage, nothing is lost, reruns only across it."""
    url = own_server.url
    with migrated_namespace(url, ns) as namespace:
        pool = make_pool(url, worker={"concurrency": 8, "lease": 2.0})
        plans = {f"d{i:05d}": {"sleep": 0.01} for i in range(1500)}
        put_tasks(url, namespace, plans)
        workers = [pool.start() for _ in range(2)]
        wait_for(lambda: len(ledger.runs()) > 200, "the workers to be well under way", 30)
        down = now_us()
        own_server.crash()
        time.sleep(2.0)
        own_server.start()
        up = now_us()
        pool.faults.windows.append((down, up))
        recovered = wait_until_settled(url, namespace, timeout=90)
        verdict = check_invariants(url, namespace, plans, ledger, pool.faults)
        assert all(w.alive() for w in workers), pool.all_stderr()
    REPORT.append(
        ReportRow(
            "15 PostgreSQL: crashed and restarted mid-run",
            len(plans),
            verdict.lost,
            verdict.duplicates,
            f"settled {recovered:.1f} s after the restart",
            "immediate shutdown, down 2 s",
        )
    )


def test_postgres_claim_race_runs_each_task_once(
    postgres_url: str, pg_ns: str, ledger: Ledger, make_pool: PoolFactory
) -> None:
    """4 processes x 16 handlers on 5,000 due tasks: FOR UPDATE SKIP LOCKED gives each task to
    one of them, once; no two runs of a task overlap; every worker gets work."""
    pool = make_pool(postgres_url, worker={"concurrency": 16, "batch": 16})
    plans = {f"r{i:05d}": {"sleep": 0.001} for i in range(5000)}
    put_tasks(postgres_url, pg_ns, plans)
    procs = [pool.start(wait=False) for _ in range(4)]
    wait_for(lambda: all(p.count("worker started") for p in procs), "the workers to start", 20)
    started = time.monotonic()
    wait_until_settled(postgres_url, pg_ns, timeout=90)
    elapsed = time.monotonic() - started
    verdict = check_invariants(postgres_url, pg_ns, plans, ledger, pool.faults)
    assert verdict.duplicates == 0
    assert {t: len(r) for t, r in verdict.runs.items()} == dict.fromkeys(plans, 1)
    by_worker = {p.pid: 0 for p in procs}
    for task_runs in verdict.runs.values():
        by_worker[task_runs[0].pid] += 1
    assert all(by_worker.values()), f"a worker ran nothing: {by_worker}"
    REPORT.append(
        ReportRow(
            "16 PostgreSQL: claim race 4x16",
            len(plans),
            verdict.lost,
            verdict.duplicates,
            "-",
            f"drained in {elapsed:.1f} s ({len(plans) / elapsed:.0f}/s); "
            f"per worker {sorted(by_worker.values())}",
        )
    )


@pytest.fixture
def pg_proxy(postgres_url: str) -> Iterator[tuple[Proxy, str]]:
    """A TCP proxy to the session's PostgreSQL, and the URL of the session's database through
    it."""
    target = urlsplit(postgres_url)
    assert target.port is not None
    with Proxy(target.port) as proxy:
        yield proxy, target._replace(netloc=f"{target.username}@127.0.0.1:{proxy.port}").geturl()


def later_batch(prefix: str, n: int, data: bytes = b"{}") -> list[Record]:
    later = datetime.now(UTC) + timedelta(hours=1)  # not due: no worker involved here
    return [
        Record(f"{prefix}{i}", NORMAL, data, f"ref-{i}", next_attempt_at=later) for i in range(n)
    ]


def stored_pg(url: str, namespace: str, task_id: str) -> Record:
    with SyncPostgresStore.from_url(url, namespace=namespace) as store:
        return store.get_by_task_id(task_id)


def test_postgres_put_all_reply_lost_is_not_a_failure(
    postgres_url: str, pg_ns: str, pg_proxy: tuple[Proxy, str]
) -> None:
    """put_all's statement commits and its reply is lost: the store sends it once more, finds
    the batch stored exactly as sent, and reports success with the stored ids (sync and async
    stores). A batch that differs still gets ExistsError, and so does a batch put twice with no
    fault; a batch never stored whose reply is lost is stored once."""
    proxy, url = pg_proxy
    with SyncPostgresStore.from_url(url, namespace=pg_ns) as store:
        records = later_batch("sync-", 50)
        proxy.drop_reply_once(b"sync-49")
        store.put_all(*records)  # must not raise
        assert proxy.dropped.is_set(), "the fault was not injected"
        ids = [r.id for r in records]
        assert ids == sorted(set(ids))
        assert ids[0] > 0
        for r in records:
            assert stored_pg(postgres_url, pg_ns, r.task_id) == r  # filled from what is stored
            assert r.version == 1
            assert r.created_at is not None

        with pytest.raises(ExistsError):  # the same batch again, no fault
            store.put_all(*later_batch("sync-", 50))
        proxy.drop_reply_once(b"sync-49")
        with pytest.raises(ExistsError):  # a lost reply for a batch that is not the one stored
            store.put_all(*later_batch("sync-", 50, data=b"other"))
        assert proxy.dropped.is_set()
        fresh = later_batch("fresh-", 3)
        proxy.drop_reply_once(b"fresh-2")
        store.put_all(*fresh)
        kept = [stored_pg(postgres_url, pg_ns, r.task_id).id for r in fresh]
        assert kept == [r.id for r in fresh]

    async def put_async() -> list[Record]:
        async with PostgresStore.from_url(url, namespace=pg_ns) as store:
            records = later_batch("async-", 50)
            proxy.drop_reply_once(b"async-49")
            await store.put_all(*records)
            assert proxy.dropped.is_set(), "the fault was not injected"
            with pytest.raises(ExistsError):
                await store.put_all(*later_batch("async-", 50))
            return records

    records = asyncio.run(put_async())
    assert all(stored_pg(postgres_url, pg_ns, r.task_id) == r for r in records)
    with psycopg.connect(postgres_url) as conn:
        table = sql.Identifier(pg_ns, "tasks")
        row = conn.execute(sql.SQL("SELECT count(*), count(DISTINCT id) FROM {}").format(table))
        assert row.fetchone() == (103, 103)  # each task once, no id given twice
    REPORT.append(
        ReportRow(
            "17 PostgreSQL: put_all reply lost",
            103,
            0,
            0,
            "-",
            "3 lost replies acknowledged, 1 different batch refused (ExistsError)",
        )
    )


def test_postgres_settle_reply_lost_applies_the_outcome_once(
    postgres_url: str,
    pg_ns: str,
    pg_proxy: tuple[Proxy, str],
    ledger: Ledger,
    make_pool: PoolFactory,
) -> None:
    """A worker's settle commits but its reply is lost: the worker sends the batch again, which
    is answered as already applied (no conflict logged), and the failure is counted once."""
    proxy, url = pg_proxy
    pool = make_pool(url, worker={"concurrency": 2})
    worker = pool.start()
    proxy.drop_reply_once(b"planned failure")  # the failed attempt's reason: in settle alone
    plans = {"fails-once": {"fail": 1}}
    put_tasks(postgres_url, pg_ns, plans)
    wait_for(proxy.dropped.is_set, "the settle reply to be dropped", 20)
    wait_until_settled(postgres_url, pg_ns, timeout=20)
    refused = "outcome refused: another worker holds the task now"
    assert worker.count(refused) == 0, worker.stderr()
    verdict = check_invariants(postgres_url, pg_ns, plans, ledger, pool.faults)
    runs = verdict.runs["fails-once"]
    assert [(r.version, r.raised) for r in runs] == [(2, True), (4, False)], runs
    record = stored_pg(postgres_url, pg_ns, "fails-once")
    # put 1, claim 2, the failure (reply lost) 3, the re-sent failure found applied, claim 4,
    # done 5.
    assert (record.state, record.version, record.failed_attempts) == (State.CONFIRMED, 5, 1)
    REPORT.append(
        ReportRow(
            "17 PostgreSQL: settle reply lost",
            len(plans),
            verdict.lost,
            verdict.duplicates,
            "-",
            "re-sent settle answered as applied; failed_attempts 1, not 2",
        )
    )
