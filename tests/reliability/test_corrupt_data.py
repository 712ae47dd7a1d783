"""Scenario 11: a damaged record and an index entry without a record, among healthy tasks."""

from __future__ import annotations

import redis

from tests.reliability.chaos_handlers import NORMAL
from tests.reliability.conftest import PoolFactory
from tests.reliability.harness import (
    REPORT,
    Ledger,
    ReportRow,
    check_invariants,
    put_tasks,
    wait_until_settled,
)
from tests.servers import RedisServer, wait_for

SET_ASIDE = "damaged task set aside; repair or delete it"


def test_corrupt_entries_are_set_aside_and_work_goes_on(
    store_server: RedisServer,
    store_client: redis.Redis,
    ns: str,
    ledger: Ledger,
    make_pool: PoolFactory,
) -> None:
    """The worker reports both bad entries, moves them to idx:damaged without touching the
    damaged value, runs every healthy task, and keeps running."""
    tag = "{" + ns + "}"
    store_client.hset(f"{tag}:tasks", "mangled", b"\x01not a record")
    store_client.zadd(f"{tag}:idx:1:{NORMAL}", {"mangled": 0, "ghost": 0})
    plans = {f"c{i:03d}": {"sleep": 0.005} for i in range(100)}
    put_tasks(store_server.url, ns, plans)
    pool = make_pool(store_server.url)
    worker = pool.start()
    wait_until_settled(store_client, ns, timeout=20)
    wait_for(lambda: worker.count(SET_ASIDE) == 2, "both entries reported", 5)
    verdict = check_invariants(
        store_client, ns, plans, ledger, pool.faults, expect_damaged=["mangled", "ghost"]
    )

    assert worker.alive()
    reported = {e["task_id"] for e in worker.events() if e.get("event") == SET_ASIDE}
    assert reported == {"mangled", "ghost"}
    assert verdict.scan.damaged_values == {"mangled"}
    assert store_client.hget(f"{tag}:tasks", "mangled") == b"\x01not a record"
    assert "mangled" not in verdict.runs
    assert "ghost" not in verdict.runs
    REPORT.append(
        ReportRow(
            "11 corrupt record + orphan index entry",
            len(plans),
            verdict.lost,
            verdict.duplicates,
            "-",
            "both reported and moved to idx:damaged; worker kept running",
        )
    )
