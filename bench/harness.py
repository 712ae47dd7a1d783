"""The measurements: one system, one worker process, five figures per run.

For each run of each system: enqueue N jobs with no worker running (enqueue jobs/s, and Redis
bytes per queued job from the used_memory delta); FLUSHALL; start the worker and wait for one
warm-up job; then, with the worker warm, time N jobs end to end, N_retry fail-once jobs, and the
lag of 500 jobs due at one whole-second instant at least 2 s ahead. Every wait is bounded: a
worker that dies or stops making progress fails that run only, and is stopped by its pid.
"""

from __future__ import annotations

import asyncio
import math
import os
import subprocess
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from redis.asyncio import Redis

from bench import _processes
from bench.peers import _common
from bench.peers.base import System, Unavailable

__all__ = ["METRICS", "Metric", "RunResult", "percentile", "run_system", "wait_until_count"]

LAG_JOBS = 500
LAG_LEAD_SECONDS = 2.0
_POLL_SECONDS = 0.005
_STARTUP_SECONDS = 30.0
# A run fails once its counter has not moved for this long: slow is measured, stuck is not.
_STALL_SECONDS = 20.0
_REPO_ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Metric:
    """One column of the table: the RunResult field, its heading, and which way is better."""

    key: str
    heading: str
    higher_is_better: bool


METRICS = (
    Metric("enqueue_per_s", "enqueue jobs/s", higher_is_better=True),
    Metric("e2e_per_s", "end-to-end jobs/s", higher_is_better=True),
    Metric("retry_per_s", "retry path jobs/s", higher_is_better=True),
    Metric("lag_p50_ms", "lag p50 ms", higher_is_better=False),
    Metric("lag_p99_ms", "lag p99 ms", higher_is_better=False),
    Metric("bytes_per_job", "Redis bytes/job", higher_is_better=False),
)


@dataclass
class RunResult:
    """The figures of one run of one system; a failed phase leaves its figure None."""

    system: str
    run: int
    enqueue_per_s: float | None = None
    bytes_per_job: float | None = None
    e2e_per_s: float | None = None
    retry_per_s: float | None = None
    lag_p50_ms: float | None = None
    lag_p99_ms: float | None = None
    error: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def asdict(self) -> dict[str, Any]:
        return asdict(self)


class WorkerFailed(Exception):  # noqa: N818 - reads as "the worker failed" where it is raised
    """Raised when the worker exits or stops making progress during a timed wait."""


async def _used_memory(client: Redis) -> int:
    """Memory Redis holds, less its client buffers: 100 open producer connections are not data."""
    info = await client.info("memory")
    return int(info["used_memory"]) - int(info["mem_clients_normal"])


async def wait_until_count(
    read: Callable[[], Awaitable[int]],
    target: int,
    proc: subprocess.Popen[bytes],
    *,
    stall_seconds: float = _STALL_SECONDS,
) -> float:
    """Poll read() until it reaches target; return the perf_counter instant it did."""
    last, last_change = -1, time.monotonic()
    while True:
        value = await read()
        now = time.monotonic()
        if value >= target:
            return time.perf_counter()
        if value != last:
            last, last_change = value, now
        if proc.poll() is not None:
            raise WorkerFailed(f"worker exited with status {proc.returncode} at {value}/{target}")
        if now - last_change > stall_seconds:
            raise WorkerFailed(f"no progress for {stall_seconds:.0f} s at {value}/{target}")
        await asyncio.sleep(_POLL_SECONDS)


def _counter(client: Redis) -> Callable[[], Awaitable[int]]:
    async def read() -> int:
        value = await client.get(_common.DONE_KEY)
        return int(value) if value is not None else 0

    return read


def _lag_length(client: Redis) -> Callable[[], Awaitable[int]]:
    async def read() -> int:
        return int(await client.llen(_common.LAG_KEY))

    return read


