"""Random sequences of operations against MemoryStore and RedisStore at once: they must agree.

Every rule runs one operation on both stores with equal inputs and asserts equal outcomes: the
same exception type, or equal records and counts. Timestamps are always given explicitly so that
no "now" of either store leaks into the comparison: cancel and retry, which stamp the store's
own now, are followed by an update that sets the same instant on both. Each example gets a
fresh namespace.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import redis
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test

from store import MemoryStore, Ordering, Record, RedisStore, State, Store, TaskDetails
from tests.conftest import namespace_keys

T = TypeVar("T")
T0 = datetime(2024, 5, 17, 12, 0, tzinfo=UTC)

# Few task ids, so that duplicates, existing tasks and stale versions come up often; some
# carry the characters that would break a naive key schema.
TASK_IDS = ["a", "b", "c:{x}", "d d", "é✓", "f", "g", "h", "{i}", "j"]
task_ids = st.sampled_from(TASK_IDS)
states = st.sampled_from([State.PENDING, State.CONFIRMED, State.FAILED])
# A few microseconds apart: due times often tie with as_of, so the inclusive bound is exercised.
moments = st.integers(-6, 6).map(lambda us: T0 + timedelta(microseconds=us))
types = st.sampled_from([1, 2, 2**32 - 1])

records = st.builds(
    Record,
    task_id=task_ids,
    type=types,
    data=st.binary(max_size=16),
    reference_id=st.none() | st.sampled_from(["ref", "r:{1}"]),
    state=states,
    failed_attempts=st.integers(0, 3),
    next_attempt_at=st.none() | moments,
    created_at=moments,
    id=st.just(0),
)
# Mostly distinct task ids (a batch that can succeed); st.lists(records) covers duplicates.
batches = st.lists(records, min_size=1, max_size=4, unique_by=lambda r: r.task_id) | st.lists(
    records, max_size=4
)


Outcome = tuple[str, Any]


class StoresAgree(RuleBasedStateMachine):
    """MemoryStore (the reference) and RedisStore driven in lockstep."""

    def __init__(self, redis_url: str) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.namespace = f"s-{uuid.uuid4().hex[:12]}"
        self.memory = MemoryStore()
        self.redis = RedisStore.from_url(redis_url, namespace=self.namespace)
        # A page reads at most 2 entries a slice: more than 2 due records and it walks the
        # listing by id over several slices, so both ways a page is read are compared.
        self.redis._commands.page_budget = 2
        self.redis._commands.page_sort_limit = 2
        self.admin = redis.Redis.from_url(redis_url)

    def teardown(self) -> None:
        keys = namespace_keys(self.admin, "{" + self.namespace + "}:*")
        if keys:
            self.admin.delete(*keys)
        self.admin.close()
        self.loop.run_until_complete(self.redis.aclose())
        self.loop.close()

    def both(self, operation: Callable[[Store], Awaitable[T]]) -> tuple[Outcome, Outcome]:
        """Run an operation on each store; each outcome is ('ok', result) or ('error', type)."""
        return self._outcome(operation, self.memory), self._outcome(operation, self.redis)

    def _outcome(self, operation: Callable[[Store], Awaitable[T]], store: Store) -> Outcome:
        try:
            return ("ok", self.loop.run_until_complete(operation(store)))
        except Exception as error:  # the exception's type is what both stores must agree on
            return ("error", type(error))

    @rule(batch=batches, claims_an_id=st.sampled_from([False] * 9 + [True]))
    def put_all(self, batch: list[Record], claims_an_id: bool) -> None:
        if batch and claims_an_id:
            batch[-1].id = 3  # a record that says it is stored already
        mine, theirs = [r.clone() for r in batch], [r.clone() for r in batch]
        memory = self._outcome(lambda s: s.put_all(*mine), self.memory)
        redis_ = self._outcome(lambda s: s.put_all(*theirs), self.redis)
        assert memory == redis_
        assert mine == theirs

    @rule(
        pick=st.integers(0, 2**16),
        missing=st.sampled_from([False] * 5 + [True]),
        version_shift=st.sampled_from([0, 0, 0, 0, 0, -1, 1, 1000]),
        state=st.sampled_from([State.PENDING, State.CONFIRMED, State.FAILED] * 3 + [State.UNKNOWN]),
        failed_attempts=st.integers(0, 5),
        next_attempt_at=moments,
        data=st.binary(max_size=4),
    )
    def update(
        self,
        pick: int,
        missing: bool,
        version_shift: int,
        state: State,
        failed_attempts: int,
        next_attempt_at: datetime,
        data: bytes,
    ) -> None:
        """An update at the current version (mostly), or a stale one, mostly of a stored task."""
        stored = sorted(self.memory._records)
        pool = TASK_IDS if missing or not stored else stored
        task_id = pool[pick % len(pool)]
        current = self.memory._records.get(task_id)
        base = current.clone() if current else Record(task_id=task_id, type=1, data=b"", version=1)
        base.version = max(0, base.version + version_shift)
        base.state, base.failed_attempts = state, failed_attempts
        base.next_attempt_at, base.data = next_attempt_at, data
        mine, theirs = base.clone(), base.clone()
        memory = self._outcome(lambda s: s.update(mine), self.memory)
        redis_ = self._outcome(lambda s: s.update(theirs), self.redis)
        assert memory == redis_
        assert mine == theirs

    @rule(task_id=task_ids)
    def get_by_task_id(self, task_id: str) -> None:
        memory, redis_ = self.both(lambda s: s.get_by_task_id(task_id))
        assert memory == redis_
        if memory[0] == "ok":
            assert memory[1] is not self.memory._records[task_id]  # a copy, never the original

    @rule(
        state=states,
        as_of=moments,
        cursor_pick=st.none() | st.integers(0, 2**16),
        limit=st.integers(1, 5),
        direction=st.sampled_from(Ordering),
    )
    def get_all_ready_by_state(
        self,
        state: State,
        as_of: datetime,
        cursor_pick: int | None,
        limit: int,
        direction: Ordering,
    ) -> None:
        """A page; the cursor, when given, is mostly a stored id (the boundary that matters)."""
        ids = sorted(r.id for r in self.memory._records.values())
        candidates = [0, *ids, (ids[-1] if ids else 0) + 1]
        cursor = None if cursor_pick is None else candidates[cursor_pick % len(candidates)]
        memory, redis_ = self.both(
            lambda s: s.get_all_ready_by_state(state, as_of, cursor, limit, direction)
        )
        assert memory == redis_

    @rule(state=states)
    def count_by_state(self, state: State) -> None:
        memory, redis_ = self.both(lambda s: s.count_by_state(state))
        assert memory == redis_

    @rule(ids=st.lists(task_ids, min_size=1, max_size=3))
    def delete(self, ids: list[str]) -> None:
        memory, redis_ = self.both(lambda s: s.delete(*ids))  # type: ignore[attr-defined]
        assert memory == redis_

    @rule(
        ids=st.lists(task_ids, min_size=1, max_size=3),
        operation=st.sampled_from(["cancel", "retry"]),
    )
    def cancel_or_retry(self, ids: list[str], operation: str) -> None:
        memory, redis_ = self.both(lambda s: getattr(s, operation)(*ids))
        assert memory == redis_
        if memory[0] == "ok":
            self._same_instant(ids)

    @rule(task_type=st.none() | types)
    def retry_failed(self, task_type: int | None) -> None:
        """Every FAILED task of the type (a limit past them all: which ones a smaller batch
        takes among ties in next_attempt_at is the store's choice)."""
        moved = [t for t, r in self.memory._records.items() if r.state is State.FAILED
                 and task_type in (None, r.type)]  # fmt: skip
        memory, redis_ = self.both(lambda s: s.retry_failed(task_type, limit=100))  # type: ignore[attr-defined]
        assert memory == redis_
        self._same_instant(moved)

    @rule(
        confirmed=st.sampled_from([0, 1, 10 * 365 * 86400]),
        failed=st.sampled_from([0, 1, 10 * 365 * 86400]),
    )
    def prune(self, confirmed: int, failed: int) -> None:
        """Every timestamp is in 2024: a retention of 1 s prunes every finished task, 10 years
        none, 0 none; the same on both stores."""
        memory, redis_ = self.both(
            lambda s: s.prune(confirmed_seconds=confirmed, failed_seconds=failed, limit=100)  # type: ignore[attr-defined]
        )
        assert memory == redis_

    @rule(
        state=states,
        as_of=moments | st.just(T0 + timedelta(days=1)),  # the latter: every task is due
        limit=st.integers(1, 5),
        direction=st.sampled_from(Ordering),
    )
    def list_tasks(self, state: State, as_of: datetime, limit: int, direction: Ordering) -> None:
        memory, redis_ = self.both(
            lambda s: s.list_tasks(state, as_of, None, limit, direction)  # type: ignore[attr-defined]
        )
        assert _without_instants(memory) == _without_instants(redis_)

    def _same_instant(self, ids: list[str]) -> None:
        """Set next_attempt_at of these tasks to T0 on both stores (undoing the stores' nows)."""
        for task_id in dict.fromkeys(ids):
            current = self.memory._records.get(task_id)
            if current is not None:
                mine, theirs = current.clone(), current.clone()
                mine.next_attempt_at = theirs.next_attempt_at = T0
                self.loop.run_until_complete(self.memory.update(mine))
                self.loop.run_until_complete(self.redis.update(theirs))

    @invariant()
    def every_task_agrees(self) -> None:
        """Between steps, every task id reads the same from both stores."""
        for task_id in TASK_IDS:
            self.get_by_task_id(task_id)


def _without_instants(outcome: Outcome) -> Outcome:
    """A page of TaskDetails with each last failure's time left out (each store's own now)."""
    if outcome[0] != "ok":
        return outcome
    rows: list[TaskDetails] = outcome[1]
    return ("ok", [
        (r.record, r.last_error and (r.last_error.kind, r.last_error.message,
                                     r.last_error.failed_attempts))
        for r in rows
    ])  # fmt: skip


def test_memory_and_redis_stores_agree(redis_url: str) -> None:
    run_state_machine_as_test(
        lambda: StoresAgree(redis_url),  # type: ignore[arg-type]  # a factory is documented
        settings=settings(
            max_examples=50,
            stateful_step_count=30,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow],
        ),
    )
