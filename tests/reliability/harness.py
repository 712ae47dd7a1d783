"""The reliability suite's harness: worker processes, the run ledger, the store scan, invariants.

Scenarios start real `retryd run` processes on a real redis-server (tests/servers.py), inject a
fault, wait for the queue to settle, then call check_invariants(), which compares what was put,
what the ledger says ran, and a full scan of the namespace's keys. Each scenario adds a row to
REPORT, printed as a table at the end of the session (conftest.py).
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis

from store import Record, State, StoreError, SyncRedisStore
from store._codec import decode_record
from store.record import to_micros
from tests.reliability.chaos_handlers import LEDGER_KEY_ENV, LEDGER_URL_ENV, NORMAL
from tests.servers import wait_for

__all__ = [
    "REPORT",
    "Faults",
    "Ledger",
    "Pool",
    "ReportRow",
    "Run",
    "WorkerProc",
    "check_invariants",
    "now_us",
    "put_tasks",
    "skewed_clock_env",
    "wait_for",
    "wait_until_settled",
]

REPO = Path(__file__).resolve().parents[2]
RETRYD = Path(sys.executable).with_name("retryd")
START_TIMEOUT = 15.0
OUTCOME_SLACK_US = 1_000_000


def now_us() -> int:
    """The test process's wall clock in microseconds (same machine as the servers' TIME)."""
    return time.time_ns() // 1000


# --- the report ---------------------------------------------------------------------------------


@dataclass
class ReportRow:
    scenario: str
    tasks: int
    lost: int
    duplicates: int
    recovery: str = "-"
    notes: str = ""


REPORT: list[ReportRow] = []


def format_report(rows: Iterable[ReportRow]) -> list[str]:
    header = ("scenario", "tasks", "lost", "duplicates", "recovery", "notes")
    table = [header] + [
        (r.scenario, str(r.tasks), str(r.lost), str(r.duplicates), r.recovery, r.notes)
        for r in rows
    ]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)) for row in table]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return lines


# --- the ledger ---------------------------------------------------------------------------------


@dataclass
class Run:
    """One handler run, as the ledger saw it (times in server microseconds)."""

    task_id: str
    pid: int
    version: int
    start: int
    end: int | None = None
    raised: bool = False


class Ledger:
    """The list every handler run appends to (see chaos_handlers.py for the entry format)."""

    def __init__(self, client: redis.Redis, key: str) -> None:
        self.client = client
        self.key = key

    def entries(self) -> list[tuple[str, int, int, int, str]]:
        raw: list[bytes] = self.client.lrange(self.key, 0, -1)  # type: ignore[assignment]
        parsed = []
        for item in raw:
            phase, pid, version, at, task_id = item.decode("utf-8").split("|", 4)
            parsed.append((phase, int(pid), int(version), int(at), task_id))
        return parsed

    def runs(self) -> dict[str, list[Run]]:
        """Runs by task id, in start order; a run is identified by (task, pid, version)."""
        runs: dict[str, list[Run]] = defaultdict(list)
        open_runs: dict[tuple[str, int, int], Run] = {}
        for phase, pid, version, at, task_id in self.entries():
            if phase == "s":
                run = Run(task_id, pid, version, at)
                runs[task_id].append(run)
                open_runs[(task_id, pid, version)] = run
            else:
                run = open_runs.pop((task_id, pid, version))
                run.end, run.raised = at, phase == "x"
        return dict(runs)

    def started(self) -> int:
        return sum(1 for e in self.entries() if e[0] == "s")


# --- worker processes ---------------------------------------------------------------------------


@dataclass
class WorkerProc:
    """One `retryd run` subprocess; its stderr (JSON log lines) goes to a file."""

    process: subprocess.Popen[bytes]
    stderr_path: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def events(self) -> list[dict[str, Any]]:
        """The JSON log events written so far (non-JSON lines, e.g. tracebacks, as 'raw')."""
        events = []
        for line in self.stderr_path.read_text(encoding="utf-8", errors="replace").splitlines():
            try:
                events.append(json.loads(line))
            except json.JSONDecodeError:
                events.append({"event": "raw", "line": line})
        return events

    def count(self, event: str) -> int:
        return sum(1 for e in self.events() if e.get("event") == event)

    def stderr(self) -> str:
        return self.stderr_path.read_text(encoding="utf-8", errors="replace")


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return repr(value)


def render_config(sections: Mapping[str, Mapping[str, Any]]) -> str:
    lines = []
    for name, table in sections.items():
        lines.append(f"[{name}]")
        lines += [f"{key} = {_toml_value(value)}" for key, value in table.items()]
        lines.append("")
    return "\n".join(lines)


@dataclass
class Faults:
    """What the test did to workers and servers: duplicates must be explained by one of these."""

    crashed_pids: set[int] = field(default_factory=set)  # SIGKILLed, SIGSTOPped, _exit'ed
    windows: list[tuple[int, int]] = field(default_factory=list)  # outages, server us
    kills: list[tuple[int, int]] = field(default_factory=list)  # (pid, us) of each SIGKILL

    def explains(self, earlier: Run) -> bool:
        if earlier.pid in self.crashed_pids:
            return True
        # A run that ended just before an outage may still have had its outcome in the
        # writer's queue: the outcome is written after the run, in a batch.
        return any(
            earlier.start <= b and (earlier.end is None or earlier.end >= a - OUTCOME_SLACK_US)
            for a, b in self.windows
        )


class Pool:
    """Starts `retryd run` processes on one namespace with a config the scenario injects."""

    def __init__(
        self,
        directory: Path,
        *,
        redis_url: str,
        namespace: str,
        ledger_url: str,
        ledger_key: str,
        worker: Mapping[str, Any] | None = None,
        retry: Mapping[str, Any] | None = None,
        types: Mapping[int, Mapping[str, Any]] | None = None,
    ) -> None:
        self.directory = directory
        self.redis_url = redis_url
        self.ledger_env = {LEDGER_URL_ENV: ledger_url, LEDGER_KEY_ENV: ledger_key}
        self.faults = Faults()
        self.procs: list[WorkerProc] = []
        sections: dict[str, Mapping[str, Any]] = {
            "redis": {"url": redis_url, "namespace": namespace},
            "worker": {
                "concurrency": 4,
                "batch": 16,
                "lease": 1.0,
                "shutdown_grace": 2.0,
                "poll_interval": 0.2,
                **(worker or {}),
            },
            "retry": {
                "max_attempts": 10,
                "initial_delay": 0.05,
                "max_delay": 0.2,
                "timeout": 30.0,
                **(retry or {}),
            },
            "handlers": {"modules": ["tests.reliability.chaos_handlers"]},
            "metrics": {"port": 0},
            "log": {"format": "json", "level": "info"},
        }
        for task_type, overrides in (types or {}).items():
            sections[f"types.{task_type}"] = overrides
        self.settings = sections
        self.config_path = directory / "retryd.toml"
        self.config_path.write_text(render_config(sections), encoding="utf-8")

    def start(self, *, env: Mapping[str, str] | None = None, wait: bool = True) -> WorkerProc:
        """Start one worker; with wait, return once it has logged 'worker started'."""
        stderr_path = self.directory / f"worker-{len(self.procs)}.log"
        full_env = {
            **os.environ,
            "PYTHONPATH": str(REPO),
            **self.ledger_env,
            **(env or {}),
        }
        with stderr_path.open("wb") as stderr:
            process = subprocess.Popen(
                [str(RETRYD), "run", "--config", str(self.config_path)],
                cwd=self.directory,
                env=full_env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=stderr,
            )
        proc = WorkerProc(process, stderr_path)
        self.procs.append(proc)
        if wait:
            wait_for(
                lambda: proc.count("worker started") > 0 or not proc.alive(),
                "a worker to start",
                START_TIMEOUT,
            )
            assert proc.alive(), f"worker exited at start:\n{proc.stderr()}"
        return proc

    def kill(self, proc: WorkerProc) -> int:
        """SIGKILL a worker (a crash); return when, in microseconds."""
        at = now_us()
        os.kill(proc.pid, signal.SIGKILL)
        proc.process.wait(timeout=5)
        self.faults.crashed_pids.add(proc.pid)
        self.faults.kills.append((proc.pid, at))
        return at

    def alive(self) -> list[WorkerProc]:
        return [p for p in self.procs if p.alive()]

    def stop_all(self, timeout: float = 10.0) -> None:
        """SIGTERM every live worker (after SIGCONT, in case it is stopped); SIGKILL stragglers."""
        for proc in self.alive():
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGCONT)
                proc.process.terminate()
        for proc in self.procs:
            try:
                proc.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.process.kill()
                proc.process.wait()

    def all_stderr(self) -> str:
        return "\n".join(f"--- worker pid {p.pid}\n{p.stderr()[-3000:]}" for p in self.procs)


# --- a worker with a wrong clock ----------------------------------------------------------------

CLOCK_SKEW_ENV = "RELIABILITY_CLOCK_SKEW"

# Imported by Python at start-up (site.py) from the first sitecustomize on sys.path: moves every
# wall clock of the process (time.time, time.time_ns, datetime.now/utcnow/today) by the skew.
# time.monotonic stays: a wrong wall clock does not make timers run fast.
_SITECUSTOMIZE = """
import datetime as _dt
import os as _os
import time as _time

