"""The supervisor: `retryd run --processes N` runs N worker processes on one machine.

One Python process runs its handlers on one core; this one starts N `retryd run` children, each
a complete worker, restarts one that dies (after a backoff that doubles while it keeps dying),
forwards SIGTERM/SIGINT so each drains as a single worker would, and serves one /metrics and
one /healthz for all of them. Children write their metrics into a shared directory
(prometheus-client's multiprocess mode) and their claimer's last tick into another; the
supervisor reads both. It never claims a task, and never signals a process it did not start.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import tempfile
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import structlog
from prometheus_client import CollectorRegistry, Counter, Gauge
from prometheus_client.metrics_core import Metric
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead
from prometheus_client.registry import Collector
from prometheus_client.samples import Sample

from worker.cpu import CPU_SLOT_ENV

__all__ = [
    "SUPERVISED_OPTION",
    "Supervisor",
    "SupervisorMetrics",
    "child_environment",
    "report_to_supervisor",
    "runtime_directory",
]

log = structlog.get_logger("retryd.supervisor")

SUPERVISED_OPTION = "--supervised-by"  # a child's hidden `retryd run` option: the runtime dir
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
EXIT_BAD_CONFIG = 2  # a child that exits 2 found bad configuration: restarting cannot mend it
FIRST_BACKOFF_SECONDS = 0.5
MAX_BACKOFF_SECONDS = 30.0
# A child that ran this long before dying is not crash-looping: its next restart is quick again.
STABLE_SECONDS = 60.0
REPORT_SECONDS = 1.0
_TICKS = "ticks"
_METRICS = "metrics"
_SUPERVISOR_PID = "supervisor.pid"
_RUNTIME_PREFIX = "retryd-supervisor-"
# A runtime directory without a pid file this old was left by a supervisor killed as it started.
_UNCLAIMED_SECONDS = 60.0


class _Inflight(Protocol):
    def publish_inflight(self) -> None: ...


class _Reporter(Protocol):
    """What a supervised child reports about its Worker."""

    @property
    def last_tick(self) -> float: ...

    @property
    def metrics(self) -> _Inflight: ...

    def stop(self) -> None: ...


@dataclass(slots=True)
class _Slot:
    """One of the N places a child runs in; its child changes with every restart."""

    index: int
    process: asyncio.subprocess.Process | None = None
    started_at: float = 0.0
    down_since: float = field(default_factory=time.monotonic)
    failures: int = 0


class SupervisorMetrics:
    """The supervisor's /metrics: every child's series, summed, plus its own few."""

    def __init__(self, metrics_dir: Path) -> None:
        own = CollectorRegistry()
        # Scrapes that could not read the store's gauges: the children count theirs under the
        # same name, and the two are summed into one series.
        self.redis_errors = Counter("retryd_redis_errors", "Failed Redis calls.", registry=own)
        self.restarts = Counter(
            "retryd_worker_restarts", "Worker processes restarted after dying.", registry=own
        )
        self.processes = Gauge(
            "retryd_worker_processes", "Worker processes running now.", registry=own
        )
        self.registry = CollectorRegistry(auto_describe=False)
        children = MultiProcessCollector(None, str(metrics_dir))  # type: ignore[no-untyped-call]
        self.registry.register(_Summed([children, own]))


class _Summed(Collector):
    """The families of several collectors, a family named twice merged and its samples added."""

    def __init__(self, parts: Sequence[Collector]) -> None:
        self._parts = parts

    def collect(self) -> Iterable[Metric]:
        families: dict[str, Metric] = {}
        for part in self._parts:
            for family in part.collect():
                known = families.get(family.name)
                if known is None:
                    families[family.name] = family
                else:
                    known.samples = _add_samples([*known.samples, *family.samples])
        return list(families.values())


def _add_samples(samples: Iterable[Sample]) -> list[Sample]:
    totals: dict[tuple[str, tuple[tuple[str, str], ...]], Sample] = {}
    for sample in samples:
        key = (sample.name, tuple(sorted(sample.labels.items())))
        known = totals.get(key)
        totals[key] = sample if known is None else known._replace(value=known.value + sample.value)
    return list(totals.values())


@contextlib.contextmanager
def runtime_directory() -> Iterator[Path]:
    """A fresh directory for the children's metrics and ticks, removed with everything in it.

    The directories that SIGKILLed supervisors left behind are removed first (stale_directories).
    """
    parent = Path(tempfile.gettempdir())
    for stale in stale_directories(parent):
        shutil.rmtree(stale, ignore_errors=True)
        log.info("removed the runtime directory of a supervisor that is gone", path=str(stale))
    directory = Path(tempfile.mkdtemp(prefix=_RUNTIME_PREFIX, dir=parent))
    try:
        (directory / _METRICS).mkdir()
        (directory / _TICKS).mkdir()
        # Read by each child: os.getppid() at its start could already be init's, if we died first.
        (directory / _SUPERVISOR_PID).write_text(str(os.getpid()), encoding="ascii")
        yield directory
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def stale_directories(parent: Path) -> list[Path]:
    """Our runtime directories in parent whose supervisor is gone and none of whose children
    still runs (one may drain for its shutdown_grace after the supervisor was killed).

    A directory whose pid file is missing or unreadable is stale once older than
    _UNCLAIMED_SECONDS (its supervisor died between making it and writing the file). Another
    user's directories are left alone, as are those of a pid that exists (even if reused).
    """
    stale = []
    for directory in parent.glob(f"{_RUNTIME_PREFIX}*"):
        try:
            info = directory.lstat()
            if not directory.is_dir() or directory.is_symlink() or info.st_uid != os.getuid():
                continue
            try:
                owner = int((directory / _SUPERVISOR_PID).read_text(encoding="ascii"))
            except (OSError, ValueError):
                if time.time() - info.st_mtime > _UNCLAIMED_SECONDS:
                    stale.append(directory)
                continue
            children = [int(f.name) for f in (directory / _TICKS).glob("*") if f.name.isdigit()]
        except OSError:  # removed meanwhile (by another supervisor starting), or unreadable
            continue
        if not any(_pid_exists(pid) for pid in (owner, *children)):
            stale.append(directory)
    return stale


def _pid_exists(pid: int) -> bool:
    if pid <= 0:
        return True  # not a process we could tell about: keep its directory
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process
    return True


def child_environment(runtime_dir: Path, redis_url: str | None) -> dict[str, str]:
    """A child's environment: ours, its metrics in the shared directory, no listener of its own.

    redis_url is passed only for a server the supervisor started (the embedded one); a URL from
    the config or the environment reaches the child the way it reached us.
    """
    env = dict(os.environ)
    env[MULTIPROC_ENV] = str(runtime_dir / _METRICS)
    env["RETRYD_METRICS_PORT"] = "0"
    if redis_url is not None:
        env["RETRYD_REDIS_URL"] = redis_url
    return env


class Supervisor:
    """Runs N worker children until stop(); restarts one that dies, after a backoff."""

    def __init__(
        self,
        child_argv: Sequence[str],
        env: Mapping[str, str],
        runtime_dir: Path,
        *,
        processes: int,
        poll_interval: float,
        handled_types: frozenset[int],
        burst: bool = False,
    ) -> None:
        self._argv = [*child_argv, SUPERVISED_OPTION, str(runtime_dir)]
        self._env = dict(env)
        self._metrics_dir = runtime_dir / _METRICS
        self._ticks = runtime_dir / _TICKS
        self._slots = [_Slot(index) for index in range(processes)]
        self._burst = burst
        self._stopping = asyncio.Event()
        self._bad_config = False
        self.poll_interval = poll_interval
        self.handled_types = handled_types  # every child registers the same handlers
        self.metrics = SupervisorMetrics(self._metrics_dir)

    @property
    def last_tick(self) -> float:
        """The least recent child's tick: /healthz fails when any child stalls or stays down."""
        return min(self._tick_of(slot) for slot in self._slots)

    def pids(self) -> list[int]:
        """The children running now."""
        return [s.process.pid for s in self._slots if _alive(s.process) and s.process is not None]

    def stop(self, signum: int = signal.SIGTERM) -> None:
        """Stop restarting and pass signum on to every child (a second one: they exit at once)."""
        self._stopping.set()
        for slot in self._slots:
            if slot.process is not None and _alive(slot.process):
                with contextlib.suppress(ProcessLookupError):
                    slot.process.send_signal(signum)

    async def run(self) -> int:
        """Until stopped (or, in burst mode, until every child is done): 0, or 2 on bad config."""
        await asyncio.gather(*(self._keep(slot) for slot in self._slots))
        return EXIT_BAD_CONFIG if self._bad_config else 0

    async def _keep(self, slot: _Slot) -> None:
        while not self._stopping.is_set():
            code = await self._run_child(slot)
            if self._stopping.is_set() or (self._burst and code == 0):
                return
            if code == EXIT_BAD_CONFIG:
                log.error("worker process refused its configuration; stopping", slot=slot.index)
                self._bad_config = True
                self.stop()
                return
            delay = _next_backoff(slot)
            log.error("worker process died; restarting", slot=slot.index, status=code, delay=delay)
            self.metrics.restarts.inc()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), delay)

    async def _run_child(self, slot: _Slot) -> int:
        # Its own process group: a terminal's Ctrl-C reaches the supervisor alone, which passes
        # it on once; the child would otherwise take the forwarded copy as a second signal.
        process = await asyncio.create_subprocess_exec(
            *self._argv,
            env={**self._env, CPU_SLOT_ENV: str(slot.index)},  # children start on distinct CPUs
            stdin=asyncio.subprocess.DEVNULL,
            process_group=0,
        )
        slot.process, slot.started_at = process, time.monotonic()
        if self._stopping.is_set():  # stopped while it started: it missed the signal
            process.send_signal(signal.SIGTERM)
        self.metrics.processes.inc()
        log.info("worker process started", slot=slot.index, pid=process.pid)
        code = await process.wait()
        self.metrics.processes.dec()
        slot.down_since = time.monotonic()
        mark_process_dead(process.pid, str(self._metrics_dir))  # type: ignore[no-untyped-call]
        (self._ticks / str(process.pid)).unlink(missing_ok=True)
        return code

    def _tick_of(self, slot: _Slot) -> float:
        if slot.process is None or not _alive(slot.process):
            return slot.down_since
        try:
            reported = float((self._ticks / str(slot.process.pid)).read_text(encoding="ascii"))
        except (OSError, ValueError):
            reported = 0.0  # not written yet: a new child gets the stall limit to start ticking
        return max(reported, slot.started_at)


