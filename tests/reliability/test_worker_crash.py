"""Scenario 1: workers SIGKILLed mid-handler, again and again, while 2,000 tasks flow."""

from __future__ import annotations

import itertools
import random
import statistics
import threading
import time

import redis

from store.record import to_micros
from tests.reliability.chaos_handlers import NORMAL
from tests.reliability.conftest import PoolFactory
from tests.reliability.harness import (
    REPORT,
    DueMonitor,
    Faults,
    Ledger,
    ReportRow,
    Run,
    Verdict,
    check_invariants,
    pending_count,
    put_tasks,
    wait_until_settled,
)
from tests.servers import RedisServer

TASKS = 2000
WORKERS = 3
CONCURRENCY = 4
LEASE = 1.0
KILLS = 6
RATE_PER_SECOND = 250
RATE_BATCH = 25
# No orphan waits, nor any due task while the pool has room, this much past a lease: far above
# the ~1 s they take on a quiet machine, below the 60 s the queue is given to drain.
STALL_CEILING = 15.0


def produce(url: str, namespace: str, plans: dict[str, dict[str, float]]) -> None:
    """Put tasks at a steady rate below the pool's capacity, as an application would: an
    orphaned task then waits for its lease, not behind a backlog (claims go oldest due first)."""
    ids = list(plans)
    for i in range(0, len(ids), RATE_BATCH):
        put_tasks(url, namespace, {t: plans[t] for t in ids[i : i + RATE_BATCH]})
        time.sleep(RATE_BATCH / RATE_PER_SECOND)


def recovery_seconds(runs: dict[str, list[Run]], faults: Faults) -> list[float]:
    """Per kill: from the kill to the last of its orphaned runs starting again elsewhere."""
    per_kill = []
    for pid, killed_at in faults.kills:
        waits = []
        for task_runs in runs.values():
            for earlier, later in itertools.pairwise(task_runs):
                if earlier.pid == pid and earlier.end is None:
                    waits.append((later.start - killed_at) / 1e6)
        if waits:
            per_kill.append(max(waits))
    return per_kill


def overtaken_orphans(verdict: Verdict, faults: Faults, slack_us: int) -> list[tuple[str, str]]:
    """(orphan, task) pairs where a task put more than LEASE + slack after the orphan's lease was
    lost started its first run before the orphan ran again. Claims go oldest due first and an
    orphan is due when its lease ends (at most LEASE after the kill), so on a machine however
    slow, younger tasks never overtake it by more than the slack: an ordering, not a wall-clock
    bound.

    The orphan may be claimed again, ahead of a free slot, by a worker that a later kill ends
    before it starts the run (a kill every 0.5 s, leases of 1 s): that claim left no run, only a
    version, and the lease lost is then that kill's, the last one before the run again."""
    firsts = sorted(
        (task_runs[0].start, task_id)
        for task_id, task_runs in verdict.runs.items()
        if task_id in verdict.scan.records
    )
    killed = dict(faults.kills)
    overtaken = []
    for task_id, task_runs in verdict.runs.items():
        for earlier, later in itertools.pairwise(task_runs):
            if earlier.pid not in killed or earlier.end is not None:
                continue
            lost_at = killed[earlier.pid]
            if later.version > earlier.version + 1:  # claimed in between, and that claim lost
                lost_at = max(at for _, at in faults.kills if at < later.start)
            due_by = lost_at + int(LEASE * 1e6) + slack_us
            for start, other in firsts:
                if start >= later.start:
                    break
                created = verdict.scan.records[other].created_at
                assert created is not None
                if to_micros("created_at", created) > due_by:
                    overtaken.append((task_id, other))
    return overtaken


def open_runs_by_pid(ledger: Ledger) -> dict[int, int]:
    counts: dict[int, int] = {}
    for task_runs in ledger.runs().values():
        for run in task_runs:
            if run.end is None:
                counts[run.pid] = counts.get(run.pid, 0) + 1
    return counts


def test_sigkill_mid_handler_loses_nothing(
    store_server: RedisServer,
    store_client: redis.Redis,
    ns: str,
    ledger: Ledger,
    make_pool: PoolFactory,
) -> None:
    """SIGKILL a busy worker every ~0.5 s (a supervisor restarts it): no task is lost, every
    rerun follows a kill, and orphaned tasks run again within about one lease."""
    pool = make_pool(store_server.url, worker={"concurrency": CONCURRENCY, "lease": LEASE})
    for _ in range(WORKERS):
        pool.start(wait=False)
    rng = random.Random(1)
    plans = {f"t{i:05d}": {"sleep": round(rng.uniform(0.01, 0.05), 3)} for i in range(TASKS)}
    producer = threading.Thread(target=produce, args=(store_server.url, ns, plans))
    with DueMonitor(store_client, ns, WORKERS * CONCURRENCY, [NORMAL]) as monitor:
        producer.start()
        kills = 0
        time.sleep(1.0)  # let the workers finish starting
        while kills < KILLS and pending_count(store_client, ns) > 0:
            busy = open_runs_by_pid(ledger)
            victims = [p for p in pool.alive() if busy.get(p.pid, 0) > 0]
            if not victims:
                time.sleep(0.05)
                continue
            pool.kill(rng.choice(victims))
            kills += 1
            pool.start(wait=False)  # the supervisor's restart
            time.sleep(0.5)
        producer.join()
        settled = wait_until_settled(store_client, ns, timeout=60)
    verdict = check_invariants(store_client, ns, plans, ledger, pool.faults)

    recovery = recovery_seconds(verdict.runs, pool.faults)
    completed_twice = sum(
        1 for rs in verdict.runs.values() if sum(r.end is not None for r in rs) > 1
    )
    assert kills == KILLS, f"only {kills} kills before the queue drained ({settled:.1f} s)"
    # Each kill orphans at most its in-flight handlers and its outcomes not yet written.
    assert verdict.duplicates <= kills * 2 * CONCURRENCY
    assert completed_twice <= kills * CONCURRENCY
    assert recovery, "no kill orphaned a run"
    # Orphans run again in due order, before any task put after their leases ended (plus 1 s
    # for a claim in flight): this holds at any load, where "within lease + 1.5 s" did not (a
    # load average of 8 made it 2-7 s, the time for the killed workers' replacements to start).
    overtaken = overtaken_orphans(verdict, pool.faults, slack_us=1_000_000)
    assert not overtaken, f"tasks put later ran before orphans (orphan, task): {overtaken[:5]}"
    # Ceilings for a stuck orphan or a starved due task, with room for a loaded machine:
    # unloaded, both stay under lease + 1.5 s (docs/reliability.md, scenario 1).
    assert max(recovery) < LEASE + STALL_CEILING, recovery
    assert monitor.longest < LEASE + STALL_CEILING, (monitor.longest, monitor.longest_task)
    REPORT.append(
        ReportRow(
            "1 SIGKILL workers mid-handler",
            TASKS,
            verdict.lost,
            verdict.duplicates,
            f"max {max(recovery):.2f} s, median {statistics.median(recovery):.2f} s",
            f"{kills} kills, {completed_twice} completed twice, lease {LEASE} s",
        )
    )
