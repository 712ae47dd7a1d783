"""`python -m bench.postgres`: retryd on PostgreSQL beside procrastinate and retryd on Redis.

The same harness, phases and job body as `python -m bench` (bench/harness.py): one worker
process per system, the body one INCR (or RPUSH, for lag) on the harness's own redis-server.
retryd-pg and procrastinate keep their jobs in one scratch database the benchmark creates on
the PostgreSQL server (RETRYD_BENCH_POSTGRES_URL, default the machine's 127.0.0.1:5432) and
drops at the end; retryd on Redis keeps them on that redis-server. Prints a markdown table of
medians with the retryd-pg / procrastinate ratios and writes JSON into bench/results/.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import platform
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import psycopg
from psycopg import sql

from bench import _processes, report
from bench.__main__ import _run_all
from bench.harness import LAG_JOBS, METRICS, RunResult
from bench.peers import POSTGRES_SYSTEM_NAMES, _common, load
from store.postgres import migrate

_RESULTS = Path(__file__).resolve().parent / "results"
_SERVER_ENV = "RETRYD_BENCH_POSTGRES_URL"
_DEFAULT_SERVER = "postgresql://postgres@127.0.0.1:5432/test"
_QUICK_JOBS = 1000
# Redis bytes/job means nothing for the PostgreSQL systems: the table leaves it out.
_SHOWN = [m for m in METRICS if m.key != "bytes_per_job"]
_TARGET_E2E_RATIO = 3.0
_TARGET_P99_MS = 50.0


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.postgres", description=__doc__)
    parser.add_argument("--jobs", type=int, default=20_000, help="jobs per throughput phase")
    parser.add_argument("--retry-jobs", type=int, default=None, help="default: --jobs / 4")
    parser.add_argument("--runs", type=int, default=3, help="runs of every system")
    parser.add_argument("--only", default="", help=f"subset of {POSTGRES_SYSTEM_NAMES}")
    parser.add_argument("--quick", action="store_true", help=f"{_QUICK_JOBS} jobs, 1 run")
    parser.add_argument("--out", type=Path, default=_RESULTS, help="where the JSON goes")
    args = parser.parse_args(argv)
    if args.quick:
        args.jobs, args.runs = _QUICK_JOBS, 1
    args.retry_jobs = args.retry_jobs or max(1, args.jobs // 4)
    names = [n.strip() for n in args.only.split(",") if n.strip()]
    args.names = names or list(POSTGRES_SYSTEM_NAMES)
    unknown = sorted(set(args.names) - set(POSTGRES_SYSTEM_NAMES))
    if unknown:
        parser.error(f"unknown system(s) {unknown}; choose from {POSTGRES_SYSTEM_NAMES}")
    return args


@contextlib.contextmanager
def _scratch_database(server: str) -> Iterator[str]:
    """A database of the benchmark's own on server; yields its URL; dropped at exit."""
    name = f"retryd_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(server, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield urlsplit(server)._replace(path=f"/{name}").geturl()
    finally:
        with psycopg.connect(server, autocommit=True) as admin:
            drop = sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)")
            admin.execute(drop.format(sql.Identifier(name)))


async def _create_schemas(url: str, names: list[str]) -> None:
    """retryd's `bench` namespace (retryd migrate) and procrastinate's tables, side by side."""
    from bench.peers.retryd_pg_peer import NAMESPACE

    with psycopg.connect(url) as conn:
        migrate(conn, NAMESPACE)
    if "procrastinate" in names:
        from bench.jobs_procrastinate import app

        async with app.open_async():
            await app.schema_manager.apply_schema_async()


def _cell(value: float | None, key: str) -> str:
    if value is None:
        return "n/a"
    return f"{value:,.1f}" if key.endswith("_ms") and abs(value) < 10 else f"{value:,.0f}"


def _ratio_row(meds: report.Medians, ours: str, theirs: str) -> str | None:
    if ours not in meds or theirs not in meds:
        return None
    cells = []
    for metric in _SHOWN:
        mine, other = meds[ours][metric.key], meds[theirs][metric.key]
        ratio = None
        if mine and other:
            ratio = mine / other if metric.higher_is_better else other / mine
        cells.append("n/a" if ratio is None else f"{ratio:.2f}x")
    return f"| **{ours} / {theirs}** (better: above 1) | " + " | ".join(cells) + " |"


