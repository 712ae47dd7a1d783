"""End to end: real `retryd run` processes on a real Redis, signals and faults included.

Handlers live in tests/worker/handlers_e2e.py; each type-1 start is noted on a Redis list inside
the test's namespace, so "ran exactly once" is read back from Redis, not inferred.
"""

from __future__ import annotations

import collections
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import redis

from store import Record, State, SyncRedisStore
from tests.servers import RedisServer, wait_for

ROOT = Path(__file__).resolve().parents[2]
HANDLERS = "tests.worker.handlers_e2e"


def toml(sections: dict[str, dict[str, Any]]) -> str:
    """A config file; JSON's strings, numbers and lists of strings are valid TOML values."""
    lines = []
    for name, table in sections.items():
        lines.append(f"[{name}]")
        lines += [f"{key} = {json.dumps(value)}" for key, value in table.items()]
    return "\n".join(lines) + "\n"


@dataclass
class Retryd:
    """Starts `retryd run` processes with one config; logs go to files under directory."""

    directory: Path
    redis_url: str
    namespace: str
    overrides: dict[str, dict[str, Any]] = field(default_factory=dict)
    started: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def runs_key(self) -> str:
        return "{" + self.namespace + "}:e2e:runs"

    def config(self, more: dict[str, dict[str, Any]]) -> Path:
        sections: dict[str, dict[str, Any]] = {
            "redis": {"url": self.redis_url, "namespace": self.namespace},
            "worker": {"concurrency": 8, "batch": 50, "lease": 5.0, "poll_interval": 0.1},
            "retry": {"max_attempts": 3, "initial_delay": 0, "max_delay": 0, "timeout": 30},
            "types": {},
            "handlers": {"modules": [HANDLERS]},
            "metrics": {"port": 0},
            "log": {"level": "info", "format": "json"},
        }
        for source in (self.overrides, more):
            for name, table in source.items():
                sections[name] = sections.get(name, {}) | table
        del sections["types"]
        path = self.directory / f"config-{len(self.started)}.toml"
        path.write_text(toml(sections), encoding="utf-8")
        return path

    def start(
        self,
        *args: str,
        env: dict[str, str] | None = None,
        sections: dict[str, dict[str, Any]] | None = None,
    ) -> subprocess.Popen[bytes]:
        index = len(self.started)
        command = [
            sys.executable,
            "-m",
            "worker.cli",
            "run",
            "--config",
            str(self.config(sections or {})),
        ]
        with (
            (self.directory / f"worker-{index}.out").open("wb") as out,
            (self.directory / f"worker-{index}.err").open("wb") as err,
        ):
            process = subprocess.Popen(
                [*command, *args],
                cwd=ROOT,
                env=self.env(env or {}),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
            )
        self.started.append(process)
        return process

    def env(self, extra: dict[str, str]) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("RETRYD_")}
        env |= {"PYTHONPATH": str(ROOT), "E2E_REDIS_URL": self.redis_url}
        return env | {"E2E_RUNS_KEY": self.runs_key} | extra

    def stderr(self, process: subprocess.Popen[bytes]) -> str:
        index = self.started.index(process)
        return (self.directory / f"worker-{index}.err").read_text(errors="replace")

    def events(self, process: subprocess.Popen[bytes]) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.stderr(process).splitlines() if line]

    def stop_all(self) -> None:
        for process in self.started:
            if process.poll() is None:
                process.kill()
                process.wait()


@pytest.fixture
def retryd(tmp_path: Path, redis_url: str, namespace: str) -> Iterator[Retryd]:
    runner = Retryd(tmp_path, redis_url, namespace)
    yield runner
    runner.stop_all()


@pytest.fixture
def tasks(redis_url: str, namespace: str) -> Iterator[SyncRedisStore]:
    with SyncRedisStore.from_url(redis_url, namespace=namespace) as store:
        yield store


def runs(client: redis.Redis | redis.RedisCluster, key: str) -> list[tuple[str, int]]:
    raw: list[bytes] = client.lrange(key, 0, -1)  # type: ignore[assignment]
    entries = [entry.decode().split() for entry in raw]
    return [(task_id, int(pid)) for task_id, pid in entries]


