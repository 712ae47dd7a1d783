"""Benchmark of issue 13: retention keeps Redis flat; inspection never stalls it. Not a test.

(a) `steady`: a real worker (`retryd run`) under a steady load of puts, with retention in
    seconds (a week compressed to 7 s, 30 days to 30 s), against the same load keeping
    everything; used_memory sampled every second and plotted.
(b) `inspect`: 1,000,000 PENDING tasks in one state: the store call behind the first page of
    `retryd ls` (every task, due now, and a sparse due set), SLOWLOG's slowest command, and a
    live producer's put latency alone and while an operator pages through.

Each part starts its own redis-server on a free loopback port (AOF on, noeviction, as
docs/deploy.md asks) and stops it, and the worker, by pid. Run:
`python -m bench.lifecycle_bench [steady|inspect|all] [--seconds 120] [--tasks 1000000]`.
Results: a markdown table on stdout, JSON and a PNG in bench/results/.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import redis

from bench._processes import redis_server, started
from store import Record, RedisStore, State, SyncRedisStore
from store._scripts import SCRIPT_NAMES, source
from worker.admin import END_OF_TIME, Admin

DATA = bytes(range(100))  # a 100-byte payload, as in the issue
RESULTS = Path(__file__).resolve().parent / "results"
ROOT = Path(__file__).resolve().parent.parent
AOF = ("--appendonly", "yes", "--appendfsync", "everysec", "--maxmemory-policy", "noeviction")
NAMESPACE = "bench"
STEADY_TYPE = 1


# --- (a) steady load ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Sample:
    seconds: float
    used_memory: int
    pending: int
    confirmed: int
    failed: int


def worker_env(url: str, confirmed: float, failed: float) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RETRYD_")}
    return env | {
        "RETRYD_REDIS_URL": url,
        "RETRYD_REDIS_NAMESPACE": NAMESPACE,
        "RETRYD_HANDLERS_MODULES": "bench.lifecycle_handlers",
        "RETRYD_RETENTION_CONFIRMED": str(confirmed),
        "RETRYD_RETENTION_FAILED": str(failed),
        "RETRYD_RETENTION_INTERVAL": "1",
        "RETRYD_METRICS_PORT": "0",
        "RETRYD_LOG_LEVEL": "error",
        "PYTHONPATH": str(ROOT),
    }


async def produce(store: RedisStore, rate: int, seconds: float, prefix: str) -> int:
    """Put rate tasks a second, in ten batches a second, for seconds; how many."""
    per_batch, put, started_at = max(rate // 10, 1), 0, time.monotonic()
    while time.monotonic() - started_at < seconds:
        batch = [Record(f"{prefix}-{put + i}", STEADY_TYPE, DATA) for i in range(per_batch)]
        await store.put_all(*batch)
        put += per_batch
        await asyncio.sleep(max(0.0, put / rate - (time.monotonic() - started_at)))
    return put


async def sample(store: RedisStore, admin: redis.Redis, seconds: float) -> list[Sample]:
    samples, started_at = [], time.monotonic()
    while (elapsed := time.monotonic() - started_at) < seconds:
        counts = [
            await store.count_by_state(s) for s in (State.PENDING, State.CONFIRMED, State.FAILED)
        ]
        used = int(admin.info("memory")["used_memory"])
        samples.append(Sample(round(elapsed, 1), used, *counts))
        await asyncio.sleep(1.0)
    return samples


async def steady_run(seconds: float, rate: int, retention: tuple[float, float]) -> list[Sample]:
    """One run on a fresh server: a worker with this retention, a producer, the sampler."""
    with (
        tempfile.TemporaryDirectory() as workdir,
        redis_server(Path(workdir), extra_args=AOF) as url,
    ):
        argv = [sys.executable, "-m", "worker.cli", "run"]
        env = worker_env(url, *retention)
        with started(argv, Path(workdir) / "worker.log", env):
            admin = redis.Redis.from_url(url)
            async with RedisStore.from_url(url, namespace=NAMESPACE) as store:
                samples, _ = await asyncio.gather(
                    sample(store, admin, seconds), produce(store, rate, seconds, "steady")
                )
            admin.close()
    return samples


def flatness(samples: list[Sample]) -> dict[str, float]:
    """used_memory in the third quarter and the last quarter of the run, and the growth."""
    n = len(samples)
    third = statistics.mean(s.used_memory for s in samples[n // 2 : 3 * n // 4])
    last = statistics.mean(s.used_memory for s in samples[3 * n // 4 :])
    return {"third_quarter_mb": third / 1e6, "last_quarter_mb": last / 1e6,
            "growth_pct": 100 * (last - third) / third}  # fmt: skip


def plot(runs: dict[str, list[Sample]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (memory, stored) = plt.subplots(2, 1, figsize=(9, 7), sharex=True)
    for label, samples in runs.items():
        xs = [s.seconds for s in samples]
        memory.plot(xs, [s.used_memory / 1e6 for s in samples], label=label)
        stored.plot(xs, [s.pending + s.confirmed + s.failed for s in samples], label=label)
    memory.set_ylabel("Redis used_memory (MB)")
    stored.set_ylabel("tasks stored")
    stored.set_xlabel("seconds (1 s = 1 day: confirmed kept 7 s, failed 30 s)")
    memory.set_title("retryd under a steady load of puts, with and without retention")
    memory.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)


async def steady(seconds: float, rate: int) -> dict[str, Any]:
    runs = {
        "retention 7 s / 30 s": await steady_run(seconds, rate, (7, 30)),
        "keep forever (retention 0)": await steady_run(seconds, rate, (0, 0)),
    }
    return {"rate": rate, "seconds": seconds,
            "runs": {k: [asdict(s) for s in v] for k, v in runs.items()},
            "flatness": {k: flatness(v) for k, v in runs.items()}, "_samples": runs}  # fmt: skip


# --- (b) a million tasks in one state -------------------------------------------------------


async def load(store: RedisStore, count: int, now: datetime) -> float:
    """count PENDING tasks, next_attempt_at uniform over now +- 1 h; seconds it took."""
    chance, started_at = random.Random(13), time.perf_counter()
    for offset in range(0, count, 5000):
        batch = [
            Record(f"job-{offset + i}", STEADY_TYPE, DATA,
                   next_attempt_at=now + timedelta(seconds=chance.uniform(-3600, 3600)))
            for i in range(min(5000, count - offset))
        ]  # fmt: skip
        await store.put_all(*batch)
    return time.perf_counter() - started_at


def percentiles(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return {"n": len(ordered), "median": statistics.median(ordered), "p99": p99, "max": ordered[-1]}


def script_calls(admin: redis.Redis) -> int:
    stats = admin.info("commandstats")
    return sum(int(stats.get(f"cmdstat_{c}", {}).get("calls", 0)) for c in ("evalsha", "eval"))


async def first_page(store: RedisStore, admin: redis.Redis, as_of: datetime) -> dict[str, float]:
    """Milliseconds of list_tasks' first 50-row page (20 samples) and script calls per page."""
    times, calls_before = [], script_calls(admin)
    for _ in range(20):
        started_at = time.perf_counter()
        await store.list_tasks(State.PENDING, as_of, None, 50)
        times.append((time.perf_counter() - started_at) * 1000)
    return percentiles(times) | {"script_calls_per_page": (script_calls(admin) - calls_before) / 20}


