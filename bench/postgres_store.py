"""`python -m bench.postgres_store`: PostgresStore alone: put_all rates, and claim cost against
the number of rows not due and finished.

Claim reads, per type, the PENDING rows due now through the index tasks_type_due; it
should cost the same with 10k or 1M rows that are not due (or CONFIRMED) beside the 1,000 that
are. Each measured claim leases 100 tasks; a settle (not timed) makes them due again, so every
claim sees the same due set. Runs in a scratch database of its own on
RETRYD_BENCH_POSTGRES_URL (default the machine's 127.0.0.1:5432), dropped at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta

import psycopg

from bench.harness import percentile
from bench.postgres import _DEFAULT_SERVER, _SERVER_ENV, _scratch_database
from store import Change, Record, State
from store.postgres import PostgresStore, migrate

_NAMESPACE = "bench_store"
_DATA = b"x" * 100
_DUE = 1000
_CLAIMS = 200


async def _put(store: PostgresStore, prefix: str, n: int, batch: int, **fields: object) -> float:
    """Put n records in batches; return the tasks per second."""
    start = time.perf_counter()
    for first in range(0, n, batch):
        size = min(batch, n - first)
        records = [Record(f"{prefix}-{first + i}", 7, _DATA, **fields) for i in range(size)]  # type: ignore[arg-type]
        await store.put_all(*records)
    return n / (time.perf_counter() - start)


async def _put_rates(store: PostgresStore) -> None:
    for batch, n in ((1, 2000), (100, 20_000), (1000, 50_000)):
        rate = await _put(store, f"rate{batch}", n, batch, state=State.CONFIRMED)
        print(f"| put_all, batches of {batch} | {rate:,.0f} tasks/s |")


async def _claim_latency(store: PostgresStore) -> tuple[float, float]:
    """Median and p99 ms of a 100-task claim over the same 1,000 due tasks."""
    took = []
    for _ in range(_CLAIMS):
        start = time.perf_counter()
        claim = await store.claim({7: 10}, limit=100, lease_seconds=30)
        took.append((time.perf_counter() - start) * 1000)
        assert len(claim.tasks) == 100, len(claim.tasks)
        await store.settle([Change(c.record, State.PENDING, 0) for c in claim.tasks])
    took.sort()
    return statistics.median(took), percentile(took, 0.99)


async def _run(url: str, backlogs: list[int]) -> None:
    with psycopg.connect(url) as conn:
        migrate(conn, _NAMESPACE)
    async with PostgresStore.from_url(url, namespace=_NAMESPACE) as store:
        print("| measure | result |\n| --- | --- |")
        await _put_rates(store)
        await _put(store, "due", _DUE, 1000)
        later = datetime.now(UTC) + timedelta(days=365)
        stored = 0
        for backlog in backlogs:
            # Half not due yet, half finished: neither may cost a claim anything.
            half = (backlog - stored) // 2
            await _put(store, f"later-{backlog}", half, 1000, next_attempt_at=later)
            await _put(store, f"done-{backlog}", half, 1000, state=State.CONFIRMED)
            stored = backlog
            async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
                await conn.execute(f'VACUUM ANALYZE "{_NAMESPACE}".tasks')
            median, p99 = await _claim_latency(store)
            print(
                f"| claim of 100, {_DUE:,} due + {backlog:,} not due or finished | "
                f"median {median:.2f} ms, p99 {p99:.2f} ms |"
            )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.postgres_store", description=__doc__)
    parser.add_argument(
        "--backlogs", default="10000,100000,1000000", help="rows not due or finished, in steps"
    )
    args = parser.parse_args(argv)
    backlogs = sorted(int(b) for b in args.backlogs.split(","))
    server = os.environ.get(_SERVER_ENV) or _DEFAULT_SERVER
    with _scratch_database(server) as url:
        asyncio.run(_run(url, backlogs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
