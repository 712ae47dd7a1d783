"""The lifecycle operations (issue 13), once, against every backend in tests/conftest.py.

delete, cancel, retry, retry_failed, prune, inspect and list_tasks: each rule checked through
the public API only, so MemoryStore (the reference), RedisStore and SyncRedisStore (and, through
tests/cluster/test_lifecycle.py, both on a 3-master cluster) are held to the same behaviour.
Bad input raises and writes nothing: every such test compares a full snapshot before and after.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import pytest

from store import (
    Lifecycle,
    NotFoundError,
    Ordering,
    Record,
    State,
    StateError,
    Store,
    ValidationError,
)

HOUR = timedelta(hours=1)
FAR = datetime(2200, 1, 1, tzinfo=UTC)  # as_of for "every task, due or not"


class LifecycleStore(Store, Lifecycle, Protocol):
    """A lifecycle_store with the seed's contract and the lifecycle operations."""


def rec(task_id: str, **fields: Any) -> Record:
    values: dict[str, Any] = {"type": 7, "data": b"payload"} | fields
    return Record(task_id=task_id, **values)


def ago(delta: timedelta) -> datetime:
    return datetime.now(UTC) - delta


async def snapshot(lifecycle_store: LifecycleStore) -> dict[State, list[tuple[Any, ...]]]:
    """Every record of every state, with its last failure: what 'nothing written' compares."""
    every: dict[State, list[tuple[Any, ...]]] = {}
    for state in (State.PENDING, State.CONFIRMED, State.FAILED):
        rows = await lifecycle_store.list_tasks(state, FAR, limit=10_000)
        every[state] = [(row.record, row.last_error) for row in rows]
    return every


async def ids_listed(lifecycle_store: LifecycleStore, state: State) -> list[str]:
    return [
        row.record.task_id for row in await lifecycle_store.list_tasks(state, FAR, limit=10_000)
    ]


# --- inspect and list_tasks --------------------------------------------------------------------


async def test_inspect_gives_the_record_and_no_error_for_a_task_that_never_failed(
    lifecycle_store: LifecycleStore,
) -> None:
    await lifecycle_store.put_all(rec("a"))
    details = await lifecycle_store.inspect("a")
    assert details.record == await lifecycle_store.get_by_task_id("a")
    assert details.last_error is None


async def test_inspect_of_an_unknown_task_is_not_found(lifecycle_store: LifecycleStore) -> None:
    with pytest.raises(NotFoundError, match="'nope'"):
        await lifecycle_store.inspect("nope")


async def test_list_tasks_is_the_seed_page_with_failures_beside_it(
    lifecycle_store: LifecycleStore,
) -> None:
    await lifecycle_store.put_all(*(rec(f"t{i}", next_attempt_at=ago(HOUR)) for i in range(5)))
    await lifecycle_store.cancel("t1")
    for direction in Ordering:
        seed = await lifecycle_store.get_all_ready_by_state(State.PENDING, FAR, 2, 2, direction)
        rows = await lifecycle_store.list_tasks(State.PENDING, FAR, 2, 2, direction)
        assert [row.record for row in rows] == seed
    (failed,) = await lifecycle_store.list_tasks(State.FAILED, FAR)
    assert failed.record.task_id == "t1"
    assert failed.last_error is not None
    assert failed.last_error.message == "cancelled"


async def test_list_tasks_of_an_empty_state_is_an_empty_page(
    lifecycle_store: LifecycleStore,
) -> None:
    assert await lifecycle_store.list_tasks(State.FAILED, FAR) == []


# --- delete ------------------------------------------------------------------------------------


async def test_delete_removes_tasks_and_their_ids_may_be_put_again(
    lifecycle_store: LifecycleStore,
) -> None:
    await lifecycle_store.put_all(rec("a"), rec("b", state=State.FAILED), rec("c"))
    await lifecycle_store.cancel("c")
    assert await lifecycle_store.delete("a", "c") == 2
    for gone in ("a", "c"):
        with pytest.raises(NotFoundError):
            await lifecycle_store.get_by_task_id(gone)
    assert await lifecycle_store.count_by_state(State.PENDING) == 0
    assert await lifecycle_store.count_by_state(State.FAILED) == 1
    assert await ids_listed(lifecycle_store, State.FAILED) == ["b"]
    again = rec("c")
    await lifecycle_store.put_all(again)
    assert again.id > 3
    assert (await lifecycle_store.inspect("c")).last_error is None  # the old failure went with it


