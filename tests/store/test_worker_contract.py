"""The WorkerStore contract (claim, settle, extend, stats, wake-ups, which_exist, server facts),
run against MemoryStore and RedisStore alike.

Leases that must run out are short (SHORT_LEASE) and waited out with asyncio.sleep just past
them; leases that must hold are long (LONG_LEASE), so a slow machine cannot flip an outcome.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from store import (
    Change,
    Claim,
    MemoryStore,
    Rate,
    Reason,
    Record,
    RedisStore,
    State,
    ValidationError,
    WorkerStore,
)
from tests.pg import postgres_store

SHORT_LEASE = 0.05
PAST_SHORT_LEASE = 0.08
LONG_LEASE = 30.0
T0 = datetime(2024, 5, 17, 12, 0, tzinfo=UTC)
FAR = datetime.now(UTC) + timedelta(days=30)


def rec(task_id: str, **fields: Any) -> Record:
    values: dict[str, Any] = {"type": 7, "data": b"payload"} | fields
    return Record(task_id=task_id, **values)


@pytest.fixture(params=["memory", "redis", "postgres"])
async def worker_store(
    request: pytest.FixtureRequest, redis_url: str, namespace: str
) -> AsyncIterator[WorkerStore]:
    """Each WorkerStore in turn: the reference in memory, Redis and PostgreSQL on this test's
    namespace."""
    if request.param == "memory":
        yield MemoryStore()
        return
    if request.param == "postgres":
        async with postgres_store(request.getfixturevalue("postgres_url"), namespace) as pg:
            yield pg
        return
    async with RedisStore.from_url(redis_url, namespace=namespace) as store:
        yield store


# --- claim -------------------------------------------------------------------------------------


async def test_claim_leases_only_due_pending_tasks_of_the_asked_types(
    worker_store: WorkerStore,
) -> None:
    await worker_store.put_all(
        rec("due", next_attempt_at=T0),
        rec("due-other-type", type=8, next_attempt_at=T0),
        rec("not-due", next_attempt_at=FAR),
        rec("confirmed", state=State.CONFIRMED, next_attempt_at=T0),
        rec("failed", state=State.FAILED, next_attempt_at=T0),
    )
    claim = await worker_store.claim({7: 3}, limit=10, lease_seconds=LONG_LEASE)
    assert [c.record.task_id for c in claim.tasks] == ["due"]
    assert claim.damaged == []


async def test_claim_pushes_next_attempt_at_by_the_lease_and_bumps_version(
    worker_store: WorkerStore,
) -> None:
    record = rec("a", next_attempt_at=T0)
    await worker_store.put_all(record)
    claim = await worker_store.claim({7: 3}, limit=10, lease_seconds=LONG_LEASE)
    (claimed,) = claim.tasks
    assert claimed.due_at == T0
    assert claimed.record.version == record.version + 1
    assert claimed.record.next_attempt_at == claim.now + timedelta(seconds=LONG_LEASE)
    assert claimed.record.failed_attempts == 0
    assert await worker_store.get_by_task_id("a") == claimed.record


async def test_claim_takes_the_oldest_due_first_up_to_limit(worker_store: WorkerStore) -> None:
    await worker_store.put_all(
        *(rec(f"t{i}", type=7 + i % 2, next_attempt_at=T0 - timedelta(minutes=i)) for i in range(6))
    )
    claim = await worker_store.claim({7: 3, 8: 3}, limit=4, lease_seconds=LONG_LEASE)
    assert [c.record.task_id for c in claim.tasks] == ["t5", "t4", "t3", "t2"]


async def test_a_second_claim_does_not_get_leased_tasks(worker_store: WorkerStore) -> None:
    await worker_store.put_all(rec("a"), rec("b"))
    first = await worker_store.claim({7: 3}, limit=1, lease_seconds=LONG_LEASE)
    second = await worker_store.claim({7: 3}, limit=10, lease_seconds=LONG_LEASE)
    third = await worker_store.claim({7: 3}, limit=10, lease_seconds=LONG_LEASE)
    assert len(first.tasks) == len(second.tasks) == 1
    assert first.tasks[0].record.task_id != second.tasks[0].record.task_id
    assert third.tasks == []


async def test_concurrent_claims_never_lease_a_task_twice(worker_store: WorkerStore) -> None:
    await worker_store.put_all(*(rec(f"t{i}") for i in range(30)))
    claims = await asyncio.gather(
        *(worker_store.claim({7: 3}, limit=4, lease_seconds=LONG_LEASE) for _ in range(10))
    )
    leased = [c.record.task_id for claim in claims for c in claim.tasks]
    assert sorted(leased) == sorted(f"t{i}" for i in range(30))


async def test_a_lease_that_ran_out_counts_as_a_failed_attempt(worker_store: WorkerStore) -> None:
    await worker_store.put_all(rec("a"))
    first = await worker_store.claim({7: 3}, limit=1, lease_seconds=SHORT_LEASE)
    await asyncio.sleep(PAST_SHORT_LEASE)
    again = await worker_store.claim({7: 3}, limit=1, lease_seconds=SHORT_LEASE)
    (claimed,) = again.tasks
    assert claimed.record.failed_attempts == 1
    assert claimed.record.version == first.tasks[0].record.version + 1
    assert claimed.due_at == first.tasks[0].record.next_attempt_at


async def test_an_abandoned_task_fails_when_attempts_reach_max(worker_store: WorkerStore) -> None:
    await worker_store.put_all(rec("a"), rec("b", type=8))
    for _ in range(2):
        claim = await worker_store.claim({7: 2, 8: 5}, limit=5, lease_seconds=SHORT_LEASE)
        assert {c.record.task_id for c in claim.tasks} == {"a", "b"}
        await asyncio.sleep(PAST_SHORT_LEASE)
    last = await worker_store.claim({7: 2, 8: 5}, limit=5, lease_seconds=LONG_LEASE)
    assert [c.record.task_id for c in last.tasks] == ["b"]
    failed = await worker_store.get_by_task_id("a")
    assert (failed.state, failed.failed_attempts) == (State.FAILED, 2)
    assert await worker_store.count_by_state(State.FAILED) == 1
    assert await worker_store.count_by_state(State.PENDING) == 1


async def test_claim_reports_next_due(worker_store: WorkerStore) -> None:
    empty = await worker_store.claim({7: 3}, limit=1, lease_seconds=LONG_LEASE)
    assert empty.next_due is None
    await worker_store.put_all(rec("later", next_attempt_at=FAR), rec("now"))
    claim = await worker_store.claim({7: 3}, limit=1, lease_seconds=1.0)
    assert claim.next_due == claim.now + timedelta(seconds=1)  # the lease just taken
    other = await worker_store.claim({8: 3}, limit=1, lease_seconds=1.0)
    assert other.next_due is None
    await worker_store.settle([Change(claim.tasks[0].record, State.CONFIRMED, 0)])
    idle = await worker_store.claim({7: 3}, limit=1, lease_seconds=1.0)
    assert idle.tasks == []
    assert idle.next_due == FAR


@pytest.mark.parametrize(
    ("field", "kwargs"),
    [
        ("types", {"max_attempts": {}}),
        ("type", {"max_attempts": {0: 3}}),
        ("max_attempts", {"max_attempts": {7: 0}}),
        ("limit", {"limit": 0}),
        ("limit", {"limit": 1_000_001}),  # claim.lua refuses more: so does every store
        ("lease", {"lease_seconds": -1.0}),
    ],
)
async def test_claim_refuses_bad_arguments(
    worker_store: WorkerStore, field: str, kwargs: dict[str, Any]
) -> None:
    await worker_store.put_all(rec("a"))
    arguments: dict[str, Any] = {"max_attempts": {7: 3}, "limit": 1, "lease_seconds": 1.0}
    with pytest.raises(ValidationError) as caught:
        await worker_store.claim(**(arguments | kwargs))
    assert caught.value.field == field
    assert (await worker_store.get_by_task_id("a")).version == 1


# --- per-type limits and rates -----------------------------------------------------------------

# One token every 100 s: no second token can come during a test, however slow the machine.
SLOW = 0.01


@pytest.fixture
def flow_store(worker_store: WorkerStore) -> WorkerStore:
    """worker_store, under the name the flow-control tests use (the cluster suite imports it)."""
    return worker_store


def types_of(claim: Claim) -> list[int]:
    return sorted(c.record.type for c in claim.tasks)


async def test_type_limits_cap_a_type_and_leave_the_limit_to_the_others(
    flow_store: WorkerStore,
) -> None:
    await flow_store.put_all(
        *(rec(f"a{i}", next_attempt_at=T0 - timedelta(minutes=10 - i)) for i in range(5)),
        *(rec(f"b{i}", type=8, next_attempt_at=T0) for i in range(5)),
    )
    claim = await flow_store.claim(
        {7: 3, 8: 3}, limit=6, lease_seconds=LONG_LEASE, type_limits={7: 2}
    )
    # The two oldest of type 7 (the cap), then type 8 fills the claim's limit.
    assert [c.record.task_id for c in claim.tasks][:2] == ["a0", "a1"]
    assert types_of(claim) == [7, 7, 8, 8, 8, 8]
    assert claim.held_by_limit == {7}
    assert claim.held_by_rate == {}
    assert claim.next_due is not None
    assert claim.next_due <= claim.now
    rest = await flow_store.claim({8: 3}, limit=6, lease_seconds=LONG_LEASE, type_limits={8: 1})
    assert types_of(rest) == [8]
    assert rest.held_by_limit == frozenset()  # type 8 had nothing left behind


async def test_a_rate_leases_the_burst_then_holds_the_type_until_its_next_token(
    flow_store: WorkerStore,
) -> None:
    await flow_store.put_all(*(rec(f"t{i}") for i in range(10)), rec("later", next_attempt_at=FAR))
    rates = {7: Rate(per_second=SLOW, burst=3)}
    first = await flow_store.claim({7: 3}, limit=10, lease_seconds=LONG_LEASE, rates=rates)
    assert len(first.tasks) == 3
    # Three tokens taken from a full bucket of three: the next is one interval (100 s) away.
    token = first.now + timedelta(seconds=1 / SLOW)
    assert first.held_by_rate == {7: token}
    assert first.next_due == token  # not now: an idle worker sleeps until then
    assert first.held_by_limit == frozenset()
    again = await flow_store.claim({7: 3}, limit=10, lease_seconds=LONG_LEASE, rates=rates)
    assert again.tasks == []
    assert again.held_by_rate == {7: token}
    # The same type without a rate is not held back: the bucket binds only the claims given it.
    free = await flow_store.claim({7: 3}, limit=10, lease_seconds=LONG_LEASE)
    assert len(free.tasks) == 7


async def test_a_type_held_by_its_rate_does_not_hold_back_another_type(
    flow_store: WorkerStore,
) -> None:
    # Type 7's tasks are the oldest due: without a rate they would fill the whole claim.
    await flow_store.put_all(
        *(rec(f"a{i}", next_attempt_at=T0 - timedelta(hours=1)) for i in range(10)),
        *(rec(f"b{i}", type=8, next_attempt_at=T0) for i in range(10)),
    )
    rates = {7: Rate(per_second=SLOW, burst=1)}
    claim = await flow_store.claim({7: 3, 8: 3}, limit=5, lease_seconds=LONG_LEASE, rates=rates)
    assert types_of(claim) == [7, 8, 8, 8, 8]
    assert set(claim.held_by_rate) == {7}
    rest = await flow_store.claim({7: 3, 8: 3}, limit=20, lease_seconds=LONG_LEASE, rates=rates)
    assert types_of(rest) == [8] * 6
    assert set(rest.held_by_rate) == {7}


async def test_a_type_with_tokens_left_and_nothing_due_is_not_held_back(
    flow_store: WorkerStore,
) -> None:
    await flow_store.put_all(rec("a"), rec("later", next_attempt_at=FAR))
    rates = {7: Rate(per_second=SLOW, burst=1)}
    claim = await flow_store.claim({7: 3}, limit=10, lease_seconds=LONG_LEASE, rates=rates)
    assert [c.record.task_id for c in claim.tasks] == ["a"]
    # The bucket is empty, but nothing of the type is due: nothing is held back.
    assert claim.held_by_rate == {}
    assert claim.next_due == claim.now + timedelta(seconds=LONG_LEASE)


async def test_an_abandoned_task_failed_by_a_claim_takes_no_token(
    flow_store: WorkerStore,
) -> None:
    await flow_store.put_all(rec("dead"))
    await flow_store.claim({7: 1}, limit=1, lease_seconds=SHORT_LEASE)  # then abandoned
    await asyncio.sleep(PAST_SHORT_LEASE)
    await flow_store.put_all(rec("next"))  # due after "dead"'s lease ran out
    rates = {7: Rate(per_second=SLOW, burst=1)}
    claim = await flow_store.claim({7: 1}, limit=1, lease_seconds=LONG_LEASE, rates=rates)
    assert claim.tasks == []  # "dead" failed at its max_attempts: no run, so no token
    assert (await flow_store.get_by_task_id("dead")).state is State.FAILED
    again = await flow_store.claim({7: 1}, limit=1, lease_seconds=LONG_LEASE, rates=rates)
    assert [c.record.task_id for c in again.tasks] == ["next"]


async def test_a_bucket_emptied_at_a_slower_rate_refills_at_the_rate_of_the_claim(
    flow_store: WorkerStore,
) -> None:
    """Workers with other settings (or one restarted with new ones) share the bucket: a claim
    reads it as no emptier than empty at its own rate, not as 100 s of debt at the old one."""
    await flow_store.put_all(*(rec(f"t{i}") for i in range(3)))
    slow = await flow_store.claim(
        {7: 3}, limit=5, lease_seconds=LONG_LEASE, rates={7: Rate(SLOW, 1)}
    )
    assert len(slow.tasks) == 1
    fast = {7: Rate(per_second=50.0, burst=1)}
    empty = await flow_store.claim({7: 3}, limit=5, lease_seconds=LONG_LEASE, rates=fast)
    assert empty.tasks == []
    assert empty.held_by_rate == {7: empty.now + timedelta(milliseconds=20)}
    await asyncio.sleep(0.05)
    refilled = await flow_store.claim({7: 3}, limit=5, lease_seconds=LONG_LEASE, rates=fast)
    assert len(refilled.tasks) == 1


async def test_concurrent_claimers_share_one_bucket_per_type(flow_store: WorkerStore) -> None:
    """Four claimers at once for over a second: in every span between two claims, no more
    tasks were leased than the bucket held at the first plus what it refilled meanwhile, by
    the store's own clock (so a slow machine only makes the counts smaller)."""
    rate = Rate(per_second=20.0, burst=5)
    await flow_store.put_all(*(rec(f"t{i}") for i in range(200)))
    claims: list[Claim] = []
    end = time.monotonic() + 1.0

    async def claimer() -> None:
        while time.monotonic() < end:
            claim = await flow_store.claim(
                {7: 3}, limit=10, lease_seconds=LONG_LEASE, rates={7: rate}
            )
            claims.append(claim)
            await asyncio.sleep(0.005)

    await asyncio.gather(*(claimer() for _ in range(4)))
    claims.sort(key=lambda c: c.now)
    counts = [len(c.tasks) for c in claims]
    for i, first in enumerate(claims):
        for j in range(i, len(claims)):
            span = (claims[j].now - first.now).total_seconds()
            assert sum(counts[i : j + 1]) <= math.floor(rate.burst + rate.per_second * span)
    total_span = (claims[-1].now - claims[0].now).total_seconds()
    assert total_span >= 0.9
    assert sum(counts) >= rate.burst + 10  # the bucket refilled: a rate, not a one-off quota
    assert any(c.held_by_rate for c in claims)


