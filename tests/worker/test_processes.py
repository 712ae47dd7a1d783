"""`retryd run --processes N`: a supervisor and its worker processes, all real.

Each test starts the supervisor as a user would (`python -m worker.cli run --processes 2`), on
the session's Redis, and reads back from Redis which process ran what.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from store import Record, State, SyncRedisStore
from tests.metrics.client import Samples, samples
from tests.servers import free_port, wait_for
from tests.worker.test_e2e import Retryd, runs, subscribers

pytestmark = pytest.mark.slow

HANDLERS = "tests.worker.handlers_processes"


@pytest.fixture
def retryd(tmp_path: Path, redis_url: str, namespace: str) -> Iterator[Retryd]:
    runner = Retryd(tmp_path, redis_url, namespace, {"handlers": {"modules": [HANDLERS]}})
    yield runner
    for process in runner.started:
        for child in children(process.pid):
            kill_quietly(child)
    runner.stop_all()


@pytest.fixture
def tasks(redis_url: str, namespace: str) -> Iterator[SyncRedisStore]:
    with SyncRedisStore.from_url(redis_url, namespace=namespace) as store:
        yield store


def children(pid: int) -> list[int]:
    """The pids whose parent is pid, from /proc (the supervisor's worker processes)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            found.append(int(entry.name))
    return sorted(found)


def kill_quietly(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat").read_text()
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def http_get(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as reply:
            return reply.status, reply.read().decode()
    except urllib.error.HTTPError as error:
        with error:
            return error.code, error.read().decode()


def scrape(port: int) -> Samples:
    status, body = http_get(port, "/metrics")
    assert status == 200, body
    return samples(body)


def start_supervisor(
    retryd: Retryd, tasks: SyncRedisStore, port: int, *args: str
) -> subprocess.Popen[bytes]:
    """The supervisor, once both its workers listen: on a busy machine one may take a few
    seconds more to start, and the other would meanwhile run every task put."""
    sections = {"metrics": {"host": "127.0.0.1", "port": port}}
    process = retryd.start("--processes", "2", *args, sections=sections)
    wait_for(lambda: len(children(process.pid)) == 2, "two worker processes")
    wait_for(lambda: subscribers(tasks) == 2, "both worker processes to listen", 60)
    wait_for(lambda: http_get(port, "/healthz")[0] == 200, "/healthz to answer 200")
    return process


def put(tasks: SyncRedisStore, count: int, data: bytes = b"") -> list[str]:
    ids = [f"task-{i:05d}" for i in range(count)]
    for start in range(0, count, 200):
        tasks.put_all(*(Record(task_id=t, type=1, data=data) for t in ids[start : start + 200]))
    return ids


def confirmed_runs(port: int) -> float:
    key = ("retryd_task_runs_total", frozenset({("type", "1"), ("outcome", "confirmed")}))
    return scrape(port).get(key, 0.0)


def test_two_processes_share_the_work_and_one_metrics_endpoint_counts_all(
    retryd: Retryd, tasks: SyncRedisStore
) -> None:
    port = free_port()
    supervisor = start_supervisor(retryd, tasks, port)
    workers = children(supervisor.pid)
    ids = put(tasks, 1000)
    wait_for(lambda: tasks.count_by_state(State.CONFIRMED) == 1000, "1000 confirmed", 60)
    ran = runs(tasks.client, retryd.runs_key)
    assert sorted(task_id for task_id, _ in ran) == ids  # each exactly once
    assert {pid for _, pid in ran} == set(workers)  # both processes took a share
    wait_for(lambda: confirmed_runs(port) == 1000, "/metrics to count all 1000 runs", 30)
    metrics = scrape(port)
    assert metrics[("retryd_worker_processes", frozenset())] == 2
    assert metrics[("retryd_tasks", frozenset({("state", "confirmed")}))] == 1000
    assert metrics[("retryd_build_info", frozenset({("version", "0.1.0")}))] == 1
    supervisor.send_signal(signal.SIGTERM)
    assert supervisor.wait(timeout=30) == 0, retryd.stderr(supervisor)
    assert not any(alive(pid) for pid in workers)


def test_a_killed_process_is_replaced_and_its_tasks_still_run(
    retryd: Retryd, tasks: SyncRedisStore
) -> None:
    port = free_port()
    supervisor = start_supervisor(retryd, tasks, port)
    victim, survivor = children(supervisor.pid)
    os.kill(victim, signal.SIGKILL)
    wait_for(
        lambda: len(children(supervisor.pid)) == 2 and victim not in children(supervisor.pid),
        "a replacement process",
    )
    assert survivor in children(supervisor.pid)
    wait_for(lambda: http_get(port, "/healthz")[0] == 200, "/healthz 200 with the replacement")
    assert scrape(port)[("retryd_worker_restarts_total", frozenset())] == 1
    ids = put(tasks, 200)
    wait_for(lambda: tasks.count_by_state(State.CONFIRMED) == 200, "200 confirmed", 60)
    assert sorted(task_id for task_id, _ in runs(tasks.client, retryd.runs_key)) == ids
    events = retryd.events(supervisor)
    died = [e for e in events if e.get("event") == "worker process died; restarting"]
    assert [(e["status"], e["delay"]) for e in died] == [(-signal.SIGKILL, 0.5)]


def test_sigterm_drains_the_handlers_in_flight_in_every_process(
    retryd: Retryd, tasks: SyncRedisStore
) -> None:
    port = free_port()
    supervisor = start_supervisor(retryd, tasks, port)
    workers = children(supervisor.pid)
    # 32 runs of 1.5 s: each process starts 8 (its concurrency) and claims none ahead (runs
    # this long are not worth holding), so 16 start at once and 16 wait in Redis.
    ids = put(tasks, 32, data=b"1.5")
    wait_for(lambda: len(runs(tasks.client, retryd.runs_key)) == 16, "16 handlers started")
    supervisor.send_signal(signal.SIGTERM)
    assert supervisor.wait(timeout=30) == 0, retryd.stderr(supervisor)
    assert not any(alive(pid) for pid in workers)
    ran = runs(tasks.client, retryd.runs_key)
    assert {pid for _, pid in ran} == set(workers)
    started = sorted(task_id for task_id, _ in ran)
    assert len(set(started)) == 16  # each started once
    records = {task_id: tasks.get_by_task_id(task_id) for task_id in ids}
    # The started ones finished, not cut short; the ones never started are due again, unharmed.
    assert {t for t, r in records.items() if r.state == State.CONFIRMED} == set(started)
    unstarted = [r for t, r in records.items() if t not in started]
    assert [(r.state, r.failed_attempts) for r in unstarted] == [(State.PENDING, 0)] * 16


def test_worker_processes_stop_by_themselves_when_the_supervisor_is_killed(
    retryd: Retryd, tasks: SyncRedisStore
) -> None:
    port = free_port()
    supervisor = start_supervisor(retryd, tasks, port)
    workers = children(supervisor.pid)
    supervisor.kill()
    supervisor.wait()
    wait_for(lambda: not any(alive(pid) for pid in workers), "the orphaned workers to exit", 30)


def test_a_process_count_out_of_range_is_refused_before_anything_starts(retryd: Retryd) -> None:
    process = retryd.start("--processes", "0")
    assert process.wait(timeout=20) == 2
    assert "worker.processes: must be in 1..256, got 0" in retryd.stderr(process)


def runtime_dirs(parent: Path) -> dict[str, Path]:
    """The supervisors' runtime directories in parent, by the pid each names (or its name)."""
    found = {}
    for directory in parent.glob("retryd-supervisor-*"):
        pid_file = directory / "supervisor.pid"
        found[pid_file.read_text() if pid_file.exists() else directory.name] = directory
    return found


def test_a_killed_supervisors_runtime_directory_is_removed_at_the_next_start(
    retryd: Retryd, tasks: SyncRedisStore, tmp_path: Path
) -> None:
    """A SIGKILLed supervisor leaves its runtime directory behind; the next supervisor to start
    (same TMPDIR) removes it, and any other whose supervisor and children are all gone, but
    keeps those of a live supervisor, of a child still draining, and one just being made."""
    parent = tmp_path / "runtime"
    parent.mkdir()
    env = {"TMPDIR": str(parent)}
    ended = subprocess.Popen(["true"])  # a pid that has just ended
    ended.wait()
    planted: dict[str, tuple[int | None, list[int]]] = {
        "live": (os.getpid(), []),  # a supervisor still running: this test
        "draining": (ended.pid, [os.getpid()]),  # gone, but a child of it still runs
        "unclaimed-old": (None, []),  # no pid file, older than a minute: left by a crash
        "unclaimed-new": (None, []),  # no pid file yet: a supervisor starting right now
    }
    for name, (owner, children_pids) in planted.items():
        directory = parent / f"retryd-supervisor-{name}"
        (directory / "ticks").mkdir(parents=True)
        for pid in children_pids:
            (directory / "ticks" / str(pid)).write_text("0")
        if owner is not None:
            (directory / "supervisor.pid").write_text(str(owner))
    old = parent / "retryd-supervisor-unclaimed-old"
    os.utime(old, (os.path.getatime(old), os.path.getmtime(old) - 120))

    port = free_port()
    sections = {"metrics": {"host": "127.0.0.1", "port": port}}
    first = retryd.start("--processes", "2", env=env, sections=sections)
    wait_for(lambda: len(children(first.pid)) == 2, "two worker processes")
    wait_for(lambda: str(first.pid) in runtime_dirs(parent), "the first runtime directory")
    workers = children(first.pid)
    first.kill()
    first.wait()
    wait_for(lambda: not any(alive(pid) for pid in workers), "the orphaned workers to exit", 30)
    left = runtime_dirs(parent)[str(first.pid)]
    assert left.is_dir()  # SIGKILL: nobody removed it

    second = retryd.start("--processes", "2", env=env, sections=sections)
    wait_for(lambda: len(children(second.pid)) == 2, "two worker processes")
    wait_for(lambda: str(second.pid) in runtime_dirs(parent), "the second runtime directory")
    names = sorted(p.name for p in parent.iterdir())
    assert names == sorted(
        [f"retryd-supervisor-{n}" for n in ("live", "draining", "unclaimed-new")]
        + [runtime_dirs(parent)[str(second.pid)].name]
    ), names

    def removed(supervisor: subprocess.Popen[bytes]) -> list[str]:
        said = "removed the runtime directory of a supervisor that is gone"
        return [e["path"] for e in retryd.events(supervisor) if e.get("event") == said]

    assert removed(first) == [str(old)]  # each start cleans up: the first found the old one
    assert removed(second) == [str(left)]
    second.send_signal(signal.SIGTERM)
    assert second.wait(timeout=30) == 0
    assert str(second.pid) not in runtime_dirs(parent)  # a clean exit removes its own