async def test_delete_with_an_unknown_id_deletes_nothing(lifecycle_store: LifecycleStore) -> None:
    await lifecycle_store.put_all(rec("a"), rec("b"))
    before = await snapshot(lifecycle_store)
    with pytest.raises(NotFoundError, match="'nope'"):
        await lifecycle_store.delete("a", "nope", "b")
    assert await snapshot(lifecycle_store) == before


async def test_delete_counts_a_repeated_id_once(lifecycle_store: LifecycleStore) -> None:
    await lifecycle_store.put_all(rec("a"))
    assert await lifecycle_store.delete("a", "a") == 1


@pytest.mark.parametrize("task_ids", [(), ("",), (5,)])
async def test_delete_refuses_bad_task_ids(
    lifecycle_store: LifecycleStore, task_ids: tuple[Any]
) -> None:
    await lifecycle_store.put_all(rec("a"))
    with pytest.raises(ValidationError) as caught:
        await lifecycle_store.delete(*task_ids)
    assert caught.value.field in {"task_ids", "task_id"}
    assert await lifecycle_store.count_by_state(State.PENDING) == 1


# --- cancel ------------------------------------------------------------------------------------


async def test_cancel_fails_pending_tasks_at_once_with_the_reason_cancelled(
    lifecycle_store: LifecycleStore,
) -> None:
    task = rec("a", failed_attempts=2, next_attempt_at=datetime.now(UTC) + HOUR)
    await lifecycle_store.put_all(task)
    before = datetime.now(UTC) - timedelta(seconds=1)
    assert await lifecycle_store.cancel("a") == 1
    details = await lifecycle_store.inspect("a")
    assert details.record.state is State.FAILED
    assert details.record.version == task.version + 1
    assert details.record.failed_attempts == 2
    assert details.record.next_attempt_at is not None
    assert details.record.next_attempt_at >= before
    error = details.last_error
    assert error is not None
    assert (error.kind, error.message, error.failed_attempts) == ("Cancelled", "cancelled", 2)
    assert error.at == details.record.next_attempt_at
    assert await ids_listed(lifecycle_store, State.FAILED) == ["a"]
    assert await ids_listed(lifecycle_store, State.PENDING) == []


async def test_a_cancelled_tasks_old_version_can_no_longer_write(
    lifecycle_store: LifecycleStore,
) -> None:
    """What a worker running it holds: its outcome is refused."""
    running = rec("a")
    await lifecycle_store.put_all(running)
    await lifecycle_store.cancel("a")
    running.state = State.CONFIRMED
    running.next_attempt_at = datetime.now(UTC)
    with pytest.raises(Exception, match="version") as caught:
        await lifecycle_store.update(running)
    assert type(caught.value).__name__ == "StaleVersionError"
    assert (await lifecycle_store.get_by_task_id("a")).state is State.FAILED


@pytest.mark.parametrize("state", [State.CONFIRMED, State.FAILED])
async def test_cancel_of_a_finished_task_is_a_state_error_and_writes_nothing(
    lifecycle_store: LifecycleStore, state: State
) -> None:
    await lifecycle_store.put_all(rec("a"), rec("done", state=state))
    before = await snapshot(lifecycle_store)
    with pytest.raises(StateError, match=f"'done' is {state}, not pending"):
        await lifecycle_store.cancel("a", "done")
    assert await snapshot(lifecycle_store) == before


async def test_cancel_of_an_unknown_task_is_not_found_and_writes_nothing(
    lifecycle_store: LifecycleStore,
) -> None:
    await lifecycle_store.put_all(rec("a"))
    before = await snapshot(lifecycle_store)
    with pytest.raises(NotFoundError, match="'nope'"):
        await lifecycle_store.cancel("a", "nope")
    assert await snapshot(lifecycle_store) == before


# --- retry -------------------------------------------------------------------------------------


async def test_retry_sends_failed_tasks_back_due_now_with_no_failures(
    lifecycle_store: LifecycleStore,
) -> None:
    await lifecycle_store.put_all(rec("a", failed_attempts=5))
    await lifecycle_store.cancel("a")
    version = (await lifecycle_store.get_by_task_id("a")).version
    assert await lifecycle_store.retry("a") == 1
    details = await lifecycle_store.inspect("a")
    assert details.record.state is State.PENDING
    assert details.record.failed_attempts == 0
    assert details.record.version == version + 1
    assert details.record.next_attempt_at is not None
    assert details.record.next_attempt_at <= datetime.now(UTC) + timedelta(seconds=1)
    assert details.last_error is not None  # why it had failed stays readable
    ready = await lifecycle_store.get_all_ready_by_state(State.PENDING, datetime.now(UTC) + HOUR)
    assert [r.task_id for r in ready] == ["a"]