@pytest.mark.parametrize(
    ("field", "kwargs"),
    [
        ("type_limits", {"type_limits": {8: 1}}),  # not a claimed type
        ("type_limits", {"type_limits": [1]}),
        ("type_limits[7]", {"type_limits": {7: 0}}),
        ("type_limits[7]", {"type_limits": {7: True}}),
        ("type_limits[7]", {"type_limits": {7: 2**32}}),
        ("rates", {"rates": {8: Rate(1.0, 1)}}),
        ("rates[7]", {"rates": {7: 5.0}}),
        ("rates[7]", {"rates": {7: Rate(0.0, 1)}}),
        ("rates[7]", {"rates": {7: Rate(-1.0, 1)}}),
        ("rates[7]", {"rates": {7: Rate(math.nan, 1)}}),
        ("rates[7]", {"rates": {7: Rate(math.inf, 1)}}),
        ("rates[7]", {"rates": {7: Rate(100_001.0, 1)}}),
        ("rates[7]", {"rates": {7: Rate(0.00001, 1)}}),
        ("rates[7]", {"rates": {7: Rate(True, 1)}}),
        ("rates[7]", {"rates": {7: Rate(1.0, 0)}}),
        ("rates[7]", {"rates": {7: Rate(1.0, 100_001)}}),
        ("rates[7]", {"rates": {7: Rate(1.0, 1.5)}}),  # type: ignore[arg-type]
    ],
)
async def test_claim_refuses_bad_limits_and_rates_and_writes_nothing(
    flow_store: WorkerStore, field: str, kwargs: dict[str, Any]
) -> None:
    await flow_store.put_all(rec("a"), rec("b"))
    arguments: dict[str, Any] = {"max_attempts": {7: 3}, "limit": 1, "lease_seconds": 1.0}
    with pytest.raises(ValidationError) as caught:
        await flow_store.claim(**(arguments | kwargs))
    assert caught.value.field == field
    assert (await flow_store.get_by_task_id("a")).version == 1
    # Nothing was taken from the bucket either: it still holds its whole burst.
    claim = await flow_store.claim(
        {7: 3}, limit=5, lease_seconds=LONG_LEASE, rates={7: Rate(SLOW, 2)}
    )
    assert len(claim.tasks) == 2


