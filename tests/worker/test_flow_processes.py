"""Per-type flow control across real `retryd run` processes on the test Redis (and the rate on
the test PostgreSQL too).

Handlers (tests/worker/handlers_flow.py) note each run's start and end, with its process and
the host's clock, on a Redis list; the limits are checked on that ledger: [types.N] concurrency
per process (a supervisor's children included), [types.N] rate across every process, and a
limited type never holding back another.
"""

from __future__ import annotations

import collections
import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis

from store import Record, State, SyncRedisStore
from store.postgres import SyncPostgresStore
from tests.pg import migrated_namespace
from tests.servers import free_port, wait_for
from tests.worker.test_e2e import Retryd, subscribers
from tests.worker.test_processes import children, kill_quietly, scrape, start_supervisor

pytestmark = pytest.mark.slow

HANDLERS = "tests.worker.handlers_flow"
RATED, UNLIMITED, FEW = 7, 8, 9
WORKER = {"concurrency": 8, "batch": 50, "lease": 10.0, "poll_interval": 0.2}


@dataclass(frozen=True)
class Note:
    phase: str  # "s" (started) or "e" (ended)
    pid: int
    type: int
    at: int  # µs, the host's clock
    task_id: str


def ledger(client: redis.Redis | redis.RedisCluster, key: str) -> list[Note]:
    raw: list[bytes] = client.lrange(key, 0, -1)  # type: ignore[assignment]
    notes = []
    for entry in raw:
        phase, pid, task_type, at, task_id = entry.decode().split("|", 4)
        notes.append(Note(phase, int(pid), int(task_type), int(at), task_id))
    return notes


def most_at_once(notes: list[Note]) -> int:
    """The most runs in flight at one instant (an end at the same µs as a start goes first)."""
    steps = sorted((n.at, 0 if n.phase == "e" else 1) for n in notes)
    running = most = 0
    for _, starts in steps:
        running += 1 if starts else -1
        most = max(most, running)
    return most


def put(tasks: SyncRedisStore, task_type: int, count: int, data: bytes = b"") -> None:
    tasks.put_all(*(Record(f"{task_type}-{i:04d}", task_type, data) for i in range(count)))


def ended(notes: list[Note], task_type: int) -> int:
    """Runs of task_type that ended (each task runs once here: no handler raises)."""
    return sum(1 for n in notes if n.type == task_type and n.phase == "e")


@pytest.fixture
def retryd(tmp_path: Path, redis_url: str, namespace: str) -> Iterator[Retryd]:
    runner = Retryd(
        tmp_path, redis_url, namespace, {"handlers": {"modules": [HANDLERS]}, "worker": WORKER}
    )
    yield runner
    for process in runner.started:
        for child in children(process.pid):
            kill_quietly(child)
    runner.stop_all()


@pytest.fixture
def tasks(redis_url: str, namespace: str) -> Iterator[SyncRedisStore]:
    with SyncRedisStore.from_url(redis_url, namespace=namespace) as store:
        yield store


def start_workers(
    retryd: Retryd, tasks: SyncRedisStore, count: int, types: dict[str, dict[str, Any]]
) -> None:
    for _ in range(count):
        retryd.start(sections=types)
    wait_for(lambda: subscribers(tasks) == count, f"{count} workers to listen", 60)


def test_concurrency_is_per_process_under_a_supervisor(
    retryd: Retryd, tasks: SyncRedisStore
) -> None:
    """`--processes 2` with [types.9] concurrency = 2: each process runs at most 2 at once,
    so the two together run more than 2 (the limit is per process, not shared)."""
    retryd.overrides[f"types.{FEW}"] = {"concurrency": 2}
    port = free_port()
    start_supervisor(retryd, tasks, port)
    put(tasks, FEW, 16, b"0.3")
    wait_for(lambda: tasks.count_by_state(State.CONFIRMED) == 16, "16 confirmed", 60)
    notes = ledger(tasks.client, retryd.runs_key)
    by_pid = collections.defaultdict(list)
    for note in notes:
        by_pid[note.pid].append(note)
    assert len(by_pid) == 2, by_pid.keys()
    assert all(most_at_once(n) <= 2 for n in by_pid.values())
    assert most_at_once(notes) > 2
    metrics = scrape(port)
    assert metrics[("retryd_type_concurrency_limit", frozenset({("type", str(FEW))}))] == 2
    held = (
        "retryd_type_held_back_total",
        frozenset({("type", str(FEW)), ("limit", "concurrency")}),
    )
    assert metrics[held] >= 1