@pytest.mark.parametrize("state", [State.PENDING, State.CONFIRMED])
async def test_retry_of_a_task_that_has_not_failed_is_a_state_error_and_writes_nothing(
    lifecycle_store: LifecycleStore, state: State
) -> None:
    await lifecycle_store.put_all(rec("f", state=State.FAILED), rec("other", state=state))
    before = await snapshot(lifecycle_store)
    with pytest.raises(StateError, match=f"'other' is {state}, not failed"):
        await lifecycle_store.retry("f", "other")
    assert await snapshot(lifecycle_store) == before


async def test_retry_of_an_unknown_task_is_not_found(lifecycle_store: LifecycleStore) -> None:
    with pytest.raises(NotFoundError, match="'nope'"):
        await lifecycle_store.retry("nope")


# --- retry_failed ------------------------------------------------------------------------------


async def test_retry_failed_moves_failed_tasks_of_one_type_in_batches(
    lifecycle_store: LifecycleStore,
) -> None:
    await lifecycle_store.put_all(
        *(rec(f"a{i}", state=State.FAILED, failed_attempts=3) for i in range(5))
    )
    await lifecycle_store.put_all(rec("b", type=8, state=State.FAILED), rec("p"))
    assert await lifecycle_store.retry_failed(7, limit=2) == 2
    assert await lifecycle_store.retry_failed(7, limit=2) == 2
    assert await lifecycle_store.retry_failed(7, limit=2) == 1
    assert await lifecycle_store.retry_failed(7, limit=2) == 0
    assert await ids_listed(lifecycle_store, State.FAILED) == ["b"]
    pending = [row.record for row in await lifecycle_store.list_tasks(State.PENDING, FAR)]
    assert {r.failed_attempts for r in pending} == {0}
    assert len(pending) == 6


async def test_retry_failed_without_a_type_moves_every_type(
    lifecycle_store: LifecycleStore,
) -> None:
    await lifecycle_store.put_all(
        rec("a", state=State.FAILED), rec("b", type=8, state=State.FAILED)
    )
    assert await lifecycle_store.retry_failed(limit=10) == 2
    assert await lifecycle_store.count_by_state(State.FAILED) == 0


@pytest.mark.parametrize(
    ("field", "kwargs"),
    [("limit", {"limit": 0}), ("limit", {"limit": 100_001}), ("type", {"task_type": 0})],
)
async def test_retry_failed_refuses_bad_arguments(
    lifecycle_store: LifecycleStore, field: str, kwargs: dict[str, Any]
) -> None:
    await lifecycle_store.put_all(rec("a", state=State.FAILED))
    with pytest.raises(ValidationError) as caught:
        await lifecycle_store.retry_failed(**kwargs)
    assert caught.value.field == field
    assert await lifecycle_store.count_by_state(State.FAILED) == 1


# --- prune -------------------------------------------------------------------------------------


async def put_finished(lifecycle_store: LifecycleStore) -> None:
    await lifecycle_store.put_all(
        rec("c-old", state=State.CONFIRMED, next_attempt_at=ago(3 * HOUR)),
        rec("c-new", state=State.CONFIRMED, next_attempt_at=ago(HOUR / 2)),
        rec("f-old", state=State.FAILED, next_attempt_at=ago(3 * HOUR)),
        rec("f-new", state=State.FAILED, next_attempt_at=ago(HOUR / 2)),
        rec("p-old", next_attempt_at=ago(30 * HOUR)),
    )


async def test_prune_deletes_finished_tasks_past_their_states_retention(
    lifecycle_store: LifecycleStore,
) -> None:
    await put_finished(lifecycle_store)
    await lifecycle_store.cancel("p-old")  # finished now, so kept
    pruned = await lifecycle_store.prune(confirmed_seconds=3600, failed_seconds=3600)
    assert (pruned.confirmed, pruned.failed) == (1, 1)
    assert await ids_listed(lifecycle_store, State.CONFIRMED) == ["c-new"]
    assert await ids_listed(lifecycle_store, State.FAILED) == ["f-new", "p-old"]
    with pytest.raises(NotFoundError):
        await lifecycle_store.get_by_task_id("c-old")
    await lifecycle_store.put_all(rec("f-old"))  # a pruned task id may be put again
    assert (await lifecycle_store.inspect("f-old")).last_error is None