async def operator_pages(store: RedisStore, seconds: float) -> list[float]:
    """Page through the state, 50 at a time, from the first page on, for seconds; ms each."""
    admin_layer, times, cursor = Admin(store), [], None
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        started_at = time.perf_counter()
        page = await admin_layer.page(State.PENDING, cursor=cursor, limit=50)
        times.append((time.perf_counter() - started_at) * 1000)
        cursor = page.next_cursor
    return times


async def producer(url: str, seconds: float) -> dict[str, Any]:
    """A producer in its own process putting one task at a time, 100 a second."""
    argv = [sys.executable, "-m", "bench.lifecycle_bench", "producer", "--url", url,
            "--seconds", str(seconds)]  # fmt: skip
    proc = await asyncio.create_subprocess_exec(*argv, stdout=subprocess.PIPE, cwd=ROOT)
    out, _ = await proc.communicate()
    return dict(json.loads(out))


def run_producer(url: str, seconds: float) -> None:
    """The producer process: put, time it, pace to 100/s; print the latencies as JSON."""
    latencies, errors, prefix = [], 0, f"live-{os.getpid()}-{time.time_ns()}"
    with SyncRedisStore.from_url(url, namespace=NAMESPACE) as store:
        deadline, n = time.monotonic() + seconds, 0
        while time.monotonic() < deadline:
            started_at = time.perf_counter()
            try:
                store.put_all(Record(f"{prefix}-{n}", 2, DATA))
            except Exception:  # a BUSY or timeout is what we are looking for: count it
                errors += 1
            latencies.append((time.perf_counter() - started_at) * 1000)
            n += 1
            time.sleep(max(0.0, 0.01 - (time.perf_counter() - started_at)))
    print(json.dumps({"latencies": latencies, "errors": errors}))