def _table(meds: report.Medians, versions: dict[str, str]) -> str:
    heads = [f"{m.heading} {'↑' if m.higher_is_better else '↓'}" for m in _SHOWN]
    lines = ["| system | " + " | ".join(heads) + " |", "| --- |" + " ---: |" * len(_SHOWN)]
    for name, values in meds.items():
        cells = [_cell(values[m.key], m.key) for m in _SHOWN]
        lines.append(f"| {report.label(name, versions)} | " + " | ".join(cells) + " |")
    for theirs in ("procrastinate", "retryd"):
        row = _ratio_row(meds, "retryd-pg", theirs)
        if row:
            lines.append(row)
    return "\n".join(lines)


def _targets(meds: report.Medians) -> list[str]:
    """The issue's two targets, each with the figure that meets or misses it."""
    lines = []
    ours, theirs = meds.get("retryd-pg", {}), meds.get("procrastinate", {})
    if ours.get("e2e_per_s") and theirs.get("e2e_per_s"):
        ratio = ours["e2e_per_s"] / theirs["e2e_per_s"]  # type: ignore[operator]
        verdict = "met" if ratio >= _TARGET_E2E_RATIO else "MISSED"
        lines.append(
            f"end-to-end >= {_TARGET_E2E_RATIO:g}x procrastinate: {ratio:.2f}x ({verdict})"
        )
    p99 = ours.get("lag_p99_ms")
    if p99 is not None:
        verdict = "met" if p99 <= _TARGET_P99_MS else "MISSED"
        lines.append(f"p99 lag <= {_TARGET_P99_MS:g} ms: {p99:.1f} ms ({verdict})")
    floor = meds.get("bare-async", {}).get("lag_p99_ms")
    if floor is not None:
        lines.append(f"p99 lag of the same body with no queue at all (bare-async): {floor:.1f} ms")
    return lines


def _document(args: argparse.Namespace, results: list[RunResult], elapsed: float) -> dict[str, Any]:
    ran = [n for n in args.names if any(r.system == n for r in results)]
    settings = {}
    for name in ran:
        system = load(name)
        settings[name] = {
            "version": system.version(),
            "worker": system.worker_settings,
            "enqueue": system.enqueue_api,
            "retry": system.retry_setting,
        }
    with psycopg.connect(_common.postgres_url()) as conn:
        server = conn.execute("SHOW server_version").fetchone()
    return {
        "meta": {
            "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "jobs": args.jobs,
            "retry_jobs": args.retry_jobs,
            "lag_jobs": LAG_JOBS,
            "runs": args.runs,
            "python": platform.python_version(),
            "postgresql": server[0] if server else "?",
            "cpus": os.cpu_count(),
            "elapsed_s": round(elapsed, 1),
        },
        "settings": settings,
        "medians": report.medians(results, ran),
        "runs": [r.asdict() for r in results],
    }


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    started = time.monotonic()
    server = os.environ.get(_SERVER_ENV) or _DEFAULT_SERVER
    with (
        tempfile.TemporaryDirectory(prefix="retryd-bench-pg-") as tmp,
        _scratch_database(server) as database,
        _processes.redis_server(Path(tmp)) as redis_url,
    ):
        # Adapter modules and their workers read both URLs from the environment.
        os.environ[_common.POSTGRES_URL_ENV] = database
        os.environ[_common.URL_ENV] = redis_url
        asyncio.run(_create_schemas(database, args.names))
        # The same runs as `python -m bench` (its _run_all): rotation, progress lines, errors.
        results = asyncio.run(_run_all(args, redis_url, Path(tmp)))
        document = _document(args, results, time.monotonic() - started)
    versions = {name: s["version"] for name, s in document["settings"].items()}
    print(_table(document["medians"], versions))
    for line in _targets(document["medians"]):
        print(line)
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"postgres-{time.strftime('%Y%m%d-%H%M%S')}.json"
    report.write_json(path, document)
    print(f"\nwrote {path}", file=sys.stderr)
    return 1 if any(r.error for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
