"""The dashboard's page times with 1M tasks stored (issue 14): a script, not a test.

Starts its own redis-server on a free loopback port, stores the tasks (states and types mixed,
100-byte data), starts a real `retryd web` process on it, requests every page many times and
prints, per page, the server time the dashboard itself reports (its Server-Timing header: the
handler's time, Redis calls included) and the slowest Redis command the pages caused (SLOWLOG).

Run: `python -m bench.web_bench [--tasks 1000000] [--requests 30]`. Target: every page under
300 ms of server time at 1M tasks.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import statistics
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import redis

from bench._processes import free_port, redis_server, started
from store import Record, RedisStore, State

NAMESPACE = "bench"
DATA = json.dumps({"invoice": 12345, "to": "ada@example.com", "lines": [1, 2, 3]}).encode()[:100]
BATCH = 5000
TYPES = (1, 2, 3, 4)


def mix(total: int) -> Iterator[tuple[str, State, bool]]:
    """(task id, state, due now) for each task: 70% pending (half of them due later), 25%
    confirmed, 5% failed."""
    for n in range(total):
        share = n % 20
        if share < 14:
            yield f"task-{n}", State.PENDING, share % 2 == 0
        elif share < 19:
            yield f"task-{n}", State.CONFIRMED, True
        else:
            yield f"task-{n}", State.FAILED, True


async def load(url: str, total: int) -> float:
    """Store total tasks in batches; return the seconds it took."""
    later = datetime.now(UTC) + timedelta(days=1)
    began = time.perf_counter()
    async with RedisStore.from_url(url, namespace=NAMESPACE) as store:
        batch: list[Record] = []
        for task_id, state, due in mix(total):
            record = Record(task_id, TYPES[len(batch) % len(TYPES)], DATA, state=state)
            record.next_attempt_at = None if due else later
            batch.append(record)
            if len(batch) == BATCH:
                await store.put_all(*batch)
                batch = []
        if batch:
            await store.put_all(*batch)
        await store.cancel(*(f"task-{n}" for n in range(0, 20 * 100, 20)))  # reasons to show
        for worker in range(3):
            report = {"host": "bench", "pid": worker, "runs": {"confirmed": 0}, "types": [1]}
            await store.beat(f"bench:{worker}", json.dumps(report).encode(),
                             forget_after_seconds=3600)  # fmt: skip
    return time.perf_counter() - began


def pages(total: int) -> list[tuple[str, str]]:
    middle = total // 2
    # A page of one type resumed from now: past its due tasks, into those due tomorrow.
    now_us = int(datetime.now(UTC).timestamp() * 1_000_000)
    resumed = f"order=oldest&after_at={now_us}&after_id=task-{middle}"
    return [
        ("overview", "/"),
        ("tasks: pending, newest first", "/tasks?state=pending&order=newest"),
        ("tasks: pending, oldest first", "/tasks?state=pending&order=oldest"),
        ("tasks: pending, mid-list", f"/tasks?state=pending&order=newest&after={middle}"),
        ("tasks: confirmed", "/tasks?state=confirmed"),
        ("tasks: failed (with reasons)", "/tasks?state=failed"),
        ("tasks: pending of type 2, latest first", "/tasks?state=pending&type=2&order=newest"),
        ("tasks: pending of type 2, mid-list", f"/tasks?state=pending&type=2&{resumed}"),
        ("tasks: failed of type 3", "/tasks?state=failed&type=3"),
        ("search (redirect)", f"/tasks?task_id=task-{middle}"),
        ("task detail", f"/task?id=task-{middle}"),
        ("task detail, hex", f"/task?id=task-{middle}&view=hex"),
        ("task detail, unknown id (404)", "/task?id=no-such-task"),
        ("confirm retry", "/task/retry?id=task-19"),
        ("confirm retry-all of a type", "/retry-failed?type=1"),
    ]  # fmt: skip


def fetch(base: str, path: str) -> tuple[int, float, float]:
    """(status, server ms from Server-Timing, client ms) of one GET, redirects not followed."""

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args: object, **kwargs: object) -> None:
            return None

    opener = urllib.request.build_opener(NoRedirect)
    began = time.perf_counter()
    try:
        response = opener.open(base + path, timeout=30)
        status, headers = response.status, response.headers
        response.read()
    except urllib.error.HTTPError as error:
        status, headers = error.code, error.headers
        error.read()
    client_ms = (time.perf_counter() - began) * 1000
    timing = re.search(r"dur=([\d.]+)", headers.get("server-timing", ""))
    return status, float(timing.group(1)) if timing else float("nan"), client_ms


Row = tuple[str, int, list[float], list[float]]


def measure(base: str, requests: int, total: int) -> list[Row]:
    rows = []
    for name, path in pages(total):
        fetch(base, path)  # warm: scripts loaded, templates compiled
        results = [fetch(base, path) for _ in range(requests)]
        rows.append((name, results[0][0], [r[1] for r in results], [r[2] for r in results]))
    return rows


def wait_listening(base: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(base + "/healthz", timeout=1).read()  # noqa: S310 - loopback
        except OSError:
            time.sleep(0.1)
        else:
            return
    raise TimeoutError("retryd web did not answer")


def report(rows: list[Row], slowest_us: int) -> None:
    print("| page | status | server p50 ms | server p95 ms | server max ms | client p50 ms |")
    print("| --- | --- | --- | --- | --- | --- |")
    for name, status, server, client in rows:
        server.sort()
        p95 = server[max(0, round(len(server) * 0.95) - 1)]
        print(f"| {name} | {status} | {statistics.median(server):.1f} | {p95:.1f} | "
              f"{server[-1]:.1f} | {statistics.median(client):.1f} |")  # fmt: skip
    print(f"\nslowest Redis command while the pages were served: {slowest_us / 1000:.2f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tasks", type=int, default=1_000_000)
    parser.add_argument("--requests", type=int, default=30)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, redis_server(Path(tmp)) as url:
        seconds = asyncio.run(load(url, args.tasks))
        admin = redis.Redis.from_url(url)
        memory = admin.info("memory")["used_memory_human"]
        print(f"stored {args.tasks} tasks in {seconds:.1f} s; Redis used_memory {memory}\n")
        port = free_port()
        env = {**os.environ, "RETRYD_REDIS_URL": url, "RETRYD_REDIS_NAMESPACE": NAMESPACE,
               "RETRYD_WEB_PORT": str(port), "RETRYD_LOG_LEVEL": "warning"}  # fmt: skip
        argv = [sys.executable, "-m", "worker.cli", "web"]
        with started(argv, Path(tmp) / "web.log", env):
            base = f"http://127.0.0.1:{port}"
            wait_listening(base)
            admin.config_set("slowlog-log-slower-than", 0)
            admin.slowlog_reset()
            rows = measure(base, args.requests, args.tasks)
            slowest = max((entry["duration"] for entry in admin.slowlog_get(10_000)), default=0)
        report(rows, slowest)
        admin.close()


if __name__ == "__main__":
    main()
