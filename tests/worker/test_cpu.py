"""`[worker] one_cpu` (worker/cpu.py): every thread of a worker process on one CPU, moved to a
less busy one when other work crowds it. The choice is a pure function, tested alone; the
binding is read back from /proc for real `retryd run` processes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from store import SyncRedisStore
from tests.servers import wait_for
from tests.worker.test_e2e import Retryd, subscribers
from tests.worker.test_processes import children, kill_quietly
from worker.cpu import MOVE_MARGIN, REBALANCE_SECONDS, _busy_times, choose_cpu

ALLOWED = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
needs_two_cpus = pytest.mark.skipif(
    len(ALLOWED) < 2, reason="one CPU allowed here: nothing to choose between"
)


def test_a_cpu_crowded_by_others_is_left_for_the_least_busy() -> None:
    assert choose_cpu(0, {0: 0.9, 1: 0.5, 2: 0.2}, own=0.1) == 2


def test_the_process_own_load_does_not_count_against_its_cpu() -> None:
    """A busy worker alone on its CPU stays: the load there is its own."""
    assert choose_cpu(0, {0: 1.0, 1: 0.3}, own=0.95) == 0


def test_a_gain_below_the_margin_is_not_worth_a_move() -> None:
    just_below = 0.3 + MOVE_MARGIN - 0.01
    assert choose_cpu(0, {0: just_below, 1: 0.3}, own=0.0) == 0
    assert choose_cpu(0, {0: just_below + 0.02, 1: 0.3}, own=0.0) == 1


def test_with_one_cpu_or_an_unknown_one_nothing_moves() -> None:
    assert choose_cpu(3, {3: 1.0}, own=0.0) == 3
    assert choose_cpu(5, {0: 1.0, 1: 0.0}, own=0.0) == 5


@needs_two_cpus
def test_every_allowed_cpu_is_read_from_proc_stat() -> None:
    times = _busy_times()
    assert set(ALLOWED) <= set(times)
    assert all(0 <= busy <= total for busy, total in times.values())


# --- real processes ------------------------------------------------------------------------


@pytest.fixture
def retryd(tmp_path: Path, redis_url: str, namespace: str) -> Iterator[Retryd]:
    runner = Retryd(tmp_path, redis_url, namespace)
    yield runner
    for process in runner.started:
        for child in children(process.pid):
            kill_quietly(child)
    runner.stop_all()


@pytest.fixture
def tasks(redis_url: str, namespace: str) -> Iterator[SyncRedisStore]:
    with SyncRedisStore.from_url(redis_url, namespace=namespace) as store:
        yield store


def cpus_of_threads(pid: int) -> dict[int, frozenset[int]]:
    """Each thread of pid and the CPUs it may run on (Cpus_allowed_list in /proc)."""
    found = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            status = (task / "status").read_text()
        except OSError:
            continue  # the thread ended meanwhile
        line = next(x for x in status.splitlines() if x.startswith("Cpus_allowed_list:"))
        found[int(task.name)] = _cpu_list(line.split(":", 1)[1].strip())
    return found


def _cpu_list(text: str) -> frozenset[int]:
    cpus: set[int] = set()
    for part in text.split(","):
        low, _, high = part.partition("-")
        cpus.update(range(int(low), int(high or low) + 1))
    return frozenset(cpus)


def one_cpu_of(pid: int) -> int:
    """The one CPU every thread of pid is bound to (fails if they differ or may spread)."""
    bound = set(cpus_of_threads(pid).values())
    assert len(bound) == 1, bound
    (cpus,) = bound
    assert len(cpus) == 1, cpus
    return next(iter(cpus))


def started_worker(retryd: Retryd, tasks: SyncRedisStore, **worker: object) -> int:
    process = retryd.start(sections={"worker": worker} if worker else None)
    wait_for(lambda: subscribers(tasks) == 1, "the worker to listen", 60)
    return process.pid


@pytest.mark.slow
@needs_two_cpus
def test_a_worker_runs_all_its_threads_on_one_cpu(retryd: Retryd, tasks: SyncRedisStore) -> None:
    pid = started_worker(retryd, tasks)
    threads = cpus_of_threads(pid)
    assert len(threads) >= 2  # the event loop and the lease keeper at least
    cpu = one_cpu_of(pid)
    assert cpu in ALLOWED
    kept = [e for e in retryd.events(retryd.started[0]) if "one CPU" in e["event"]]
    assert [e["cpu"] for e in kept] == [cpu]


@pytest.mark.slow
@needs_two_cpus
def test_one_cpu_false_leaves_the_threads_to_the_kernel(
    retryd: Retryd, tasks: SyncRedisStore
) -> None:
    pid = started_worker(retryd, tasks, one_cpu=False)
    assert set(cpus_of_threads(pid).values()) == {frozenset(ALLOWED)}


@pytest.mark.slow
@needs_two_cpus
def test_worker_processes_start_on_distinct_cpus(retryd: Retryd, tasks: SyncRedisStore) -> None:
    supervisor = retryd.start("--processes", "2")
    wait_for(lambda: subscribers(tasks) == 2, "both worker processes to listen", 60)
    workers = children(supervisor.pid)
    assert len({one_cpu_of(pid) for pid in workers}) == 2
    assert set(cpus_of_threads(supervisor.pid).values()) == {frozenset(ALLOWED)}
    supervisor.send_signal(signal.SIGTERM)
    assert supervisor.wait(timeout=30) == 0, retryd.stderr(supervisor)


@pytest.mark.slow
@needs_two_cpus
def test_a_worker_leaves_a_cpu_that_other_work_keeps_busy(
    retryd: Retryd, tasks: SyncRedisStore
) -> None:
    pid = started_worker(retryd, tasks)
    crowded = one_cpu_of(pid)
    spin = f"import os; os.sched_setaffinity(0, {{{crowded}}})\nwhile True: pass"
    burner = subprocess.Popen([sys.executable, "-c", spin])
    try:
        # Two intervals at most (with their jitter): one may have begun before the burner.
        wait_for(
            lambda: one_cpu_of(pid) != crowded,
            "the worker to move off the crowded CPU",
            REBALANCE_SECONDS * 1.2 * 2 + 5,
        )
    finally:
        kill_quietly(burner.pid)
        burner.wait()
    moved = [e for e in retryd.events(retryd.started[0]) if e["event"].startswith("threads moved")]
    assert [(e["left"], e["cpu"]) for e in moved] == [(crowded, one_cpu_of(pid))]
    assert moved[0]["busy_here_without_us"] >= MOVE_MARGIN