_SKEW = float(_os.environ.get("RELIABILITY_CLOCK_SKEW", "0"))
if _SKEW:
    _real_time, _real_time_ns = _time.time, _time.time_ns
    _time.time = lambda: _real_time() + _SKEW
    _time.time_ns = lambda: _real_time_ns() + int(_SKEW * 1_000_000_000)
    _delta = _dt.timedelta(seconds=_SKEW)

    class _SkewedDatetime(_dt.datetime):
        @classmethod
        def now(cls, tz=None):
            return super().now(tz) + _delta

        @classmethod
        def utcnow(cls):
            return super().utcnow() + _delta

        @classmethod
        def today(cls):
            return super().today() + _delta

    _dt.datetime = _SkewedDatetime
"""


def skewed_clock_env(directory: Path, seconds: float) -> dict[str, str]:
    """Environment for Pool.start: the worker's wall clock runs seconds ahead (or behind)."""
    hook = directory / "skewed-clock"
    hook.mkdir(exist_ok=True)
    (hook / "sitecustomize.py").write_text(_SITECUSTOMIZE, encoding="utf-8")
    return {"PYTHONPATH": f"{hook}{os.pathsep}{REPO}", CLOCK_SKEW_ENV: str(seconds)}


# --- putting tasks and watching the store -------------------------------------------------------