# --- settle ------------------------------------------------------------------------------------


async def test_settle_fences_each_change_by_its_version(worker_store: WorkerStore) -> None:
    await worker_store.put_all(rec("ok"), rec("stale"), rec("retry"))
    claim = await worker_store.claim({7: 5}, limit=3, lease_seconds=LONG_LEASE)
    by_id = {c.record.task_id: c.record for c in claim.tasks}
    stale = by_id["stale"].clone()
    stale.version -= 1
    before = await worker_store.get_by_task_id("stale")
    results = await worker_store.settle(
        [
            Change(by_id["ok"], State.CONFIRMED, 0),
            Change(stale, State.CONFIRMED, 0),
            Change(by_id["retry"], State.PENDING, 1, delay_seconds=60.0),
        ]
    )
    assert results == [True, False, True]
    ok = await worker_store.get_by_task_id("ok")
    assert ok.state is State.CONFIRMED
    assert ok.version == by_id["ok"].version + 1
    assert await worker_store.get_by_task_id("stale") == before
    retry = await worker_store.get_by_task_id("retry")
    assert (retry.failed_attempts, retry.state) == (1, State.PENDING)


async def test_settle_bumps_the_version_and_clears_the_lease(worker_store: WorkerStore) -> None:
    await worker_store.put_all(rec("a"))
    (claimed,) = (await worker_store.claim({7: 3}, limit=1, lease_seconds=LONG_LEASE)).tasks
    version = claimed.record.version
    assert await worker_store.settle([Change(claimed.record, State.PENDING, 0)]) == [True]
    assert (await worker_store.get_by_task_id("a")).version == version + 1
    (again,) = (await worker_store.claim({7: 3}, limit=1, lease_seconds=LONG_LEASE)).tasks
    assert again.record.failed_attempts == 0  # settled, so not an abandoned lease
    assert await worker_store.extend([claimed.record], lease_seconds=1.0) == [False]


