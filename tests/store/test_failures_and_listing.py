"""What only the Redis stores keep: failure reasons written by settle and claim, and the listing
index (task ids by id, in small buckets) that every script keeps in step with the records."""

from __future__ import annotations

import asyncio
import random
from datetime import UTC, datetime, timedelta
from typing import Any

import redis

from store import (
    MAX_REASON_MESSAGE_BYTES,
    Change,
    Reason,
    Record,
    RedisStore,
    State,
)

FAR = datetime.now(UTC) + timedelta(days=30)
SHORT_LEASE = 0.05
PAST_SHORT_LEASE = 0.08
LONG_LEASE = 30.0


def rec(task_id: str, **fields: Any) -> Record:
    values: dict[str, Any] = {"type": 7, "data": b"payload"} | fields
    return Record(task_id=task_id, **values)


async def test_settle_keeps_a_failed_attempts_reason_with_the_servers_time(
    redis_store: RedisStore,
) -> None:
    await redis_store.put_all(rec("a"))
    (held,) = (await redis_store.claim({7: 5}, limit=1, lease_seconds=LONG_LEASE)).tasks
    reason = Reason.from_exception(ConnectionRefusedError("downstream said no"))
    [applied] = await redis_store.settle([Change(held.record, State.PENDING, 1, 60, reason)])
    assert applied
    details = await redis_store.inspect("a")
    error = details.last_error
    assert error is not None
    assert (error.kind, error.message) == ("ConnectionRefusedError", "downstream said no")
    assert error.failed_attempts == 1
    assert details.record.next_attempt_at is not None
    assert error.at == details.record.next_attempt_at - timedelta(seconds=60)


async def test_a_later_success_keeps_the_last_failure_readable(redis_store: RedisStore) -> None:
    await redis_store.put_all(rec("a"))
    (held,) = (await redis_store.claim({7: 5}, limit=1, lease_seconds=LONG_LEASE)).tasks
    await redis_store.settle([Change(held.record, State.PENDING, 1, 0, Reason("E", "first"))])
    (held,) = (await redis_store.claim({7: 5}, limit=1, lease_seconds=LONG_LEASE)).tasks
    await redis_store.settle([Change(held.record, State.CONFIRMED, 1)])
    details = await redis_store.inspect("a")
    assert details.record.state is State.CONFIRMED
    assert details.last_error is not None
    assert details.last_error.message == "first"


async def test_a_reason_is_cut_to_its_documented_size(redis_store: RedisStore) -> None:
    await redis_store.put_all(rec("a"))
    (held,) = (await redis_store.claim({7: 5}, limit=1, lease_seconds=LONG_LEASE)).tasks
    huge = Reason("E", "é" * 5000)  # built directly: the store cuts it all the same
    await redis_store.settle([Change(held.record, State.FAILED, 1, 0, huge)])
    error = (await redis_store.inspect("a")).last_error
    assert error is not None
    assert len(error.message.encode()) <= MAX_REASON_MESSAGE_BYTES
    assert error.message.endswith("…")
    assert error.message.startswith("éé")


async def test_a_lease_that_ran_out_is_recorded_as_the_last_failure(
    redis_store: RedisStore,
) -> None:
    await redis_store.put_all(rec("a"))
    await redis_store.claim({7: 1}, limit=1, lease_seconds=SHORT_LEASE)
    await asyncio.sleep(PAST_SHORT_LEASE)
    await redis_store.claim({7: 1}, limit=1, lease_seconds=LONG_LEASE)
    details = await redis_store.inspect("a")
    assert details.record.state is State.FAILED
    assert details.last_error is not None
    assert details.last_error.kind == "LeaseExpired"
    assert details.last_error.failed_attempts == 1
    rows = await redis_store.list_tasks(State.FAILED, FAR)
    assert [row.record.task_id for row in rows] == ["a"]


async def test_deleting_a_running_task_refuses_its_outcome(redis_store: RedisStore) -> None:
    await redis_store.put_all(rec("a"))
    (held,) = (await redis_store.claim({7: 5}, limit=1, lease_seconds=LONG_LEASE)).tasks
    await redis_store.delete("a")
    assert await redis_store.settle([Change(held.record, State.CONFIRMED, 0)]) == [False]
    assert await redis_store.extend([held.record], lease_seconds=LONG_LEASE) == [False]