def put_tasks(
    url: str,
    namespace: str,
    plans: Mapping[str, Mapping[str, Any]],
    *,
    task_type: int = NORMAL,
    next_attempt_at: Any = None,
    batch: int = 500,
) -> None:
    """Put one task per id with its plan as JSON data; every batch acknowledged or raising."""
    ids = list(plans)
    with SyncRedisStore.from_url(url, namespace=namespace) as store:
        for i in range(0, len(ids), batch):
            records = [
                Record(
                    task_id=t,
                    type=task_type,
                    data=json.dumps(plans[t]).encode(),
                    next_attempt_at=next_attempt_at,
                )
                for t in ids[i : i + batch]
            ]
            store.put_all(*records)


def pending_count(client: redis.Redis, namespace: str) -> int:
    keys = list(client.scan_iter(match="{" + namespace + "}:idx:1:*", count=1000))
    return sum(int(client.zcard(k)) for k in keys)


def wait_until_settled(client: redis.Redis, namespace: str, timeout: float) -> float:
    """Wait until no task of the namespace is PENDING; return how long that took."""
    started = time.monotonic()
    settled = wait_for(
        lambda: pending_count(client, namespace) == 0, "every task to settle", timeout, interval=0.1
    )
    return settled - started


@dataclass
class Scan:
    """A full scan of one namespace: the records and every index entry."""

    records: dict[str, Record]
    index: dict[str, list[tuple[str, int]]]  # task id -> [(index key suffix, score)]
    damaged_values: set[str]


def scan_namespace(client: redis.Redis, namespace: str) -> Scan:
    tag = "{" + namespace + "}"
    records: dict[str, Record] = {}
    damaged: set[str] = set()
    for task_id, packed in client.hscan_iter(f"{tag}:tasks", count=1000):
        name = task_id.decode("utf-8")
        try:
            records[name] = decode_record(name, packed)
        except StoreError:  # a damaged value is what some scenarios plant
            damaged.add(name)
    index: dict[str, list[tuple[str, int]]] = defaultdict(list)
    for key in client.scan_iter(match=f"{tag}:idx:*", count=1000):
        suffix = key.decode("utf-8")[len(f"{tag}:idx:") :]
        entries: list[tuple[bytes, float]] = client.zrange(key, 0, -1, withscores=True)  # type: ignore[assignment]
        for member, score in entries:
            index[member.decode("utf-8")].append((suffix, int(score)))
    return Scan(records, dict(index), damaged)