async def test_a_settle_sent_again_after_a_lost_reply_is_answered_as_applied(
    worker_store: WorkerStore,
) -> None:
    """The worker sends a batch again when its reply was lost: each change already applied is
    answered True (not a conflict) and written once; once the task is claimed again, the same
    change is refused. (The Redis and PostgreSQL stores; the memory store has no reply to
    lose.)"""
    if isinstance(worker_store, MemoryStore):
        pytest.skip("an in-process store loses no reply")
    await worker_store.put_all(rec("a"), rec("b"))
    claim = await worker_store.claim({7: 3}, limit=2, lease_seconds=LONG_LEASE)
    held = {c.record.task_id: c.record for c in claim.tasks}
    failed = Change(held["a"], State.PENDING, 1, 0.0, Reason("RuntimeError", "boom"))
    done = Change(held["b"], State.CONFIRMED, 0)
    assert await worker_store.settle([failed, done]) == [True, True]
    assert await worker_store.settle([failed, done]) == [True, True]
    a = await worker_store.get_by_task_id("a")
    assert (a.version, a.failed_attempts) == (held["a"].version + 1, 1)
    assert (await worker_store.get_by_task_id("b")).version == held["b"].version + 1
    (again,) = (await worker_store.claim({7: 3}, limit=1, lease_seconds=LONG_LEASE)).tasks
    assert again.record.task_id == "a"
    assert await worker_store.settle([failed]) == [False]  # another holder's now