def subscribers(store: SyncRedisStore) -> int:
    """How many workers listen for this namespace's wake-ups (each subscribes once started)."""
    return int(store.client.pubsub_numsub(store.keys.wake_channel)[0][1])


def assert_clean_exit(retryd: Retryd, process: subprocess.Popen[bytes], timeout: float) -> None:
    assert process.wait(timeout=timeout) == 0, retryd.stderr(process)
    assert "Traceback" not in retryd.stderr(process)


def test_each_outcome_through_a_burst_run(retryd: Retryd, tasks: SyncRedisStore) -> None:
    """success, fail then succeed, exhaustion, Permanent, RetryLater, timeout, unknown type."""
    scripts = ["ok", "fail_once", "fail", "permanent", "later"]
    tasks.put_all(*(Record(task_id=s, type=1, data=s.encode()) for s in scripts))
    tasks.put_all(Record(task_id="slow", type=2, data=b""), Record("other", 9, b""))
    other = tasks.get_by_task_id("other")
    process = retryd.start("--burst", sections={"types.2": {"timeout": 0.2, "max_attempts": 2}})
    assert_clean_exit(retryd, process, timeout=20)
    expected = {
        "ok": (State.CONFIRMED, 0),
        "fail_once": (State.CONFIRMED, 1),
        "fail": (State.FAILED, 3),
        "permanent": (State.FAILED, 1),
        "later": (State.PENDING, 0),
        "slow": (State.FAILED, 2),
    }
    got = {t: (r.state, r.failed_attempts) for t in expected if (r := tasks.get_by_task_id(t))}
    assert got == expected
    later = tasks.get_by_task_id("later")
    assert later.next_attempt_at is not None
    assert later.created_at is not None
    assert (later.next_attempt_at - later.created_at).total_seconds() >= 30
    assert tasks.get_by_task_id("other") == other
    failed_logs = [e for e in retryd.events(process) if e.get("event") == "handler failed"]
    assert all({"task_id", "type", "attempt", "reference_id"} <= set(e) for e in failed_logs)


def put_scripted(tasks: SyncRedisStore, count: int, data: bytes, batch: int = 200) -> list[str]:
    ids = [f"task-{i:05d}" for i in range(count)]
    for start in range(0, count, batch):
        tasks.put_all(*(Record(task_id=t, type=1, data=data) for t in ids[start : start + batch]))
    return ids


def test_two_workers_run_each_of_2000_tasks_exactly_once(
    retryd: Retryd, tasks: SyncRedisStore
) -> None:
    workers = [retryd.start(), retryd.start()]
    wait_for(lambda: subscribers(tasks) == 2, "both workers to listen")
    ids = put_scripted(tasks, 2000, b"ok", batch=100)
    wait_for(lambda: tasks.count_by_state(State.CONFIRMED) == 2000, "2000 confirmed", 30)
    for process in workers:
        process.send_signal(signal.SIGTERM)
    for process in workers:
        assert_clean_exit(retryd, process, timeout=10)
    ran = runs(tasks.client, retryd.runs_key)
    counts = collections.Counter(task_id for task_id, _ in ran)
    assert sorted(counts) == ids
    assert [t for t, n in counts.items() if n != 1] == []
    by_pid = collections.Counter(pid for _, pid in ran)
    assert set(by_pid) == {p.pid for p in workers}, by_pid  # both took a share
    assert tasks.count_by_state(State.PENDING) == 0


def test_a_task_whose_worker_is_killed_completes_after_its_lease(
    retryd: Retryd, tasks: SyncRedisStore
) -> None:
    lease = {"worker": {"lease": 1.0, "poll_interval": 0.1}}
    doomed = retryd.start(sections=lease)
    tasks.put_all(Record(task_id="a", type=1, data=b"hang_first"))
    wait_for(lambda: tasks.client.llen(retryd.runs_key) == 1, "the handler to start")
    doomed.kill()
    doomed.wait()
    killed_at = time.monotonic()
    retryd.start(sections=lease)
    done_at = wait_for(lambda: tasks.get_by_task_id("a").state == State.CONFIRMED, "confirm")
    assert done_at - killed_at < 5.0
    # The abandoned lease counts as a failed attempt: a task that keeps killing workers
    # ends FAILED after max_attempts instead of crashing them forever.
    assert tasks.get_by_task_id("a").failed_attempts == 1
    assert len(runs(tasks.client, retryd.runs_key)) == 2


