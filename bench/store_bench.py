"""Benchmark of the Redis task store (issue 2, section 6): a script, not a test.

Starts its own redis-server on a free loopback port (no persistence), measures, prints a markdown
table, and stops the server. Run: `python -m bench.store_bench [--max-not-due 1000000]`.

Targets on a 2-core machine: put_all of 1000-task batches >= 50,000 tasks/s, and the latency of
a 100-row get_all_ready_by_state page flat (within 2x) from 10k to 1M not-yet-due tasks.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import redis

from bench._processes import redis_server
from store import Record, RedisStore, State

DATA = bytes(range(100))  # a 100-byte payload
PAGE_CALLS = 50


def tasks(prefix: str, count: int, *, start: int = 0, due: datetime | None = None) -> list[Record]:
    return [
        Record(task_id=f"{prefix}-{start + i}", type=1, data=DATA, next_attempt_at=due)
        for i in range(count)
    ]


async def put_rate(store: RedisStore, batch: int, total: int) -> float:
    """Tasks per second stored by sequential put_all calls of batch records."""
    batches = [tasks(f"put{batch}", batch, start=i * batch) for i in range(total // batch)]
    started = time.perf_counter()
    for records in batches:
        await store.put_all(*records)
    return (total // batch) * batch / (time.perf_counter() - started)


async def update_rate(store: RedisStore, count: int) -> float:
    records = tasks("upd", count)
    await store.put_all(*records)
    started = time.perf_counter()
    for record in records:
        record.failed_attempts += 1
        await store.update(record)
    return count / (time.perf_counter() - started)


async def load(store: RedisStore, prefix: str, start: int, count: int, due: datetime) -> None:
    for offset in range(0, count, 5000):
        size = min(5000, count - offset)
        await store.put_all(*tasks(prefix, size, start=start + offset, due=due))


async def page_latency(store: RedisStore) -> tuple[float, float]:
    """Median and p99 milliseconds of a 100-row page of due PENDING tasks."""
    now = datetime.now(UTC)
    samples = []
    for _ in range(PAGE_CALLS):
        started = time.perf_counter()
        page = await store.get_all_ready_by_state(State.PENDING, now, limit=100)
        samples.append((time.perf_counter() - started) * 1000)
        assert len(page) == 100
    samples.sort()
    return statistics.median(samples), samples[min(len(samples) - 1, int(len(samples) * 0.99))]


async def bytes_per_task(url: str, count: int) -> float:
    """Redis used_memory per stored task: short task id, 100-byte payload, PENDING, not due."""
    admin = redis.Redis.from_url(url)
    before = int(admin.info("memory")["used_memory"])
    async with RedisStore.from_url(url, namespace="bench-memory") as store:
        due = datetime.now(UTC) + timedelta(days=1)
        for offset in range(0, count, 5000):
            await store.put_all(
                *(
                    Record(
                        task_id=f"job-{100000 + offset + i}", type=1, data=DATA, next_attempt_at=due
                    )
                    for i in range(min(5000, count - offset))
                )
            )
    after = int(admin.info("memory")["used_memory"])
    admin.close()
    return (after - before) / count


async def main(max_not_due: int) -> None:
    rows: list[tuple[str, str]] = []
    with tempfile.TemporaryDirectory() as workdir, redis_server(Path(workdir)) as url:
        rows.append(
            (
                "Redis bytes per task (100k, 100-byte data)",
                f"{await bytes_per_task(url, 100_000):.0f}",
            )
        )
        async with RedisStore.from_url(url, namespace="bench") as store:
            for batch, total in ((1, 5_000), (100, 50_000), (1000, 200_000)):
                rate = await put_rate(store, batch, total)
                rows.append((f"put_all, batches of {batch}", f"{rate:,.0f} tasks/s"))
            rows.append(("update", f"{await update_rate(store, 5_000):,.0f} updates/s"))
        async with RedisStore.from_url(url, namespace="bench-page") as store:
            now = datetime.now(UTC)
            await load(store, "due", 0, 1_000, now - timedelta(minutes=1))
            later = now + timedelta(days=1)
            stored = 0
            for target in (10_000, 100_000, 1_000_000):
                if target > max_not_due:
                    break
                await load(store, "later", stored, target - stored, later)
                stored = target
                median, p99 = await page_latency(store)
                rows.append(
                    (
                        f"100-row page, 1k due + {target:,} not due",
                        f"median {median:.2f} ms, p99 {p99:.2f} ms",
                    )
                )
    print("| measure | result |")
    print("|---|---|")
    for name, value in rows:
        print(f"| {name} | {value} |")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--max-not-due", type=int, default=1_000_000)
    asyncio.run(main(parser.parse_args().max_not_due))
