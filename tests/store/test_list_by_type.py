"""list_by_type: one state and one type by next attempt, paged by cursor (issue 14's Tasks page).

Held against every backend of tests/conftest.py through the public API: MemoryStore (the
reference), RedisStore and SyncRedisStore on the real Redis (and on a cluster through
tests/cluster/test_list_by_type.py), PostgresStore and SyncPostgresStore on the real PostgreSQL.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import redis

from store import (
    MAX_TYPE,
    Ordering,
    Record,
    RedisStore,
    State,
    TaskDetails,
    TypeCursor,
    ValidationError,
)
from tests.conftest import BACKENDS, _context
from tests.store.test_lifecycle import LifecycleStore, snapshot

T0 = datetime(2030, 1, 1, tzinfo=UTC)
SECOND = timedelta(seconds=1)


@pytest.fixture(params=["memory", "redis", "redis-sync", "postgres", "postgres-sync"])
async def listing_store(
    request: pytest.FixtureRequest, redis_url: str, namespace: str
) -> AsyncIterator[Any]:
    """The backends that offer list_by_type, on this test's namespace."""
    async with BACKENDS[request.param](_context(request, redis_url, namespace)) as backend:
        yield backend


def rec(task_id: str, at: datetime, task_type: int = 7) -> Record:
    return Record(task_id=task_id, type=task_type, data=b"x", next_attempt_at=at)


def ids(rows: list[TaskDetails]) -> list[str]:
    return [row.record.task_id for row in rows]


async def walk(
    store: LifecycleStore, state: State, task_type: int, limit: int, direction: Ordering
) -> list[str]:
    """Every page from the first, each resumed from the last task of the one before."""
    seen: list[str] = []
    after = None
    while True:
        rows = await store.list_by_type(state, task_type, after, limit, direction)
        seen += ids(rows)
        if len(rows) < limit:
            return seen
        after = TypeCursor.after(rows[-1].record)


async def test_one_state_and_type_in_next_attempt_then_id_order(
    lifecycle_store: LifecycleStore,
) -> None:
    store: Any = lifecycle_store
    await store.put_all(
        rec("late", T0 + 3 * SECOND),
        rec("b", T0),
        rec("a", T0),
        rec("early", T0 - SECOND),
        rec("other-type", T0, task_type=8),
        rec("cancelled", T0),
    )
    await store.cancel("cancelled")
    assert ids(await store.list_by_type(State.PENDING, 7)) == ["early", "a", "b", "late"]
    newest = await store.list_by_type(State.PENDING, 7, direction=Ordering.DESC)
    assert ids(newest) == ["late", "b", "a", "early"]
    assert newest[0].record == await store.get_by_task_id("late")
    (failed,) = await store.list_by_type(State.FAILED, 7)
    assert failed.record.task_id == "cancelled"
    assert failed.last_error is not None
    assert failed.last_error.message == "cancelled"
    assert await store.list_by_type(State.CONFIRMED, 7) == []
    assert await store.list_by_type(State.PENDING, 9) == []


async def test_pages_walk_every_task_once_through_ties_both_ways(listing_store: Any) -> None:
    store = listing_store
    tied = [rec(f"tie{i}", T0) for i in range(7)]
    spread = [rec(f"s{i}", T0 + (i - 3) * SECOND) for i in range(6)]
    await store.put_all(*tied, *spread)
    expected = ids(await store.list_by_type(State.PENDING, 7, limit=100))
    assert len(expected) == 13
    for limit in (1, 3, 5):
        assert await walk(store, State.PENDING, 7, limit, Ordering.ASC) == expected
        assert await walk(store, State.PENDING, 7, limit, Ordering.DESC) == expected[::-1]


async def test_a_cursor_whose_task_left_resumes_after_its_instant(listing_store: Any) -> None:
    store = listing_store
    # A microsecond apart: a cursor's instant must be exact to the µs (16 digits) in Redis.
    at = [T0 + timedelta(microseconds=123_456 + n) for n in range(3)]
    await store.put_all(rec("a", at[0]), rec("b", at[1]), rec("c", at[2]))
    (first,) = await store.list_by_type(State.PENDING, 7, limit=1)
    await store.cancel("a")
    after = TypeCursor.after(first.record)
    assert ids(await store.list_by_type(State.PENDING, 7, after)) == ["b", "c"]
    await store.cancel("b")
    after_b = TypeCursor(at[1], "b")
    assert ids(await store.list_by_type(State.PENDING, 7, after_b)) == ["c"]
    assert ids(await store.list_by_type(State.PENDING, 7, TypeCursor(at[2], "zz"))) == []
    assert ids(await store.list_by_type(State.PENDING, 7, after_b, 5, Ordering.DESC)) == []
    await store.put_all(rec("d", at[0]))
    assert ids(await store.list_by_type(State.PENDING, 7, after_b, 5, Ordering.DESC)) == ["d"]


@pytest.mark.parametrize(
    ("arguments", "field"),
    [
        ((State.PENDING, 0), "task_type"),
        ((State.PENDING, MAX_TYPE + 1), "task_type"),
        ((State.PENDING, True), "task_type"),
        ((State.PENDING, "7"), "task_type"),
        ((9, 7), "state"),
        ((State.PENDING, 7, "t1"), "after"),
        ((State.PENDING, 7, None, 0), "limit"),
        ((State.PENDING, 7, None, 10_001), "limit"),
        ((State.PENDING, 7, None, 10, "asc"), "direction"),
    ],
)
async def test_bad_arguments_are_refused_naming_the_field(
    listing_store: Any, arguments: tuple[Any, ...], field: str
) -> None:
    store = listing_store
    await store.put_all(rec("t1", T0))
    before = await snapshot(store)
    with pytest.raises(ValidationError, match=field):
        await store.list_by_type(*arguments)
    assert await snapshot(store) == before


async def test_pages_leave_out_damaged_records_and_stay_full(
    redis_store: RedisStore, admin_client: redis.Redis
) -> None:
    """A damaged record or an index entry without a record is left out, as claim sets it
    aside; the sound ones keep their order and full pages, both ways."""
    names = ["g0", "short", "g1", "g2", "long", "g3", "g4"]
    await redis_store.put_all(*(rec(n, T0 + i * SECOND) for i, n in enumerate(names)))
    admin_client.hset(redis_store.keys.tasks, "short", b"\x01not a record")
    admin_client.hset(redis_store.keys.tasks, "long", b"\x07" + b"\xff" * 80)
    admin_client.zadd(redis_store.keys.index(State.PENDING, 7), {"ghost": 0})
    sound = [f"g{i}" for i in range(5)]
    assert await walk(redis_store, State.PENDING, 7, 2, Ordering.ASC) == sound
    assert await walk(redis_store, State.PENDING, 7, 2, Ordering.DESC) == sound[::-1]
    assert ids(await redis_store.list_by_type(State.PENDING, 7, limit=3)) == sound[:3]