def percentile(sorted_values: list[float], fraction: float) -> float:
    """Nearest-rank percentile: the smallest value with at least fraction of them at or below."""
    rank = max(1, math.ceil(fraction * len(sorted_values)))
    return sorted_values[rank - 1]


def _log_tail(log: Path, lines: int = 15) -> str:
    try:
        text = log.read_text(errors="replace").splitlines()
    except OSError:
        return ""
    return "\n".join(text[-lines:])


async def _measure_enqueue(system: System, client: Redis, n: int, result: RunResult) -> None:
    await client.flushall()
    await system.reset()
    before = await _used_memory(client)
    start = time.perf_counter()
    await system.enqueue(_common.MODE_INCR, n)
    elapsed = time.perf_counter() - start
    result.enqueue_per_s = n / elapsed
    result.bytes_per_job = (await _used_memory(client) - before) / n
    await client.flushall()
    await system.reset()


async def _measure_throughput(
    system: System, client: Redis, proc: subprocess.Popen[bytes], mode: str, n: int
) -> float:
    await client.delete(_common.DONE_KEY)
    start = time.perf_counter()
    await system.enqueue(mode, n)
    end = await wait_until_count(_counter(client), n, proc)
    return n / (end - start)


async def _measure_lag(
    system: System, client: Redis, proc: subprocess.Popen[bytes], result: RunResult
) -> None:
    await client.delete(_common.LAG_KEY)
    # A whole second: saq schedules in whole epoch seconds, and the instant must be the same
    # for every system.
    due = float(math.ceil(time.time() + LAG_LEAD_SECONDS))
    await system.enqueue_at(_common.MODE_LAG, LAG_JOBS, due)
    wait = due - time.time()
    await wait_until_count(_lag_length(client), LAG_JOBS, proc, stall_seconds=_STALL_SECONDS + wait)
    stamps = await client.lrange(_common.LAG_KEY, 0, -1)
    lags = sorted((float(stamp) - due) * 1000.0 for stamp in stamps)
    result.lag_p50_ms = percentile(lags, 0.50)
    result.lag_p99_ms = percentile(lags, 0.99)
    result.extra["lag_min_ms"] = lags[0]
    result.extra["lag_max_ms"] = lags[-1]


async def _warm_up(system: System, client: Redis, proc: subprocess.Popen[bytes]) -> float:
    """Wait for the worker to run one job; return how long start-up took."""
    start = time.perf_counter()
    await client.delete(_common.DONE_KEY)
    await system.enqueue(_common.MODE_INCR, 1)
    end = await wait_until_count(_counter(client), 1, proc, stall_seconds=_STARTUP_SECONDS)
    return end - start


async def run_system(
    system: System, client: Redis, url: str, *, n: int, retry_n: int, run: int, workdir: Path
) -> RunResult:
    """All five figures for one system; failures are recorded in result.error, never raised."""
    result = RunResult(system=system.name, run=run)
    log = workdir / f"{system.name}-run{run}.log"
    env = {**os.environ, _common.URL_ENV: url, "PYTHONPATH": str(_REPO_ROOT)}
    try:
        await _measure_enqueue(system, client, n, result)
        argv = system.worker_argv(workdir, url)
        with _processes.started(argv, log, env) as proc:
            result.extra["startup_s"] = await _warm_up(system, client, proc)
            result.e2e_per_s = await _measure_throughput(system, client, proc, _common.MODE_INCR, n)
            result.retry_per_s = await _measure_throughput(
                system, client, proc, _common.MODE_FAIL_ONCE, retry_n
            )
            await _measure_lag(system, client, proc, result)
    except Unavailable as exc:
        result.error = f"unavailable: {exc}"
    except Exception as exc:  # a broken system fails its own run, never the whole benchmark
        tail = _log_tail(log)
        result.error = f"{type(exc).__name__}: {exc}" + (
            f"\n--- worker log ---\n{tail}" if tail else ""
        )
    finally:
        await system.close()
    return result