def _alive(process: asyncio.subprocess.Process | None) -> bool:
    return process is not None and process.returncode is None


def _next_backoff(slot: _Slot) -> float:
    """0.5 s, doubling with each death in a row up to 30 s; quick again after a stable run."""
    lived = slot.down_since - slot.started_at
    slot.failures = 1 if lived >= STABLE_SECONDS else slot.failures + 1
    return min(FIRST_BACKOFF_SECONDS * 2.0 ** (slot.failures - 1), MAX_BACKOFF_SECONDS)


async def report_to_supervisor(worker: _Reporter, runtime_dir: Path) -> None:
    """In a child, every second: write the claimer's last tick and the in-flight count where the
    supervisor reads them, and stop the worker (it drains) once the supervisor is gone."""
    parent = int((runtime_dir / _SUPERVISOR_PID).read_text(encoding="ascii"))
    tick_file = runtime_dir / _TICKS / str(os.getpid())
    while True:
        if os.getppid() != parent:
            log.error("supervisor gone; stopping")
            worker.stop()
            return
        scratch = tick_file.with_suffix(".new")
        scratch.write_text(repr(worker.last_tick), encoding="ascii")
        scratch.replace(tick_file)  # whole, or not at all: a reader never sees half a number
        worker.metrics.publish_inflight()
        await asyncio.sleep(REPORT_SECONDS)