def test_the_rate_holds_across_three_worker_processes(
    retryd: Retryd, tasks: SyncRedisStore
) -> None:
    """[types.7] rate = 10, burst = 2 on three processes (assert_rate_held)."""
    start_workers(retryd, tasks, 3, {f"types.{RATED}": RATE_LIMIT})
    put(tasks, RATED, 30, RUN_SECONDS)
    wait_for(lambda: tasks.count_by_state(State.CONFIRMED) == 30, "30 confirmed", 60)
    assert_rate_held(ledger(tasks.client, retryd.runs_key), 30)


def test_the_rate_holds_across_three_worker_processes_on_postgresql(
    tmp_path: Path, redis_url: str, postgres_url: str, namespace: str
) -> None:
    """The same on the PostgreSQL store: the bucket is a row of the namespace's rates table,
    taken in the claim's transaction (the ledger stays on the test Redis)."""
    runner = Retryd(
        tmp_path, postgres_url, namespace, {"handlers": {"modules": [HANDLERS]}, "worker": WORKER}
    )
    with (
        migrated_namespace(postgres_url, namespace),
        SyncPostgresStore.from_url(postgres_url, namespace=namespace) as tasks,
        redis.Redis.from_url(redis_url) as client,
    ):
        try:
            ledger_env = {"E2E_REDIS_URL": redis_url}
            workers = [
                runner.start(env=ledger_env, sections={f"types.{RATED}": RATE_LIMIT})
                for _ in range(3)
            ]

            def started() -> bool:
                return all("worker started" in runner.stderr(w) for w in workers)

            wait_for(started, "3 workers to start", 60)
            tasks.put_all(*(Record(f"{RATED}-{i:04d}", RATED, RUN_SECONDS) for i in range(30)))
            wait_for(lambda: tasks.count_by_state(State.CONFIRMED) == 30, "30 confirmed", 60)
            assert_rate_held(ledger(client, runner.runs_key), 30)
        finally:
            runner.stop_all()
            client.delete(runner.runs_key)


RATE, BURST, MARGIN = 10.0, 2, 5
# One run at a time per process, 0.15 s each: one process alone starts at most 6.7 a second,
# so the rate takes at least two of them, and a bucket of each process's own (three times 6.7)
# would start the 30 tasks well within the span the shared one needs. Which processes take the
# tokens is otherwise the luck of the wake-ups: one of three could take them all.
RUN_SECONDS = b"0.15"
RATE_LIMIT = {"rate": RATE, "burst": BURST, "concurrency": 1}


def assert_rate_held(notes: list[Note], count: int) -> None:
    """[types.7] rate = 10, burst = 2 held across the processes: in any span between two starts,
    no more started than burst + rate * span, give or take MARGIN runs that started a little
    after their lease (the bucket counts leases, by the store's clock)."""
    starts = sorted((n for n in notes if n.phase == "s"), key=lambda n: n.at)
    assert len(starts) == count
    for (i, first), (j, last) in itertools.combinations(enumerate(starts), 2):
        span = (last.at - first.at) / 1e6
        assert j - i + 1 <= BURST + RATE * span + MARGIN, (i, j, span)
    # Unlimited, or with a bucket per process, three processes would start the 30 in 1.5 s.
    assert (starts[-1].at - starts[0].at) / 1e6 >= (count - BURST) / RATE - MARGIN / RATE
    assert len({n.pid for n in starts}) >= 2  # the processes shared the one bucket


def test_a_limited_type_does_not_block_another_type(retryd: Retryd, tasks: SyncRedisStore) -> None:
    """Types 7 (2 starts a second) and 9 (one 2-second run at a time per process) are due
    first; type 8's 200 tasks, put after them, all finish while both are still waiting."""
    types: dict[str, dict[str, Any]] = {
        f"types.{RATED}": {"rate": 2.0, "burst": 1},
        f"types.{FEW}": {"concurrency": 1},
    }
    start_workers(retryd, tasks, 2, types)
    put(tasks, RATED, 20)
    put(tasks, FEW, 10, b"2")
    put(tasks, UNLIMITED, 200)

    def unlimited_done() -> bool:
        return ended(ledger(tasks.client, retryd.runs_key), UNLIMITED) == 200

    wait_for(unlimited_done, "the 200 tasks of type 8", 60)
    notes = ledger(tasks.client, retryd.runs_key)
    assert ended(notes, RATED) < 20
    assert ended(notes, FEW) < 10
