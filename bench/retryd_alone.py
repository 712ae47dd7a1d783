"""`python -m bench.retryd_alone`: retryd measured on its own (issue 8), no peer involved.

Starts its own redis-server on a free loopback port (bench/_processes.py), and measures:

- claim throughput: due tasks claimed and settled CONFIRMED per second through RedisStore.claim
  and settle in batches (no handler, no worker), with 10k and with 1M not-yet-due tasks of the
  same type stored beside them. Each size has its own namespace on the same server, and trials
  alternate between them, so both see the same server and the same memory;
- Redis bytes per task, split between the record hash and the index sorted set;
- idle CPU of a `retryd run` process with nothing due (1M tasks stored, none due), from
  /proc/<pid>/stat, and of the redis-server over the same window;
- tasks/s of one `retryd run` process as [worker] concurrency grows, for a handler that awaits
  asyncio.sleep(0.01);
- the start delay of a single task put due now on an idle `retryd run` worker;
- end-to-end tasks/s for a handler that does nothing: `retryd run` while the producer puts
  (the peer benchmark's method), and an in-process Worker burst draining pre-loaded tasks;
- end-to-end tasks/s of `retryd run --processes 1` and `--processes 2` for a plain `def` handler
  that computes for ~2 ms holding the GIL (how worker processes scale over cores).

Every worker is a real `retryd run` subprocess (bench/jobs_alone.py holds its handlers) except
the one labelled in-process. Prints a markdown table; --json writes the figures too.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from redis.asyncio import Redis

from bench import _processes, jobs_alone
from bench.harness import percentile, wait_until_count
from bench.peers import _common
from bench.peers.retryd_peer import retryd_executable
from store import Change, Record, RedisStore, State
from worker.config import Config
from worker.loop import Worker
from worker.registry import default_registry, import_handler_modules

_REPO_ROOT = Path(__file__).resolve().parent.parent
_PUT_BATCH = 1000
_CLAIM_BATCH = 200
_LEASE_SECONDS = 30.0
_IDLE_SECONDS = 10.0
_DELAY_SPACING_SECONDS = 0.05
_CONCURRENCY = (1, 8, 32, 128)
_NOOP_SETTINGS = {"concurrency": 64, "batch": 200}  # as in the peer benchmark
_DATA = _common.payload(_common.MODE_INCR).encode()  # the peer benchmark's 100 bytes
_CONFIG = """\
[redis]
url = "{url}"
namespace = "{namespace}"
[worker]
concurrency = {concurrency}
batch = {batch}
[handlers]
modules = ["bench.jobs_alone"]
[metrics]
port = 0
[log]
level = "warning"
"""


@dataclass
class Row:
    """One line of the table: what was measured, the figure, and the target it answers."""

    measure: str
    result: str
    target: str = ""


@dataclass
class Bench:
    """What every measurement shares: the server, a scratch directory, the options."""

    url: str
    workdir: Path
    args: argparse.Namespace
    figures: dict[str, Any]
    rows: list[Row]
    next_id: int = 0

    def records(self, task_type: int, n: int, due: datetime | None = None) -> list[Record]:
        first, self.next_id = self.next_id, self.next_id + n
        return [
            Record(task_id=f"job-{i}", type=task_type, data=_DATA, next_attempt_at=due)
            for i in range(first, first + n)
        ]


async def _put(store: RedisStore, records: list[Record]) -> float:
    """put_all in batches of 1,000; returns tasks/s."""
    start = time.perf_counter()
    for at in range(0, len(records), _PUT_BATCH):
        await store.put_all(*records[at : at + _PUT_BATCH])
    return len(records) / (time.perf_counter() - start)


async def _load_not_due(bench: Bench, store: RedisStore, n: int) -> float:
    """Store n tasks due in a year, a batch at a time (never n Records at once); tasks/s."""
    later = datetime.now(UTC) + timedelta(days=365)
    start, done = time.perf_counter(), 0
    while done < n:
        size = min(_PUT_BATCH, n - done)
        await store.put_all(*bench.records(jobs_alone.NOOP_TYPE, size, later))
        done += size
    return n / (time.perf_counter() - start)


# --- claim throughput ------------------------------------------------------------------------


async def _drain_by_claim(store: RedisStore, expected: int) -> float:
    """Claim and settle CONFIRMED, batch after batch, until nothing is due; tasks/s."""
    max_attempts = {jobs_alone.NOOP_TYPE: 10}
    done = 0
    start = time.perf_counter()
    while True:
        claim = await store.claim(max_attempts, limit=_CLAIM_BATCH, lease_seconds=_LEASE_SECONDS)
        if not claim.tasks:
            break
        changes = [Change(c.record, State.CONFIRMED, c.record.failed_attempts) for c in claim.tasks]
        await store.settle(changes)
        done += len(changes)
    elapsed = time.perf_counter() - start
    if done != expected:
        raise RuntimeError(f"claimed {done} tasks, expected {expected}")
    return done / elapsed


async def _bytes_per_task(admin: Redis, namespace: str, n: int) -> dict[str, float]:
    """MEMORY USAGE of the namespace's record hash and PENDING index, per stored task."""
    hash_bytes = await admin.memory_usage(f"{{{namespace}}}:tasks", samples=0)
    index_bytes = await admin.memory_usage(
        f"{{{namespace}}}:idx:{int(State.PENDING)}:{jobs_alone.NOOP_TYPE}", samples=0
    )
    return {"hash": (hash_bytes or 0) / n, "index": (index_bytes or 0) / n}


