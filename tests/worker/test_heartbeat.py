"""The worker's heartbeat: what it reports, and that `retryd run` beats on the real store."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

from store import Record, RedisStore
from worker.heartbeat import worker_report
from worker.metrics import WorkerMetrics
from worker.outcomes import Outcome


def test_the_report_sums_runs_by_outcome_over_types() -> None:
    metrics = WorkerMetrics([1, 2])
    metrics.outcomes({(1, Outcome.CONFIRMED): 3, (2, Outcome.CONFIRMED): 2, (2, Outcome.FAILED): 1})
    report = worker_report(metrics, [2, 1], concurrency=8)()
    assert report.runs["confirmed"] == 5
    assert report.runs["failed"] == 1
    assert (report.types, report.concurrency, report.pid) == ([1, 2], 8, os.getpid())
    assert json.loads(report.encode())["runs"]["confirmed"] == 5


async def test_retryd_run_beats_as_it_starts(
    redis_store: RedisStore, redis_url: str, namespace: str, tmp_path: Path
) -> None:
    await redis_store.put_all(Record("t-1", 1, b"hi"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("RETRYD_")}
    env |= {"RETRYD_REDIS_URL": redis_url, "RETRYD_REDIS_NAMESPACE": namespace,
            "RETRYD_METRICS_PORT": "0"}  # fmt: skip
    done = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "worker.cli", "run", "--burst"],
        cwd=tmp_path, env=env, capture_output=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    [beat] = (await redis_store.beats(within_seconds=60)).beats
    report = json.loads(beat.payload)
    assert beat.member.startswith(f"{report['host']}:{report['pid']}:")
    assert report["types"] == [1, 2]