def test_sigterm_drains_releases_unfinished_tasks_and_exits_0(
    retryd: Retryd, tasks: SyncRedisStore
) -> None:
    """Unfinished leases go back due now, uncounted; an idle worker takes them at once."""
    grace = 0.5
    slow_poll = {"worker": {"lease": 30.0, "poll_interval": 30.0, "shutdown_grace": grace}}
    leaving = retryd.start(env={"E2E_HANG": "1"}, sections=slow_poll)
    tasks.put_all(*(Record(task_id=f"t{i}", type=1, data=b"hang") for i in range(3)))
    wait_for(lambda: tasks.client.llen(retryd.runs_key) == 3, "three handlers to start")
    staying = retryd.start(sections=slow_poll)
    wait_for(lambda: subscribers(tasks) == 2, "the second worker to listen")
    time.sleep(0.2)  # its first claim found every task leased for 30 s
    signalled = time.monotonic()
    leaving.send_signal(signal.SIGTERM)
    assert_clean_exit(retryd, leaving, timeout=grace + 5)
    exited = time.monotonic()
    assert exited - signalled < grace + 2.0
    done = wait_for(lambda: tasks.count_by_state(State.CONFIRMED) == 3, "3 confirmed", 5)
    # Neither the 30 s lease nor the 30 s poll: the release woke the other worker.
    assert done - exited < 1.5
    assert [tasks.get_by_task_id(f"t{i}").failed_attempts for i in range(3)] == [0, 0, 0]
    ran = runs(tasks.client, retryd.runs_key)
    assert collections.Counter(pid for _, pid in ran) == {leaving.pid: 3, staying.pid: 3}
    events = [e.get("event") for e in retryd.events(leaving)]
    assert "draining" in events
    assert "worker stopped" in events


def test_a_second_signal_exits_at_once(retryd: Retryd, tasks: SyncRedisStore) -> None:
    worker = retryd.start(env={"E2E_HANG": "1"}, sections={"worker": {"shutdown_grace": 30.0}})
    tasks.put_all(Record(task_id="a", type=1, data=b"hang"))
    wait_for(lambda: tasks.client.llen(retryd.runs_key) == 1, "the handler to start")
    worker.send_signal(signal.SIGTERM)
    time.sleep(0.2)
    worker.send_signal(signal.SIGINT)
    assert worker.wait(timeout=3) != 0  # not a clean drain: the handler was still running


@pytest.mark.slow
def test_a_redis_restart_mid_run_loses_no_task(retryd: Retryd, tmp_path: Path) -> None:
    """Append-only Redis killed and restarted under load: the worker resumes by itself."""
    server = RedisServer(
        tmp_path / "redis", args=["--appendonly", "yes", "--appendfsync", "always"]
    )
    server.start()
    try:
        retryd.redis_url = server.url
        total = 600
        worker = retryd.start(
            sections={"worker": {"concurrency": 4, "lease": 2.0, "poll_interval": 0.2}}
        )
        with SyncRedisStore.from_url(server.url, namespace=retryd.namespace) as store:
            for start in range(0, total, 100):
                batch = range(start, start + 100)
                store.put_all(*(Record(task_id=f"q{i}", type=3, data=b"") for i in batch))
            wait_for(lambda: store.count_by_state(State.CONFIRMED) >= 50, "some progress")
            server.kill()
            time.sleep(1.0)
            server.start()
            restarted = time.monotonic()
            assert store.count_by_state(State.CONFIRMED) < total, "finished before the restart"
            done = wait_for(
                lambda: store.count_by_state(State.CONFIRMED) == total, "all confirmed", 30
            )
            assert worker.poll() is None
            assert store.count_by_state(State.PENDING) == store.count_by_state(State.FAILED) == 0
        worker.send_signal(signal.SIGTERM)
        assert_clean_exit(retryd, worker, timeout=10)
        events = [e.get("event") for e in retryd.events(worker)]
        assert events.count("store unavailable; retrying with backoff") == 1, events
        assert events.count("store available again") == 1, events
        print(f"resumed and finished {done - restarted:.2f}s after the restart")
    finally:
        server.stop()