def slowlog(admin: redis.Redis) -> dict[str, Any]:
    """Every command SLOWLOG kept (threshold 0: all of them), per script or command name:
    how many, median, p99 and max milliseconds of Redis's own execution time."""
    entries: list[dict[str, Any]] = admin.slowlog_get(1_000_000)
    # Redis names a script by the SHA-1 of its text: sha1 here is an identifier, not security.
    names: dict[str, str] = {_sha1(source(n)): n for n in SCRIPT_NAMES}
    by_name: dict[str, list[float]] = {}
    for entry in entries:
        name = _command_name(entry["command"], names)
        by_name.setdefault(name, []).append(entry["duration"] / 1000)
    return {
        "entries": len(entries),
        "max_ms": max((e["duration"] / 1000 for e in entries), default=0.0),
        "over_10ms": sum(e["duration"] > 10_000 for e in entries),
        "by_command": {name: percentiles(ms) for name, ms in by_name.items() if len(ms) > 10},
    }


def _sha1(text: str) -> str:
    return hashlib.sha1(text.encode(), usedforsecurity=False).hexdigest()


def _command_name(command: bytes, scripts: dict[str, str]) -> str:
    words = command.split(b" ")
    if words[0].upper() == b"EVALSHA" and len(words) > 1:
        return scripts.get(words[1].decode(), "script?")
    return words[0].decode(errors="replace")


def cli_ls_seconds(url: str) -> float:
    env = worker_env(url, 0, 0)
    started_at = time.perf_counter()
    argv = [sys.executable, "-m", "worker.cli", "ls", "--state", "pending", "--limit", "10"]
    subprocess.run(argv, env=env, cwd=ROOT, check=True, capture_output=True)
    return time.perf_counter() - started_at


async def inspect(tasks: int, seconds: float, redis_nice: int) -> dict[str, Any]:
    with (
        tempfile.TemporaryDirectory() as workdir,
        redis_server(Path(workdir), extra_args=AOF) as url,
    ):
        admin = redis.Redis.from_url(url)
        prioritize(admin, redis_nice)
        async with RedisStore.from_url(url, namespace=NAMESPACE) as store:
            now = datetime.now(UTC)
            before = int(admin.info("memory")["used_memory"])
            result: dict[str, Any] = {"tasks": tasks, "load_seconds": await load(store, tasks, now)}
            result["bytes_per_task"] = (int(admin.info("memory")["used_memory"]) - before) / tasks
            admin.config_set("slowlog-log-slower-than", 0)  # every command, with its time
            admin.config_set("slowlog-max-len", 1_000_000)
            admin.slowlog_reset()
            result["first_page_ms"] = await first_pages(store, admin, now)
            result["producer_alone"] = summarize(await producer(url, seconds))
            both = await asyncio.gather(producer(url, seconds), operator_pages(store, seconds))
            result["producer_while_paging"] = summarize(both[0])
            result["operator_page_ms"] = percentiles(both[1])
            result["slowlog"] = slowlog(admin)
            result["cli_ls_seconds"] = min(cli_ls_seconds(url) for _ in range(3))
            result["load_average"] = " / ".join(f"{x:.1f}" for x in os.getloadavg())
            result["redis_nice"] = redis_nice
        admin.close()
    return result


def prioritize(admin: redis.Redis, nice: int) -> None:
    """Set the niceness of the redis-server this benchmark started (its pid, from INFO): a
    negative one gives it the CPU first, as a dedicated Redis host would, when other work
    shares the machine's cores. Needs root below 0."""
    if nice:
        pid = int(admin.info("server")["process_id"])
        os.setpriority(os.PRIO_PROCESS, pid, nice)


async def first_pages(store: RedisStore, admin: redis.Redis, now: datetime) -> dict[str, Any]:
    sparse = now - timedelta(seconds=3600 - 7.2)  # ~0.1% of the tasks are due by then
    return {
        "every task (ls)": await first_page(store, admin, END_OF_TIME),
        "due now, ~50% (ls --ready)": await first_page(store, admin, now),
        "due by an instant ~0.1% are (worst case)": await first_page(store, admin, sparse),
    }


def summarize(run: dict[str, Any]) -> dict[str, Any]:
    return percentiles(run["latencies"]) | {"errors": run["errors"]}


# --- report ---------------------------------------------------------------------------------


def print_steady(result: dict[str, Any]) -> None:
    print(
        f"\n(a) steady load: {result['rate']} puts/s for {result['seconds']:.0f} s, a real worker"
    )
    print("| run | used_memory, 3rd quarter | last quarter | growth |")
    print("|---|---|---|---|")
    for label, f in result["flatness"].items():
        print(f"| {label} | {f['third_quarter_mb']:.1f} MB | {f['last_quarter_mb']:.1f} MB "
              f"| {f['growth_pct']:+.1f}% |")  # fmt: skip