async def claim_throughput(bench: Bench) -> None:
    sizes = {"10k": 10_000, "1M": bench.args.not_due}
    due_n, runs = bench.args.due, bench.args.runs
    admin = Redis.from_url(bench.url)
    stores = {label: RedisStore.from_url(bench.url, namespace=f"claim-{label}") for label in sizes}
    rates: dict[str, list[float]] = {label: [] for label in sizes}
    try:
        for label, n in sizes.items():
            before = int((await admin.info("memory"))["used_memory"])
            put_rate = await _load_not_due(bench, stores[label], n)
            used = int((await admin.info("memory"))["used_memory"]) - before
            bench.figures[f"load_{label}"] = {
                "tasks_per_s": put_rate,
                "used_memory_per_task": used / n,
            }
            split = await _bytes_per_task(admin, f"claim-{label}", n)
            bench.figures[f"bytes_{label}"] = split
            print(f"  loaded {n:,} not-due tasks at {put_rate:,.0f}/s", file=sys.stderr)
        order = list(sizes)
        for run in range(1, runs + 1):
            # Alternate which size goes first: the first trial of a run pays for warming up.
            for label in order if run % 2 else order[::-1]:
                store = stores[label]
                await _put(store, bench.records(jobs_alone.NOOP_TYPE, due_n))
                rate = await _drain_by_claim(store, due_n)
                rates[label].append(rate)
                print(f"  claim run {run}, {label} not due: {rate:,.0f}/s", file=sys.stderr)
    finally:
        for store in stores.values():
            await store.aclose()
        await admin.aclose()
    small, large = statistics.median(rates["10k"]), statistics.median(rates["1M"])
    bench.figures["claim"] = {"rates": rates, "median_10k": small, "median_1M": large}
    label = f"{sizes['1M']:,}"
    for key, n in sizes.items():
        bench.rows.append(
            Row(
                f"claim+settle, batches of {_CLAIM_BATCH}, {due_n:,} due + {n:,} not due",
                f"{statistics.median(rates[key]):,.0f} tasks/s (runs: "
                + ", ".join(f"{r:,.0f}" for r in rates[key])
                + ")",
            )
        )
    bench.rows.append(
        Row(f"claim throughput at {label} / at 10,000 not due", f"{large / small:.1%}", ">= 90%")
    )
    load = bench.figures["load_1M"]
    split = bench.figures["bytes_1M"]
    bench.rows.append(
        Row(
            f"put_all, batches of {_PUT_BATCH}, while loading {label} not-due tasks",
            f"{load['tasks_per_s']:,.0f} tasks/s",
            ">= 50,000",
        )
    )
    bench.rows.append(
        Row(
            f"Redis bytes per task ({label} stored, 100-byte data, used_memory delta)",
            f"{load['used_memory_per_task']:,.0f} (record hash {split['hash']:,.0f}"
            f" + PENDING index {split['index']:,.0f})",
            "<= 300",
        )
    )


# --- `retryd run` subprocesses ---------------------------------------------------------------


@contextmanager
def _worker(
    bench: Bench, namespace: str, concurrency: int, batch: int, processes: int = 1
) -> Iterator[Any]:
    """A `retryd run` process on namespace (a supervisor of several), stopped by its pid."""
    exe = retryd_executable()
    if exe is None:
        raise RuntimeError("no `retryd` executable beside the interpreter or on PATH")
    config = bench.workdir / f"{namespace}.toml"
    config.write_text(
        _CONFIG.format(url=bench.url, namespace=namespace, concurrency=concurrency, batch=batch)
    )
    env = {**os.environ, _common.URL_ENV: bench.url, "PYTHONPATH": str(_REPO_ROOT)}
    log = bench.workdir / f"{namespace}.log"
    argv = [exe, "run", "--config", str(config), "--processes", str(processes)]
    with _processes.started(argv, log, env) as proc:
        yield proc