async def test_prune_never_touches_pending_tasks(lifecycle_store: LifecycleStore) -> None:
    await lifecycle_store.put_all(rec("p", next_attempt_at=ago(1000 * HOUR)))
    pruned = await lifecycle_store.prune(confirmed_seconds=1, failed_seconds=1)
    assert pruned.total == 0
    assert await lifecycle_store.count_by_state(State.PENDING) == 1


async def test_a_retention_of_zero_keeps_that_state_forever(
    lifecycle_store: LifecycleStore,
) -> None:
    await put_finished(lifecycle_store)
    pruned = await lifecycle_store.prune(confirmed_seconds=0, failed_seconds=60)
    assert (pruned.confirmed, pruned.failed) == (0, 2)
    assert await lifecycle_store.count_by_state(State.CONFIRMED) == 2


async def test_prune_works_in_slices_of_at_most_limit(lifecycle_store: LifecycleStore) -> None:
    await lifecycle_store.put_all(
        *(rec(f"c{i}", state=State.CONFIRMED, next_attempt_at=ago(HOUR)) for i in range(5))
    )
    totals = [(await lifecycle_store.prune(confirmed_seconds=1, failed_seconds=1, limit=2)).total]
    while totals[-1]:
        totals.append(
            (await lifecycle_store.prune(confirmed_seconds=1, failed_seconds=1, limit=2)).total
        )
    assert totals == [2, 2, 1, 0]


async def test_concurrent_prunes_delete_each_task_once(lifecycle_store: LifecycleStore) -> None:
    await lifecycle_store.put_all(
        *(rec(f"c{i}", state=State.CONFIRMED, next_attempt_at=ago(HOUR)) for i in range(40))
    )
    slices = await asyncio.gather(
        *(lifecycle_store.prune(confirmed_seconds=60, failed_seconds=60, limit=7) for _ in range(8))
    )
    assert sum(s.total for s in slices) == 40
    assert await lifecycle_store.count_by_state(State.CONFIRMED) == 0


@pytest.mark.parametrize(
    ("field", "kwargs"),
    [
        ("confirmed", {"confirmed_seconds": -1, "failed_seconds": 1}),
        ("failed", {"confirmed_seconds": 1, "failed_seconds": float("nan")}),
        ("limit", {"confirmed_seconds": 1, "failed_seconds": 1, "limit": 0}),
    ],
)
async def test_prune_refuses_bad_arguments(
    lifecycle_store: LifecycleStore, field: str, kwargs: dict[str, Any]
) -> None:
    await put_finished(lifecycle_store)
    with pytest.raises(ValidationError) as caught:
        await lifecycle_store.prune(**kwargs)
    assert caught.value.field == field
    assert await lifecycle_store.count_by_state(State.CONFIRMED) == 2


# --- pages over many tasks ---------------------------------------------------------------------


async def test_pages_walk_a_sparse_due_set_among_thousands_in_id_order(
    lifecycle_store: LifecycleStore,
) -> None:
    """Thousands of tasks, a third of them due, some moved to other states: every page in both
    directions is exactly what the seed's query says (Redis reads them in bounded slices)."""
    now = datetime.now(UTC)
    records = [
        rec(f"t{i}", type=1 + i % 3, next_attempt_at=now - HOUR if i % 3 == 0 else now + HOUR)
        for i in range(4500)
    ]
    for start in range(0, len(records), 500):
        await lifecycle_store.put_all(*records[start : start + 500])
    await lifecycle_store.delete(*(f"t{i}" for i in range(0, 4500, 7)))
    await lifecycle_store.cancel(*(f"t{i}" for i in range(3, 4500, 11) if i % 7))
    gone = {f"t{i}" for i in range(0, 4500, 7)} | {f"t{i}" for i in range(3, 4500, 11)}
    due = [r.id for i, r in enumerate(records) if i % 3 == 0 and r.task_id not in gone]
    assert len(due) > 1000  # more than one slice's budget: the listing is walked
    for direction in Ordering:
        expected = sorted(due, reverse=direction is Ordering.DESC)
        seen: list[int] = []
        cursor: int | None = None
        while True:
            page = await lifecycle_store.list_tasks(State.PENDING, now, cursor, 400, direction)
            seen += [row.record.id for row in page]
            if len(page) < 400:
                break
            cursor = page[-1].record.id
        assert seen == expected