async def test_settle_delay_is_relative_to_server_time(worker_store: WorkerStore) -> None:
    await worker_store.put_all(rec("a", next_attempt_at=T0))
    claim = await worker_store.claim({7: 3}, limit=1, lease_seconds=LONG_LEASE)
    assert await worker_store.settle([Change(claim.tasks[0].record, State.PENDING, 1, 2.5)]) == [
        True
    ]
    after = await worker_store.stats()
    settled = await worker_store.get_by_task_id("a")
    assert settled.next_attempt_at is not None
    delay = timedelta(seconds=2.5)
    assert claim.now + delay <= settled.next_attempt_at <= after.now + delay


async def test_settle_with_no_changes_is_refused(worker_store: WorkerStore) -> None:
    with pytest.raises(ValidationError):
        await worker_store.settle([])


# --- extend ------------------------------------------------------------------------------------


async def test_extend_keeps_the_lease_without_changing_the_version(
    worker_store: WorkerStore,
) -> None:
    await worker_store.put_all(rec("a"))
    (claimed,) = (await worker_store.claim({7: 3}, limit=1, lease_seconds=SHORT_LEASE)).tasks
    assert await worker_store.extend([claimed.record], lease_seconds=LONG_LEASE) == [True]
    await asyncio.sleep(PAST_SHORT_LEASE)
    assert (await worker_store.claim({7: 3}, limit=1, lease_seconds=LONG_LEASE)).tasks == []
    stored = await worker_store.get_by_task_id("a")
    assert stored.version == claimed.record.version
    assert stored.next_attempt_at is not None
    assert claimed.record.next_attempt_at is not None
    assert stored.next_attempt_at > claimed.record.next_attempt_at
    results = await worker_store.settle([Change(claimed.record, State.CONFIRMED, 0)])
    assert results == [True]