def _confirmed(store: RedisStore) -> Callable[[], Awaitable[int]]:
    async def read() -> int:
        return await store.count_by_state(State.CONFIRMED)

    return read


async def _warm_up(bench: Bench, store: RedisStore, proc: Any) -> int:
    """Run one no-op task through the worker, so start-up is never timed; returns 1."""
    await store.put_all(*bench.records(jobs_alone.NOOP_TYPE, 1))
    await wait_until_count(_confirmed(store), 1, proc, stall_seconds=30.0)
    return 1


def _cpu_seconds(pid: int) -> float:
    """utime + stime of pid from /proc/<pid>/stat (fields 14 and 15, in clock ticks)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()  # the command name may hold spaces
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def idle_cpu(bench: Bench) -> None:
    """CPU of an idle worker beside the 1M not-due tasks of claim-1M (so its claims see them)."""
    namespace = "claim-1M"
    admin = Redis.from_url(bench.url)
    store = RedisStore.from_url(bench.url, namespace=namespace)
    try:
        server_pid = int((await admin.info("server"))["process_id"])
        with _worker(bench, namespace, concurrency=64, batch=200) as proc:
            base = await store.count_by_state(State.CONFIRMED)
            await store.put_all(*bench.records(jobs_alone.NOOP_TYPE, 1))
            await wait_until_count(_confirmed(store), base + 1, proc, stall_seconds=30.0)
            await asyncio.sleep(1.0)  # let start-up work (imports, first claims) settle
            worker0, server0, wall0 = _cpu_seconds(proc.pid), _cpu_seconds(server_pid), time.time()
            await asyncio.sleep(_IDLE_SECONDS)
            worker1, server1, wall1 = _cpu_seconds(proc.pid), _cpu_seconds(server_pid), time.time()
    finally:
        await store.aclose()
        await admin.aclose()
    wall = wall1 - wall0
    worker_pct, server_pct = 100 * (worker1 - worker0) / wall, 100 * (server1 - server0) / wall
    bench.figures["idle_cpu"] = {"seconds": wall, "worker_pct": worker_pct, "redis_pct": server_pct}
    bench.rows.append(
        Row(
            f"idle CPU of `retryd run`, nothing due, {bench.args.not_due:,} not due, {wall:.0f} s",
            f"worker {worker_pct:.2f}% of a core (redis-server {server_pct:.2f}%)",
            "~0%",
        )
    )


async def concurrency_scaling(bench: Bench) -> None:
    """Tasks/s of one `retryd run` for a 10 ms handler at each concurrency, puts included."""
    per_level: dict[int, float] = {}
    for concurrency in _CONCURRENCY:
        namespace = f"conc-{concurrency}"
        # About 3 s of work at the ideal rate, at least 300 tasks.
        n = max(300, int(3 * concurrency / jobs_alone.SLEEP_SECONDS))
        store = RedisStore.from_url(bench.url, namespace=namespace)
        try:
            with _worker(bench, namespace, concurrency, batch=200) as proc:
                warm = await _warm_up(bench, store, proc)
                start = time.perf_counter()
                await _put(store, bench.records(jobs_alone.SLEEP_TYPE, n))
                end = await wait_until_count(_confirmed(store), warm + n, proc)
        finally:
            await store.aclose()
        per_level[concurrency] = rate = n / (end - start)
        ideal = concurrency / jobs_alone.SLEEP_SECONDS
        print(f"  concurrency {concurrency}: {rate:,.0f}/s of {ideal:,.0f}", file=sys.stderr)
        bench.rows.append(
            Row(
                f"`retryd run`, concurrency {concurrency}, {n:,} tasks awaiting 10 ms",
                f"{rate:,.0f} tasks/s ({rate / ideal:.0%} of the ideal {ideal:,.0f})",
            )
        )
    bench.figures["concurrency"] = per_level


async def start_delay(bench: Bench) -> None:
    """One task at a time put due now on an idle worker; its handler stamps its start."""
    namespace, puts = "delay", bench.args.delay_puts
    admin = Redis.from_url(bench.url)
    store = RedisStore.from_url(bench.url, namespace=namespace)
    put_at: dict[str, tuple[float, float]] = {}
    try:
        await admin.delete(jobs_alone.STAMP_KEY)
        with _worker(bench, namespace, concurrency=64, batch=200) as proc:
            await _warm_up(bench, store, proc)
            await asyncio.sleep(0.5)
            for _ in range(puts):
                (record,) = bench.records(jobs_alone.STAMP_TYPE, 1)
                before = time.time()
                await store.put_all(record)
                put_at[record.task_id] = (before, time.time())
                # Spaced apart, so each put finds the worker idle again.
                await asyncio.sleep(_DELAY_SPACING_SECONDS)

            async def stamped() -> int:
                return int(await admin.llen(jobs_alone.STAMP_KEY))

            await wait_until_count(stamped, puts, proc)
        stamps = await admin.lrange(jobs_alone.STAMP_KEY, 0, -1)
    finally:
        await store.aclose()
        await admin.aclose()
    from_call, from_reply = [], []
    for line in stamps:
        task_id, started = (line.decode() if isinstance(line, bytes) else line).split()
        before, after = put_at[task_id]
        from_call.append((float(started) - before) * 1000)
        from_reply.append((float(started) - after) * 1000)
    from_call.sort()
    from_reply.sort()
    p50, p99 = percentile(from_call, 0.50), percentile(from_call, 0.99)
    bench.figures["start_delay_ms"] = {
        "from_put_call": {"p50": p50, "p99": p99, "max": from_call[-1]},
        "from_put_reply": {
            "p50": percentile(from_reply, 0.50),
            "p99": percentile(from_reply, 0.99),
        },
    }
    bench.rows.append(
        Row(
            f"start delay, {puts} single puts due now,"
            f" {_DELAY_SPACING_SECONDS * 1000:.0f} ms apart, idle `retryd run`"
            " (from the put call to the handler's first line)",
            f"p50 {p50:.2f} ms, p99 {p99:.2f} ms, max {from_call[-1]:.2f} ms",
            "p99 <= 5 ms",
        )
    )


async def noop_end_to_end(bench: Bench) -> None:
    """No-op handler: `retryd run` while the producer puts, as the peer benchmark times it."""
    n, rates = bench.args.due, []
    for run in range(1, bench.args.runs + 1):
        namespace = f"noop-{run}"
        store = RedisStore.from_url(bench.url, namespace=namespace)
        try:
            with _worker(bench, namespace, **_NOOP_SETTINGS) as proc:
                warm = await _warm_up(bench, store, proc)
                start = time.perf_counter()
                await _put(store, bench.records(jobs_alone.NOOP_TYPE, n))
                end = await wait_until_count(_confirmed(store), warm + n, proc)
        finally:
            await store.aclose()
        rates.append(n / (end - start))
        print(f"  no-op run {run}: {rates[-1]:,.0f}/s", file=sys.stderr)
    bench.figures["noop_subprocess"] = rates
    bench.rows.append(
        Row(
            f"no-op handler end to end, `retryd run` (concurrency 64, batch 200), {n:,} tasks"
            " put while it runs (the peer benchmark's method)",
            f"{statistics.median(rates):,.0f} tasks/s (runs: "
            + ", ".join(f"{r:,.0f}" for r in rates)
            + ")",
            ">= 15,000",
        )
    )


async def noop_in_process(bench: Bench) -> None:
    """No-op handler: an in-process Worker burst draining tasks put beforehand (no producer)."""
    import_handler_modules(("bench.jobs_alone",))
    n, rates = bench.args.due, []
    config = Config.from_mapping({"worker": _NOOP_SETTINGS})
    for run in range(1, bench.args.runs + 1):
        store = RedisStore.from_url(bench.url, namespace=f"burst-{run}")
        try:
            await _put(store, bench.records(jobs_alone.NOOP_TYPE, n))
            worker = Worker(store, default_registry, config)
            start = time.perf_counter()
            await worker.run(burst=True)
            elapsed = time.perf_counter() - start
            done = await store.count_by_state(State.CONFIRMED)
        finally:
            await store.aclose()
        if done != n:
            raise RuntimeError(f"burst confirmed {done} of {n}")
        rates.append(n / elapsed)
        print(f"  in-process burst run {run}: {rates[-1]:,.0f}/s", file=sys.stderr)
    bench.figures["noop_in_process"] = rates
    bench.rows.append(
        Row(
            f"no-op handler, in-process Worker.run(burst=True) draining {n:,} pre-loaded tasks",
            f"{statistics.median(rates):,.0f} tasks/s (runs: "
            + ", ".join(f"{r:,.0f}" for r in rates)
            + ")",
            ">= 15,000",
        )
    )


# --- the command -----------------------------------------------------------------------------


async def _cpu_rate(bench: Bench, processes: int, n: int) -> float:
    """Tasks/s of `retryd run --processes N` on n CPU-bound plain tasks put while it runs."""
    namespace = f"cpu-{processes}-{bench.next_id}"
    settings = _NOOP_SETTINGS
    async with RedisStore.from_url(bench.url, namespace=namespace) as store:
        with _worker(bench, namespace, settings["concurrency"], settings["batch"], processes) as p:
            warm = await _warm_up(bench, store, p)
            start = time.perf_counter()
            await _put(store, bench.records(jobs_alone.CPU_TYPE, n))
            end = await wait_until_count(_confirmed(store), n + warm, p)
    return n / (end - start)


async def process_scaling(bench: Bench) -> None:
    """1 and 2 worker processes on a CPU-bound plain handler, runs interleaved."""
    n = max(bench.args.due // 4, 1000)
    rates: dict[int, list[float]] = {1: [], 2: []}
    for run in range(bench.args.runs):
        for processes in (1, 2) if run % 2 == 0 else (2, 1):
            rate = await _cpu_rate(bench, processes, n)
            rates[processes].append(rate)
            print(f"  {processes} process(es), run {run + 1}: {rate:,.0f}/s", file=sys.stderr)
    one, two = statistics.median(rates[1]), statistics.median(rates[2])
    bench.figures["processes"] = {"rates": rates, "median_1": one, "median_2": two}
    for processes, median in ((1, one), (2, two)):
        bench.rows.append(
            Row(
                f"`retryd run --processes {processes}`, {n:,} plain-def tasks computing ~2 ms",
                f"{median:,.0f} tasks/s (runs: "
                + ", ".join(f"{r:,.0f}" for r in rates[processes])
                + ")",
                "",
            )
        )
    bench.rows.append(
        Row("speed-up, 2 processes over 1", f"{two / one:.2f}x", "~2x on 2 free cores")
    )


_STEPS: dict[str, Callable[[Bench], Awaitable[None]]] = {
    "claim": claim_throughput,
    "idle": idle_cpu,
    "concurrency": concurrency_scaling,
    "delay": start_delay,
    "noop": noop_end_to_end,
    "burst": noop_in_process,
    "processes": process_scaling,
}


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.retryd_alone", description=__doc__)
    parser.add_argument("--not-due", type=int, default=1_000_000, help="the large store's size")
    parser.add_argument("--due", type=int, default=20_000, help="tasks per throughput trial")
    parser.add_argument("--runs", type=int, default=3, help="trials per throughput figure")
    parser.add_argument("--delay-puts", type=int, default=200, help="single puts timed")
    parser.add_argument("--only", default="", help=f"comma-separated subset of {', '.join(_STEPS)}")
    parser.add_argument("--quick", action="store_true", help="smoke run: 100k not due, 1 run")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = parser.parse_args(argv)
    if args.quick:
        args.not_due, args.due, args.runs, args.delay_puts = 100_000, 5_000, 1, 50
    steps = [s.strip() for s in args.only.split(",") if s.strip()] or list(_STEPS)
    unknown = sorted(set(steps) - set(_STEPS))
    if unknown:
        parser.error(f"unknown step(s) {unknown}; choose from {', '.join(_STEPS)}")
    if "idle" in steps and "claim" not in steps:
        parser.error("idle runs beside the not-due tasks that claim loads: add claim")
    args.steps = steps
    return args


def _table(rows: list[Row]) -> str:
    lines = ["| measure | result | target |", "| --- | --- | --- |"]
    lines += [f"| {r.measure} | {r.result} | {r.target} |" for r in rows]
    return "\n".join(lines)


async def _run(args: argparse.Namespace, url: str, workdir: Path) -> Bench:
    bench = Bench(url=url, workdir=workdir, args=args, figures={}, rows=[])
    for name in args.steps:
        print(f"{name} ...", file=sys.stderr)
        await _STEPS[name](bench)
    return bench


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="retryd-alone-") as tmp:
        workdir = Path(tmp)
        with _processes.redis_server(workdir) as url:
            os.environ[_common.URL_ENV] = url
            bench = asyncio.run(_run(args, url, workdir))
    load_after = os.getloadavg()
    print(_table(bench.rows))
    print(
        f"\nPython {platform.python_version()}, {os.cpu_count()} CPUs; load average (1/5/15 min)"
        f" {' '.join(f'{v:.2f}' for v in load_before)} before,"
        f" {' '.join(f'{v:.2f}' for v in load_after)} after"
    )
    if args.json is not None:
        bench.figures["load_average"] = {"before": load_before, "after": load_after}
        args.json.write_text(json.dumps(bench.figures, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