async def test_cancelling_a_running_task_refuses_its_outcome_and_lease(
    redis_store: RedisStore,
) -> None:
    await redis_store.put_all(rec("a"))
    (held,) = (await redis_store.claim({7: 5}, limit=1, lease_seconds=LONG_LEASE)).tasks
    await redis_store.cancel("a")
    assert await redis_store.extend([held.record], lease_seconds=LONG_LEASE) == [False]
    assert await redis_store.settle([Change(held.record, State.CONFIRMED, 0)]) == [False]
    details = await redis_store.inspect("a")
    assert details.record.state is State.FAILED
    assert details.last_error is not None
    assert details.last_error.message == "cancelled"
    assert await redis_store.count_by_state(State.PENDING) == 0


def listing(client: redis.Redis, store: RedisStore, state: State) -> dict[str, int]:
    """Every task id the listing holds for state, with its id; checks the bucket directory."""
    directory = f"{store.keys.list_prefix}{int(state)}"
    found: dict[str, int] = {}
    buckets: list[bytes] = client.zrange(directory, 0, -1)  # type: ignore[assignment]
    for bucket in buckets:
        key = f"{directory}:{bucket.decode()}"
        entries: list[tuple[bytes, float]] = client.zrange(key, 0, -1, withscores=True)  # type: ignore[assignment]
        assert entries, f"the directory lists an empty bucket {key}"
        assert client.object("encoding", key) == b"listpack"
        for member, score in entries:
            assert int(score) // 128 == int(bucket)
            found[member.decode()] = int(score)
    return found


async def test_every_script_keeps_the_listing_in_step_with_the_records(
    redis_store: RedisStore, admin_client: redis.Redis
) -> None:
    """Random puts, updates, claims, settles, cancels, retries, deletes and prunes: the listing
    of each state is exactly its records' task ids and ids, in listpack-encoded buckets."""
    chance = random.Random(13)
    past = datetime.now(UTC) - timedelta(hours=2)
    await redis_store.put_all(
        *(
            rec(f"t{i}", state=State(chance.choice([1, 1, 2, 3])), next_attempt_at=past)
            for i in range(600)
        )
    )
    held = (await redis_store.claim({7: 9}, limit=200, lease_seconds=LONG_LEASE)).tasks
    await redis_store.settle(
        [Change(c.record, State(chance.choice([1, 2, 3])), 1, 0, Reason("E", "x")) for c in held]
    )
    for _ in range(3):
        alive = [
            r.record.task_id for r in await redis_store.list_tasks(State.PENDING, FAR, limit=1000)
        ]
        await redis_store.cancel(*chance.sample(alive, 20))
        failed = [
            r.record.task_id for r in await redis_store.list_tasks(State.FAILED, FAR, limit=1000)
        ]
        await redis_store.retry(*chance.sample(failed, 10))
        deleted = chance.sample(failed, 5)
        await redis_store.delete(*deleted)
        moved = await redis_store.get_by_task_id(chance.choice(sorted(set(alive) - set(deleted))))
        moved.state = State.CONFIRMED
        await redis_store.update(moved)
    await redis_store.retry_failed(limit=30)
    await redis_store.prune(confirmed_seconds=3600, failed_seconds=3600, limit=50)
    for state in (State.PENDING, State.CONFIRMED, State.FAILED):
        records = await redis_store.list_tasks(state, FAR, limit=10_000)
        expected = {row.record.task_id: row.record.id for row in records}
        assert listing(admin_client, redis_store, state) == expected
        assert len(expected) == await redis_store.count_by_state(state)


async def test_relist_all_lists_records_stored_before_the_listing_existed(
    redis_store: RedisStore, admin_client: redis.Redis
) -> None:
    """An upgraded store: records and indexes, no listing. Pages that walk the listing miss
    them until relist_all (what `retryd migrate` runs) lists them; a second run adds none."""
    await redis_store.put_all(*(rec(f"t{i}", state=State(1 + i % 3)) for i in range(1200)))
    for state in (State.PENDING, State.CONFIRMED, State.FAILED):
        directory = f"{redis_store.keys.list_prefix}{int(state)}"
        buckets: list[bytes] = admin_client.zrange(directory, 0, -1)  # type: ignore[assignment]
        admin_client.delete(directory, *(f"{directory}:{b.decode()}" for b in buckets))
    redis_store._commands.page_sort_limit = 0  # every page walks the listing
    assert await redis_store.list_tasks(State.PENDING, FAR) == []
    assert await redis_store.relist_all(batch=100) == 1200
    assert await redis_store.relist_all() == 0
    for state in (State.PENDING, State.CONFIRMED, State.FAILED):
        walked = await redis_store.list_tasks(state, FAR, limit=10_000)
        assert len(walked) == 400
        assert listing(admin_client, redis_store, state) == {
            row.record.task_id: row.record.id for row in walked
        }