async def test_extend_reports_lost_leases(worker_store: WorkerStore) -> None:
    await worker_store.put_all(rec("held"), rec("lost"), rec("settled"))
    claim = await worker_store.claim({7: 3}, limit=3, lease_seconds=SHORT_LEASE)
    by_id = {c.record.task_id: c.record for c in claim.tasks}
    await worker_store.extend([by_id["held"]], lease_seconds=LONG_LEASE)
    await worker_store.settle([Change(by_id["settled"], State.CONFIRMED, 0)])
    settled_before = by_id["settled"].clone()
    settled_before.version -= 1
    await asyncio.sleep(PAST_SHORT_LEASE)
    await worker_store.claim({7: 3}, limit=3, lease_seconds=LONG_LEASE)  # takes "lost" over
    missing = rec("missing", version=2)
    results = await worker_store.extend(
        [by_id["held"], by_id["lost"], settled_before, by_id["settled"], missing],
        lease_seconds=LONG_LEASE,
    )
    assert results == [True, False, False, False, False]
    assert await worker_store.extend([], lease_seconds=1.0) == []


# --- stats -------------------------------------------------------------------------------------


async def test_stats_of_an_empty_namespace(worker_store: WorkerStore) -> None:
    stats = await worker_store.stats()
    assert (stats.pending, stats.confirmed, stats.failed, stats.ready) == (0, 0, 0, 0)
    assert stats.oldest_ready_at is None