def print_inspect(r: dict[str, Any]) -> None:
    print(f"\n(b) {r['tasks']:,} PENDING tasks in one state (loaded in {r['load_seconds']:.1f} s, "
          f"{r['bytes_per_task']:.0f} Redis bytes per task)")  # fmt: skip
    print("| measure | median | p99 | max | |")
    print("|---|---|---|---|---|")
    for label, p in r["first_page_ms"].items():
        print(f"| first 50-row page, {label} | {p['median']:.2f} ms | {p['p99']:.2f} ms "
              f"| {p['max']:.2f} ms | {p['script_calls_per_page']:.0f} script calls |")  # fmt: skip
    for key in ("producer_alone", "producer_while_paging"):
        p = r[key]
        print(f"| put latency, {key.replace('_', ' ')} ({p['n']} puts) | {p['median']:.2f} ms "
              f"| {p['p99']:.2f} ms | {p['max']:.2f} ms | {p['errors']} errors |")  # fmt: skip
    p = r["operator_page_ms"]
    print(f"| operator paging, 50 a page ({p['n']} pages) | {p['median']:.2f} ms "
          f"| {p['p99']:.2f} ms | {p['max']:.2f} ms | |")  # fmt: skip
    s = r["slowlog"]
    print(f"| SLOWLOG, every command: the slowest | {s['max_ms']:.2f} ms | | | "
          f"{s['entries']} commands, {s['over_10ms']} over 10 ms |")  # fmt: skip
    for name, p in sorted(s["by_command"].items()):
        if name in SCRIPT_NAMES:
            print(f"| SLOWLOG, script `{name}` ({p['n']} calls), Redis time | {p['median']:.2f} ms "
                  f"| {p['p99']:.2f} ms | {p['max']:.2f} ms | |")  # fmt: skip
    nested = {n: p for n, p in s["by_command"].items() if n not in SCRIPT_NAMES}
    worst = max(nested, key=lambda n: nested[n]["max"], default=None)
    if worst is not None:
        p = nested[worst]
        print(f"| SLOWLOG, commands inside scripts: slowest `{worst}` ({p['n']} calls) "
              f"| {p['median']:.3f} ms | {p['p99']:.3f} ms | {p['max']:.2f} ms | O(1) or "
              "O(log N): far above the median = Redis descheduled |")  # fmt: skip
    print(f"| load average during the run (2 cores, shared) | {r['load_average']} | | | |")
    print(f"| redis-server priority (nice) | {r['redis_nice']} | | | |")
    command = "`retryd ls --state pending --limit 10`, whole process"
    print(f"| {command} | {r['cli_ls_seconds']:.2f} s | | | |")


def save(results: dict[str, Any]) -> None:
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    RESULTS.mkdir(exist_ok=True)
    if "steady" in results:
        plot(results["steady"].pop("_samples"), RESULTS / f"lifecycle-{stamp}.png")
        print(f"\nplot: bench/results/lifecycle-{stamp}.png")
    (RESULTS / f"lifecycle-{stamp}.json").write_text(json.dumps(results, indent=1), "utf-8")


async def main(part: str, seconds: float, rate: int, tasks: int, redis_nice: int) -> None:
    results: dict[str, Any] = {}
    if part in ("steady", "all"):
        results["steady"] = await steady(seconds, rate)
        print_steady(results["steady"])
    if part in ("inspect", "all"):
        results["inspect"] = await inspect(tasks, min(seconds, 20.0), redis_nice)
        print_inspect(results["inspect"])
    save(results)


def arguments(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument(
        "part", nargs="?", default="all", choices=("steady", "inspect", "all", "producer")
    )
    parser.add_argument("--seconds", type=float, default=120.0, help="steady run length")
    parser.add_argument("--rate", type=int, default=1000, help="steady puts per second")
    parser.add_argument("--tasks", type=int, default=1_000_000, help="tasks in one state")
    parser.add_argument("--url", help="(the producer process) the server's URL")
    parser.add_argument(
        "--redis-nice", type=int, default=0, help="inspect: niceness of the redis-server (root)"
    )
    return parser.parse_args(argv)


if __name__ == "__main__":
    args = arguments()
    if args.part == "producer":
        run_producer(args.url, args.seconds)
    else:
        asyncio.run(main(args.part, args.seconds, args.rate, args.tasks, args.redis_nice))
