"""`python -m bench`: retryd against huey, dramatiq, arq, saq and rq, side by side.

Starts its own redis-server on a free loopback port, runs each system --runs times (the order
rotates every run so no system always goes first), prints a markdown table of medians and writes
JSON plus a PNG chart into bench/results/. Installs nothing: the peers come from the `bench` extra.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from redis.asyncio import Redis

from bench import _processes, report
from bench.harness import LAG_JOBS, RunResult, run_system
from bench.peers import SYSTEM_NAMES, System, Unavailable, _common, load

_RESULTS = Path(__file__).resolve().parent / "results"
_QUICK_JOBS = 1000


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--jobs", type=int, default=20_000, help="jobs per throughput phase")
    parser.add_argument(
        "--retry-jobs",
        type=int,
        default=None,
        help="jobs in the retry phase (default: a quarter of --jobs, to bound the slow peers)",
    )
    parser.add_argument("--runs", type=int, default=3, help="runs of every system")
    parser.add_argument("--only", default="", help=f"comma-separated subset of {SYSTEM_NAMES}")
    parser.add_argument(
        "--quick", action="store_true", help=f"smoke run: {_QUICK_JOBS} jobs, 1 run"
    )
    parser.add_argument("--out", type=Path, default=_RESULTS, help="where JSON and PNG go")
    args = parser.parse_args(argv)
    if args.quick:
        args.jobs, args.runs = _QUICK_JOBS, 1
    if args.retry_jobs is None:
        args.retry_jobs = max(1, args.jobs // 4)
    names = [n.strip() for n in args.only.split(",") if n.strip()] or list(SYSTEM_NAMES)
    unknown = sorted(set(names) - set(SYSTEM_NAMES))
    if unknown:
        parser.error(f"unknown system(s) {unknown}; choose from {SYSTEM_NAMES}")
    args.names = names
    return args


def _progress(result: RunResult) -> None:
    if result.error:
        print(f"  {result.system} run {result.run}: FAILED {result.error}", file=sys.stderr)
        return
    print(
        f"  {result.system} run {result.run}: enqueue {result.enqueue_per_s:,.0f}/s, "
        f"e2e {result.e2e_per_s:,.0f}/s, retry {result.retry_per_s:,.0f}/s, "
        f"lag p50/p99 {result.lag_p50_ms:,.0f}/{result.lag_p99_ms:,.0f} ms, "
        f"{result.bytes_per_job:,.0f} B/job",
        file=sys.stderr,
    )


def _redis_version() -> str:
    out = subprocess.run(["redis-server", "--version"], capture_output=True, text=True, check=False)
    return out.stdout.strip()


async def _run_all(args: argparse.Namespace, url: str, workdir: Path) -> list[RunResult]:
    systems: dict[str, System] = {}
    results: list[RunResult] = []
    for name in args.names:
        try:
            systems[name] = load(name)
        except Unavailable as exc:
            print(f"skipping {exc}", file=sys.stderr)
    client = Redis.from_url(url)
    try:
        order = list(systems)
        for run in range(1, args.runs + 1):
            print(f"run {run}/{args.runs}: {', '.join(order)}", file=sys.stderr)
            for name in order:
                result = await run_system(
                    systems[name], client, url,
                    n=args.jobs, retry_n=args.retry_jobs, run=run, workdir=workdir,
                )  # fmt: skip
                _progress(result)
                results.append(result)
            # Rotate, so every system takes each slot of the order in turn.
            order = order[1:] + order[:1]
    finally:
        await client.aclose()
    return results


def _document(args: argparse.Namespace, results: list[RunResult], elapsed: float) -> dict[str, Any]:
    ran = [n for n in args.names if any(r.system == n for r in results)]
    meds = report.medians(results, ran)
    settings: dict[str, dict[str, str]] = {}
    for name in ran:
        try:
            system = load(name)
        except Unavailable:
            continue
        settings[name] = {
            "version": system.version(),
            "worker": system.worker_settings,
            "enqueue": system.enqueue_api,
            "retry": system.retry_setting,
        }
    return {
        "meta": {
            "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "jobs": args.jobs,
            "retry_jobs": args.retry_jobs,
            "lag_jobs": LAG_JOBS,
            "runs": args.runs,
            "payload_bytes": _common.PAYLOAD_BYTES,
            "python": platform.python_version(),
            "redis_server": _redis_version(),
            "cpus": os.cpu_count(),
            "elapsed_s": round(elapsed, 1),
        },
        "settings": settings,
        "medians": meds,
        "retryd_over_best_peer": report.ratios(meds) if "retryd" in meds else None,
        "retryd_def_over_best_peer": (
            report.ratios(meds, "retryd-def") if "retryd-def" in meds else None
        ),
        "runs": [r.asdict() for r in results],
    }


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="retryd-bench-") as tmp:
        workdir = Path(tmp)
        with _processes.redis_server(workdir) as url:
            # Peer modules read the URL when imported, here and in their workers.
            os.environ[_common.URL_ENV] = url
            results = asyncio.run(_run_all(args, url, workdir))
    document = _document(args, results, time.monotonic() - started)
    versions = {name: s["version"] for name, s in document["settings"].items()}
    print(report.table(document["medians"], versions))
    args.out.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    json_path, png_path = args.out / f"peers-{stamp}.json", args.out / f"peers-{stamp}.png"
    report.write_json(json_path, document)
    title = f"{args.jobs:,} jobs, median of {args.runs} run(s), one worker process, 2 cores"
    report.write_chart(png_path, document["medians"], title)
    print(f"\nwrote {json_path} and {png_path}", file=sys.stderr)
    return 1 if any(r.error for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