async def test_stats_counts_and_ready_excludes_leased_and_not_due(
    worker_store: WorkerStore,
) -> None:
    await worker_store.put_all(
        rec("oldest", next_attempt_at=T0 - timedelta(hours=2)),
        rec("due", type=8, next_attempt_at=T0),
        rec("later", next_attempt_at=FAR),
        rec("c", state=State.CONFIRMED),
        rec("f1", state=State.FAILED),
        rec("f2", state=State.FAILED, type=9),
    )
    before = await worker_store.stats()
    assert (before.pending, before.confirmed, before.failed) == (3, 1, 2)
    assert before.ready == 2
    assert before.oldest_ready_at == T0 - timedelta(hours=2)
    await worker_store.claim({7: 3}, limit=1, lease_seconds=LONG_LEASE)  # leases "oldest"
    after = await worker_store.stats()
    assert (after.pending, after.ready) == (3, 1)
    assert after.oldest_ready_at == T0


# --- wake-ups, which_exist, server facts -------------------------------------------------------

WAKE_TIMEOUT = 5.0


async def test_a_task_put_due_now_wakes_subscribers(worker_store: WorkerStore) -> None:
    async with worker_store.wakeups() as first, worker_store.wakeups() as second:
        await worker_store.put_all(rec("a"))
        await asyncio.wait_for(first.wait(), WAKE_TIMEOUT)
        await asyncio.wait_for(second.wait(), WAKE_TIMEOUT)


async def test_a_retry_settled_due_now_wakes_and_a_later_one_does_not(
    worker_store: WorkerStore,
) -> None:
    await worker_store.put_all(rec("a"), rec("b"))
    claim = await worker_store.claim({7: 3}, limit=2, lease_seconds=LONG_LEASE)
    a, b = sorted((c.record for c in claim.tasks), key=lambda r: r.task_id)
    async with worker_store.wakeups() as wakeups:
        await worker_store.put_all(rec("later", next_attempt_at=FAR))
        await worker_store.settle([Change(a, State.PENDING, 1, delay_seconds=60.0)])
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(wakeups.wait(), 0.3)
        await worker_store.settle([Change(b, State.PENDING, 1, delay_seconds=0.0)])
        await asyncio.wait_for(wakeups.wait(), WAKE_TIMEOUT)


async def test_which_exist_names_the_stored_task_ids(worker_store: WorkerStore) -> None:
    assert await worker_store.which_exist([]) == set()
    await worker_store.put_all(rec("a"), rec("b:{x}"))
    assert await worker_store.which_exist(["a", "b:{x}", "c", "a"]) == {"a", "b:{x}"}
    with pytest.raises(ValidationError):
        await worker_store.which_exist([""])


async def test_server_facts_name_the_server(worker_store: WorkerStore) -> None:
    facts = await worker_store.server_facts()
    assert facts.version.split()[0] in ("memory", "redis", "valkey", "postgresql")
    assert isinstance(facts.persistent, bool)
    assert facts.eviction_policy