class DueMonitor:
    """Samples the due PENDING tasks while a scenario runs; records the longest any one stayed
    due while the backlog was within the workers' capacity (beyond it, waiting is queueing)."""

    def __init__(self, client: redis.Redis, namespace: str, capacity: int, types: Iterable[int]):
        self.client = client
        self.keys = ["{" + namespace + "}:idx:1:" + str(t) for t in types]
        self.capacity = capacity
        self.longest = 0.0
        self.longest_task = ""
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def __enter__(self) -> DueMonitor:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _watch(self) -> None:
        since: dict[str, float] = {}
        while not self._stop.wait(0.05):
            try:
                seconds, micros = self.client.time()
                due: set[str] = set()
                for key in self.keys:
                    found = self.client.zrangebyscore(
                        key, "-inf", seconds * 1_000_000 + micros, start=0, num=self.capacity + 1
                    )
                    due |= {m.decode("utf-8") for m in found}  # type: ignore[union-attr]
            except (redis.RedisError, OSError):
                since.clear()  # the server is away: nothing is stuck that we can see
                continue
            now = time.monotonic()
            if len(due) > self.capacity:
                since.clear()
                continue
            since = {t: since.get(t, now) for t in due}
            for task_id, first in since.items():
                if now - first > self.longest:
                    self.longest, self.longest_task = now - first, task_id


# --- invariants ---------------------------------------------------------------------------------


@dataclass
class Verdict:
    lost: int
    duplicates: int  # runs beyond the first, summed over tasks
    runs: dict[str, list[Run]]
    scan: Scan


def check_invariants(
    client: redis.Redis,
    namespace: str,
    put_ids: Iterable[str],
    ledger: Ledger,
    faults: Faults,
    *,
    expect_failed: Iterable[str] = (),
    expect_damaged: Iterable[str] = (),
    writes_may_be_lost: bool = False,
) -> Verdict:
    """Assert the suite's invariants over the store and the ledger; return the counts."""
    put = set(put_ids)
    failed_ok, damaged_ok = set(expect_failed), set(expect_damaged)
    scan = scan_namespace(client, namespace)
    runs = ledger.runs()

    lost = sorted(put - set(scan.records))
    assert not lost, f"{len(lost)} acknowledged tasks lost, e.g. {lost[:5]}"
    for task_id in put:
        record = scan.records[task_id]
        wanted = State.FAILED if task_id in failed_ok else State.CONFIRMED
        assert record.state == wanted, f"{task_id}: ended {record.state}, expected {wanted}"

    # Every record in exactly one index: its state's and type's, scored by next_attempt_at.
    for task_id, record in scan.records.items():
        entries = scan.index.get(task_id, [])
        assert record.next_attempt_at is not None
        expected = (f"{int(record.state)}:{record.type}", to_micros("n", record.next_attempt_at))
        assert entries == [expected], f"{task_id}: index entries {entries}, expected [{expected}]"
    strays = {t: e for t, e in scan.index.items() if t not in scan.records}
    for task_id, entries in strays.items():
        assert task_id in damaged_ok, f"index entry without a record: {task_id} {entries}"
        assert [suffix for suffix, _ in entries] == ["damaged"], f"{task_id}: {entries}"

    # Duplicate runs only across a crash, a stop past the lease, or an outage window; never two
    # runs at one claim version, and never two overlapping runs unless the earlier was faulted.
    duplicates = 0
    for task_id, task_runs in runs.items():
        assert task_id in put or task_id in scan.records, f"ledger names unknown {task_id}"
        versions = [r.version for r in task_runs]
        if not writes_may_be_lost:  # a claim lost with the server's last second runs again
            assert len(set(versions)) == len(versions), f"{task_id}: two runs at one version"
        for earlier, later in itertools.pairwise(task_runs):
            if earlier.raised:
                continue  # a planned failure and its retry: not a duplicate
            duplicates += 1
            assert faults.explains(earlier), (
                f"{task_id}: ran again (pid {later.pid} v{later.version}) after a run by "
                f"pid {earlier.pid} v{earlier.version} that no fault explains: "
                f"{task_runs} windows {faults.windows}"
            )
    return Verdict(len(lost), duplicates, runs, scan)


@contextlib.contextmanager
def stopped_at_exit(pool: Pool) -> Iterator[Pool]:
    try:
        yield pool
    finally:
        pool.stop_all()