def write_module(directory: Path, name: str, text: str) -> None:
    (directory / f"{name}.py").write_text(text, encoding="utf-8")


CONFIG_ERRORS: list[tuple[str, dict[str, dict[str, Any]], dict[str, str], list[str]]] = [
    ("bad value", {"worker": {"concurrency": "many"}}, {}, ["worker.concurrency"]),
    ("out of range", {"worker": {"lease": 0}}, {}, ["worker.lease"]),
    ("unknown key", {"worker": {"concurency": 4}}, {}, ["worker.concurency"]),
    ("unknown section", {"workers": {"concurrency": 4}}, {}, ["[workers]"]),
    ("bad env value", {}, {"RETRYD_TYPES_7_TIMEOUT": "soon"}, ["RETRYD_TYPES_7_TIMEOUT"]),
    ("unknown env key", {}, {"RETRYD_WORKER_LEASES": "3"}, ["RETRYD_WORKER_LEASES"]),
    (
        "missing module",
        {"handlers": {"modules": ["tests.worker.no_such_handlers"]}},
        {},
        ["'tests.worker.no_such_handlers'"],
    ),
    (
        "module failing to import",
        {"handlers": {"modules": ["e2e_broken_handlers"]}},
        {},
        ["'e2e_broken_handlers'", "RuntimeError: no database"],
    ),
    (
        "two handlers for one type",
        {"handlers": {"modules": ["tests.worker.handlers_dup_a", "tests.worker.handlers_dup_b"]}},
        {},
        ["type 5", "handlers_dup_a.first_five", "handlers_dup_b.second_five"],
    ),
    ("no handler at all", {"handlers": {"modules": []}}, {}, ["handlers.modules"]),
]


@pytest.mark.parametrize(
    ("sections", "env", "named"),
    [c[1:] for c in CONFIG_ERRORS],
    ids=[c[0] for c in CONFIG_ERRORS],
)
def test_each_configuration_error_exits_2_with_one_clear_line(
    retryd: Retryd,
    tmp_path: Path,
    sections: dict[str, dict[str, Any]],
    env: dict[str, str],
    named: list[str],
) -> None:
    write_module(tmp_path, "e2e_broken_handlers", "raise RuntimeError('no database')\n")
    pythonpath = {"PYTHONPATH": f"{ROOT}{os.pathsep}{tmp_path}"}
    process = retryd.start(env=env | pythonpath, sections=sections)
    assert process.wait(timeout=10) == 2
    lines = retryd.stderr(process).splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("retryd: ")
    for name in named:
        assert name in lines[0]


def test_a_missing_config_file_exits_2(tmp_path: Path) -> None:
    missing = tmp_path / "absent.toml"
    result = subprocess.run(
        [sys.executable, "-m", "worker.cli", "run", "--config", str(missing)],
        cwd=ROOT,
        capture_output=True,
        timeout=10,
        check=False,
    )
    assert result.returncode == 2
    assert result.stderr.decode().strip() == f"retryd: config file {str(missing)!r} does not exist"


def test_sigterm_exits_within_grace_even_with_a_hung_plain_handler(
    retryd: Retryd, tasks: SyncRedisStore
) -> None:
    """A thread cannot be cancelled; its task is released and the process leaves without it."""
    grace = 0.5
    worker = retryd.start(env={"E2E_HANG": "1"}, sections={"worker": {"shutdown_grace": grace}})
    tasks.put_all(Record(task_id="a", type=4, data=b""))
    wait_for(lambda: tasks.client.llen(retryd.runs_key) == 1, "the handler to start")
    signalled = time.monotonic()
    worker.send_signal(signal.SIGTERM)
    assert_clean_exit(retryd, worker, timeout=grace + 5)
    assert time.monotonic() - signalled < grace + 2.0
    released = tasks.get_by_task_id("a")
    assert (released.state, released.failed_attempts) == (State.PENDING, 0)
