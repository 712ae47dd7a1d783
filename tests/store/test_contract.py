"""The Store contract (issue 2, section 3), once, run against every backend in tests/conftest.py.

Each test states one rule and checks it through the public API only, so that MemoryStore (the
reference) and the Redis stores are held to exactly the same behaviour.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from store import (
    MAX_PUT_BATCH,
    ExistsError,
    NotFoundError,
    Ordering,
    Record,
    StaleVersionError,
    State,
    Store,
    ValidationError,
)
from tests.conftest import TEST_MAX_DATA_BYTES

T0 = datetime(2024, 5, 17, 12, 30, 45, 123456, tzinfo=UTC)
US = timedelta(microseconds=1)
NAIVE = datetime(2024, 5, 17, 12, 30, 45)  # deliberately naive


def rec(task_id: str = "task-1", **fields: Any) -> Record:
    """A valid record, with any field overridden."""
    values: dict[str, Any] = {"type": 7, "data": b"payload"} | fields
    return Record(task_id=task_id, **values)


async def all_ready(store: Store, state: State = State.PENDING, **kwargs: Any) -> list[Record]:
    """Every ready record of a state as one list; [] where the store says NotFoundError."""
    try:
        return await store.get_all_ready_by_state(state, kwargs.pop("as_of", T0), **kwargs)
    except NotFoundError:
        return []


# --- validate() --------------------------------------------------------------------------------

INVALID_FIELDS: list[tuple[str, dict[str, Any]]] = [
    ("task_id", {"task_id": ""}),
    ("task_id", {"task_id": "x" * 1025}),
    ("task_id", {"task_id": "é" * 512 + "x"}),  # 1025 bytes of UTF-8 in 513 characters
    ("task_id", {"task_id": 12}),
    ("task_id", {"task_id": "lone \ud800 surrogate"}),
    ("type", {"type": 0}),
    ("type", {"type": -1}),
    ("type", {"type": 2**32}),
    ("type", {"type": True}),
    ("type", {"type": 1.0}),
    ("type", {"type": "7"}),
    ("data", {"data": "text"}),
    ("data", {"data": None}),
    ("reference_id", {"reference_id": 5}),
    ("reference_id", {"reference_id": "r" * 1025}),
    ("state", {"state": State.UNKNOWN}),
    ("state", {"state": 0}),
    ("state", {"state": 9}),
    ("state", {"state": True}),
    ("failed_attempts", {"failed_attempts": -1}),
    ("failed_attempts", {"failed_attempts": 2**32}),
    ("failed_attempts", {"failed_attempts": False}),
    ("next_attempt_at", {"next_attempt_at": NAIVE}),
    ("next_attempt_at", {"next_attempt_at": "2024-05-17T12:30:45Z"}),
    ("created_at", {"created_at": NAIVE}),
    ("created_at", {"created_at": 1715949045}),
    ("id", {"id": -1}),
    ("version", {"version": -1}),
]


@pytest.mark.parametrize(("field", "override"), INVALID_FIELDS)
def test_validate_names_the_offending_field(field: str, override: dict[str, Any]) -> None:
    """validate() raises a ValidationError (also a ValueError) whose message names the field."""
    record = rec(**({"task_id": "task-1"} | override))
    with pytest.raises(ValidationError) as caught:
        record.validate()
    assert caught.value.field == field
    assert field in str(caught.value)
    assert isinstance(caught.value, ValueError)


@pytest.mark.parametrize(("field", "override"), INVALID_FIELDS)
async def test_put_all_refuses_invalid_records(
    store: Store, field: str, override: dict[str, Any]
) -> None:
    """A batch holding one invalid record is refused as a whole, naming the field."""
    if field in {"id", "version"}:
        override = override | {"task_id": "bad"}
    bad = rec(**({"task_id": "bad"} | override))
    good = rec("good")
    with pytest.raises(ValidationError) as caught:
        await store.put_all(good, bad)
    assert caught.value.field == field
    assert good.id == 0
    with pytest.raises(NotFoundError):
        await store.get_by_task_id("good")


@pytest.mark.parametrize(
    "override",
    [
        {"task_id": "x" * 1024},
        {"task_id": "é" * 512},  # exactly 1024 bytes of UTF-8
        {"type": 1},
        {"type": 2**32 - 1},
        {"failed_attempts": 2**32 - 1},
        {"reference_id": "r" * 1024},
        {"reference_id": ""},
        {"data": b""},
        {"state": State.CONFIRMED},
        {"state": State.FAILED},
    ],
)
async def test_boundary_values_are_accepted_and_round_trip(
    store: Store, override: dict[str, Any]
) -> None:
    """Values at the edge of each range are valid and come back unchanged."""
    record = rec(**override)
    record.validate()
    await store.put_all(record)
    assert await store.get_by_task_id(record.task_id) == record


@pytest.mark.parametrize(
    "task_id",
    [
        "a:b:c",
        "{braces}",
        "}{",
        "{t-1}:tasks",
        "with spaces  and\ttabs",
        "ünïcødé ✓ 任务 🚀",
        "*?[glob]",
        "\x00nul",
        "new\nline",
    ],
)
async def test_any_characters_are_allowed_in_task_ids(store: Store, task_id: str) -> None:
    """Colons, braces, spaces, unicode and control characters do not break the store."""
    record = rec(task_id, next_attempt_at=T0)
    await store.put_all(record, rec("plain", next_attempt_at=T0))
    assert await store.get_by_task_id(task_id) == record
    ready = await store.get_all_ready_by_state(State.PENDING, T0)
    assert [r.task_id for r in ready] == [task_id, "plain"]
    record.state = State.CONFIRMED
    await store.update(record)
    assert await store.count_by_state(State.CONFIRMED) == 1


# --- put_all -----------------------------------------------------------------------------------


async def test_put_all_with_no_records_is_a_validation_error(store: Store) -> None:
    with pytest.raises(ValidationError):
        await store.put_all()


async def test_put_all_refuses_a_record_that_has_an_id(store: Store) -> None:
    """A record with id > 0 was stored already: ExistsError, and none of the batch is stored."""
    first, with_id = rec("first"), rec("second", id=5)
    with pytest.raises(ExistsError):
        await store.put_all(first, with_id)
    assert (first.id, first.version, first.created_at) == (0, 0, None)
    assert with_id.id == 5
    assert await store.count_by_state(State.PENDING) == 0


async def test_put_all_refuses_a_task_id_repeated_in_the_batch(store: Store) -> None:
    batch = [rec("a"), rec("b"), rec("a", type=8)]
    with pytest.raises(ExistsError):
        await store.put_all(*batch)
    assert all((r.id, r.version, r.created_at) == (0, 0, None) for r in batch)
    assert await store.count_by_state(State.PENDING) == 0


async def test_put_all_refuses_a_task_id_already_stored_and_stores_nothing(store: Store) -> None:
    """All or nothing: the records before and after the duplicate are not stored either."""
    stored = rec("dup", data=b"original")
    await store.put_all(stored)
    batch = [rec("before"), rec("dup", data=b"new"), rec("after")]
    untouched = [r.clone() for r in batch]
    with pytest.raises(ExistsError):
        await store.put_all(*batch)
    assert batch == untouched
    for task_id in ("before", "after"):
        with pytest.raises(NotFoundError):
            await store.get_by_task_id(task_id)
    assert await store.get_by_task_id("dup") == stored
    assert await store.count_by_state(State.PENDING) == 1


async def test_put_all_assigns_increasing_ids_in_batch_order(store: Store) -> None:
    """Ids come from one sequence: increasing within a batch and across batches."""
    first = [rec(f"z-{i}") for i in range(3)]
    second = [rec(f"a-{i}") for i in range(2)]
    await store.put_all(*first)
    await store.put_all(*second)
    ids = [r.id for r in first + second]
    assert ids == sorted(ids)
    assert len(set(ids)) == 5
    assert ids[0] >= 1
    for r in first + second:
        assert (await store.get_by_task_id(r.task_id)).id == r.id


async def test_put_all_sets_version_one_and_default_timestamps(store: Store) -> None:
    """created_at defaults to now (UTC) and next_attempt_at to created_at; version becomes 1."""
    before = datetime.now(UTC)
    record = rec()
    await store.put_all(record)
    after = datetime.now(UTC)
    assert record.version == 1
    assert record.created_at is not None
    # The Redis stores take "now" from the server's clock: allow the two clocks some slack.
    assert before - timedelta(seconds=2) <= record.created_at <= after + timedelta(seconds=2)
    assert record.created_at.tzinfo == UTC
    assert record.next_attempt_at == record.created_at
    assert await store.get_by_task_id("task-1") == record


async def test_a_given_created_at_is_the_default_next_attempt_at(store: Store) -> None:
    record = rec(created_at=T0)
    await store.put_all(record)
    assert record.next_attempt_at == T0
    assert (await store.get_by_task_id("task-1")).next_attempt_at == T0


@pytest.mark.parametrize(
    "zone", [UTC, timezone(timedelta(hours=5, minutes=30)), timezone(timedelta(hours=-8))]
)
async def test_timestamps_round_trip_exactly_and_come_back_in_utc(
    store: Store, zone: timezone
) -> None:
    """Explicit timestamps keep every microsecond and are returned in UTC, whatever the zone."""
    created = (T0 - timedelta(days=3, microseconds=1)).astimezone(zone)
    due = (T0 + timedelta(microseconds=999_999)).astimezone(zone)
    record = rec(created_at=created, next_attempt_at=due)
    await store.put_all(record)
    for seen in (record, await store.get_by_task_id("task-1")):
        assert seen.created_at == created
        assert seen.next_attempt_at == due
        assert seen.created_at is not None
        assert seen.created_at.tzinfo == UTC
        assert seen.next_attempt_at is not None
        assert seen.next_attempt_at.tzinfo == UTC


async def test_timestamps_before_the_epoch_round_trip(store: Store) -> None:
    moment = datetime(1969, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC)
    record = rec(created_at=moment, next_attempt_at=moment - US)
    await store.put_all(record)
    stored = await store.get_by_task_id("task-1")
    assert (stored.created_at, stored.next_attempt_at) == (moment, moment - US)


async def test_put_all_updates_the_callers_records_in_place(store: Store) -> None:
    """After put_all the caller's objects equal what the store returns."""
    batch = [rec("a", reference_id="ref-a", state=State.FAILED, failed_attempts=3), rec("b")]
    await store.put_all(*batch)
    for record in batch:
        assert record.id > 0
        assert await store.get_by_task_id(record.task_id) == record


async def test_put_all_keeps_a_copy_not_the_callers_object(store: Store) -> None:
    record = rec(data=b"before")
    await store.put_all(record)
    record.data = b"after"
    record.failed_attempts = 9
    stored = await store.get_by_task_id("task-1")
    assert (stored.data, stored.failed_attempts) == (b"before", 0)


# --- update ------------------------------------------------------------------------------------


async def test_update_writes_the_mutable_fields_and_bumps_the_version(store: Store) -> None:
    record = rec(next_attempt_at=T0)
    await store.put_all(record)
    record.state = State.FAILED
    record.failed_attempts = 4
    record.next_attempt_at = T0 + timedelta(hours=1, microseconds=7)
    await store.update(record)
    assert record.version == 2
    stored = await store.get_by_task_id("task-1")
    assert stored == record
    assert (stored.state, stored.failed_attempts) == (State.FAILED, 4)
    assert stored.next_attempt_at == T0 + timedelta(hours=1, microseconds=7)
    await store.update(record)
    assert record.version == 3


async def test_update_discards_changes_to_the_other_fields(store: Store) -> None:
    """Only state, failed_attempts and next_attempt_at change; the stored record is copied back."""
    record = rec(reference_id="ref", data=b"original", created_at=T0)
    await store.put_all(record)
    original = record.clone()
    record.data = b"changed"
    record.type = 99
    record.reference_id = "other"
    record.created_at = T0 + timedelta(days=1)
    record.state = State.CONFIRMED
    await store.update(record)
    assert (record.data, record.type, record.reference_id) == (b"original", 7, "ref")
    assert (record.created_at, record.id) == (T0, original.id)
    assert record.state is State.CONFIRMED
    assert await store.get_by_task_id("task-1") == record


async def test_update_returns_the_next_attempt_at_in_utc(store: Store) -> None:
    record = rec()
    await store.put_all(record)
    local = (T0 + US).astimezone(timezone(timedelta(hours=2)))
    record.next_attempt_at = local
    await store.update(record)
    assert record.next_attempt_at == local
    assert record.next_attempt_at.tzinfo == UTC


@pytest.mark.parametrize("version", [0, 2, 1000, 2**63 - 1])
async def test_update_with_a_wrong_version_is_stale_and_changes_nothing(
    store: Store, version: int
) -> None:
    record = rec(next_attempt_at=T0)
    await store.put_all(record)
    stored = record.clone()
    attempt = record.clone()
    attempt.version = version
    attempt.state = State.CONFIRMED
    attempt.failed_attempts = 1
    sent = attempt.clone()
    with pytest.raises(StaleVersionError):
        await store.update(attempt)
    assert attempt == sent
    assert await store.get_by_task_id("task-1") == stored
    assert await store.count_by_state(State.CONFIRMED) == 0


async def test_update_of_a_missing_task_is_stale(store: Store) -> None:
    record = rec("ghost", version=1, next_attempt_at=T0)
    with pytest.raises(StaleVersionError):
        await store.update(record)
    with pytest.raises(NotFoundError):
        await store.get_by_task_id("ghost")


async def test_update_needs_a_next_attempt_at(store: Store) -> None:
    record = rec()
    await store.put_all(record)
    record.next_attempt_at = None
    with pytest.raises(ValidationError) as caught:
        await store.update(record)
    assert caught.value.field == "next_attempt_at"


@pytest.mark.parametrize(
    ("field", "value"),
    [("state", State.UNKNOWN), ("failed_attempts", -1), ("next_attempt_at", NAIVE)],
)
async def test_update_validates_the_record(store: Store, field: str, value: Any) -> None:
    record = rec()
    await store.put_all(record)
    stored = record.clone()
    setattr(record, field, value)
    with pytest.raises(ValidationError) as caught:
        await store.update(record)
    assert caught.value.field == field
    assert await store.get_by_task_id("task-1") == stored


async def test_of_concurrent_updates_at_one_version_exactly_one_succeeds(store: Store) -> None:
    record = rec(next_attempt_at=T0)
    await store.put_all(record)
    contenders = [record.clone() for _ in range(20)]
    for attempts, contender in enumerate(contenders):
        contender.failed_attempts = attempts
    results = await asyncio.gather(*(store.update(c) for c in contenders), return_exceptions=True)
    winners = [c for c, result in zip(contenders, results, strict=True) if result is None]
    assert len(winners) == 1
    assert all(isinstance(r, StaleVersionError) for r in results if r is not None)
    stored = await store.get_by_task_id("task-1")
    assert stored == winners[0]
    assert stored.version == 2


async def test_update_moves_a_task_between_states(store: Store) -> None:
    record = rec(next_attempt_at=T0)
    await store.put_all(record, rec("other", next_attempt_at=T0))
    record.state = State.CONFIRMED
    await store.update(record)
    assert await store.count_by_state(State.PENDING) == 1
    assert await store.count_by_state(State.CONFIRMED) == 1
    assert [r.task_id for r in await all_ready(store, State.CONFIRMED)] == ["task-1"]
    assert [r.task_id for r in await all_ready(store, State.PENDING)] == ["other"]


# --- get_by_task_id ----------------------------------------------------------------------------


async def test_get_by_task_id_of_a_missing_task_is_not_found(store: Store) -> None:
    await store.put_all(rec("present"))
    with pytest.raises(NotFoundError):
        await store.get_by_task_id("absent")


async def test_get_by_task_id_returns_a_copy(store: Store) -> None:
    await store.put_all(rec(data=b"kept"))
    first = await store.get_by_task_id("task-1")
    first.data = b"mutated"
    first.state = State.FAILED
    first.failed_attempts = 3
    second = await store.get_by_task_id("task-1")
    assert (second.data, second.state, second.failed_attempts) == (b"kept", State.PENDING, 0)
    assert second is not first


async def test_get_by_task_id_refuses_an_invalid_task_id(store: Store) -> None:
    with pytest.raises(ValidationError) as caught:
        await store.get_by_task_id("")
    assert caught.value.field == "task_id"


# --- get_all_ready_by_state --------------------------------------------------------------------


async def test_ready_returns_only_the_asked_state(store: Store) -> None:
    await store.put_all(
        rec("p", next_attempt_at=T0),
        rec("c", state=State.CONFIRMED, next_attempt_at=T0),
        rec("f", state=State.FAILED, next_attempt_at=T0),
        rec("p2", type=8, next_attempt_at=T0),
    )
    assert {r.task_id for r in await all_ready(store, State.PENDING)} == {"p", "p2"}
    assert [r.task_id for r in await all_ready(store, State.CONFIRMED)] == ["c"]
    assert [r.task_id for r in await all_ready(store, State.FAILED)] == ["f"]


async def test_ready_includes_as_of_itself_to_the_microsecond(store: Store) -> None:
    """next_attempt_at <= as_of: due exactly at as_of is ready, one microsecond later is not."""
    await store.put_all(
        rec("early", next_attempt_at=T0 - US),
        rec("exact", next_attempt_at=T0),
        rec("late", next_attempt_at=T0 + US),
    )
    assert [r.task_id for r in await all_ready(store, as_of=T0)] == ["early", "exact"]
    assert [r.task_id for r in await all_ready(store, as_of=T0 - US)] == ["early"]
    assert len(await all_ready(store, as_of=T0 + US)) == 3
    with pytest.raises(NotFoundError):
        await store.get_all_ready_by_state(State.PENDING, T0 - 2 * US)


async def test_ready_compares_as_of_in_any_zone(store: Store) -> None:
    await store.put_all(rec("exact", next_attempt_at=T0))
    as_of = T0.astimezone(timezone(timedelta(hours=-3)))
    assert [r.task_id for r in await all_ready(store, as_of=as_of)] == ["exact"]
    with pytest.raises(NotFoundError):
        await store.get_all_ready_by_state(State.PENDING, as_of - US)


async def ids_put(store: Store, count: int, **fields: Any) -> list[int]:
    """Store count due records (ready at T0, due times shuffled against id order); their ids."""
    batch = [
        rec(f"r-{i:03}", next_attempt_at=T0 - timedelta(seconds=(i * 7) % count), **fields)
        for i in range(count)
    ]
    await store.put_all(*batch)
    return [r.id for r in batch]


@pytest.mark.parametrize("direction", [Ordering.ASC, Ordering.DESC])
async def test_ready_is_ordered_by_id_not_by_due_time(store: Store, direction: Ordering) -> None:
    ids = await ids_put(store, 12)
    page = await store.get_all_ready_by_state(State.PENDING, T0, direction=direction)
    assert [r.id for r in page] == sorted(ids, reverse=direction is Ordering.DESC)


async def test_ready_honours_limit(store: Store) -> None:
    ids = await ids_put(store, 10)
    page = await store.get_all_ready_by_state(State.PENDING, T0, limit=3)
    assert [r.id for r in page] == sorted(ids)[:3]
    desc = await store.get_all_ready_by_state(State.PENDING, T0, limit=1, direction=Ordering.DESC)
    assert [r.id for r in desc] == [max(ids)]


async def test_ready_cursor_is_exclusive_in_the_pages_direction(store: Store) -> None:
    ids = sorted(await ids_put(store, 9))
    middle = ids[4]
    asc = await store.get_all_ready_by_state(State.PENDING, T0, cursor=middle)
    assert [r.id for r in asc] == ids[5:]
    desc = await store.get_all_ready_by_state(
        State.PENDING, T0, cursor=middle, direction=Ordering.DESC
    )
    assert [r.id for r in desc] == ids[:4][::-1]
    with pytest.raises(NotFoundError):
        await store.get_all_ready_by_state(State.PENDING, T0, cursor=ids[-1])
    with pytest.raises(NotFoundError):
        await store.get_all_ready_by_state(
            State.PENDING, T0, cursor=ids[0], direction=Ordering.DESC
        )


async def test_ready_cursor_need_not_be_a_stored_id(store: Store) -> None:
    ids = sorted(await ids_put(store, 4))
    everything = await store.get_all_ready_by_state(State.PENDING, T0, cursor=0)
    assert [r.id for r in everything] == ids
    above = await store.get_all_ready_by_state(
        State.PENDING, T0, cursor=2**62, direction=Ordering.DESC, limit=2**62
    )
    assert [r.id for r in above] == ids[::-1]
    with pytest.raises(NotFoundError):
        await store.get_all_ready_by_state(State.PENDING, T0, cursor=2**62)


@pytest.mark.parametrize("direction", [Ordering.ASC, Ordering.DESC])
async def test_paging_with_the_last_id_as_cursor_walks_every_record_once(
    store: Store, direction: Ordering
) -> None:
    ids = await ids_put(store, 23, type=3)
    await store.put_all(rec("not-due", next_attempt_at=T0 + US, type=3))
    await store.put_all(rec("other-state", state=State.FAILED, next_attempt_at=T0, type=3))
    seen: list[int] = []
    cursor: int | None = None
    while True:
        try:
            page = await store.get_all_ready_by_state(
                State.PENDING, T0, cursor=cursor, limit=5, direction=direction
            )
        except NotFoundError:
            break
        assert 1 <= len(page) <= 5
        seen += [r.id for r in page]
        cursor = page[-1].id
    assert seen == sorted(ids, reverse=direction is Ordering.DESC)


async def test_ready_pages_are_copies_with_every_field(store: Store) -> None:
    record = rec(reference_id="ref", failed_attempts=2, next_attempt_at=T0, created_at=T0 - US)
    await store.put_all(record)
    (page_record,) = await store.get_all_ready_by_state(State.PENDING, T0)
    assert page_record == record
    page_record.data = b"mutated"
    assert (await store.get_by_task_id("task-1")).data == b"payload"


async def test_ready_of_an_empty_store_is_not_found(store: Store) -> None:
    with pytest.raises(NotFoundError):
        await store.get_all_ready_by_state(State.PENDING, T0)


@pytest.mark.parametrize(
    ("field", "kwargs"),
    [
        ("state", {"state": State.UNKNOWN}),
        ("state", {"state": 9}),
        ("as_of", {"as_of": NAIVE}),
        ("as_of", {"as_of": "2024-05-17"}),
        ("cursor", {"cursor": "5"}),
        ("cursor", {"cursor": True}),
        ("limit", {"limit": 0}),
        ("limit", {"limit": -1}),
        ("limit", {"limit": True}),
        ("direction", {"direction": "asc"}),
    ],
)
async def test_ready_refuses_bad_arguments(
    store: Store, field: str, kwargs: dict[str, Any]
) -> None:
    await store.put_all(rec(next_attempt_at=T0))
    arguments: dict[str, Any] = {"state": State.PENDING, "as_of": T0} | kwargs
    with pytest.raises(ValidationError) as caught:
        await store.get_all_ready_by_state(**arguments)
    assert caught.value.field == field


# --- count_by_state ----------------------------------------------------------------------------


async def test_count_by_state_counts_each_state_across_types(store: Store) -> None:
    for state in (State.PENDING, State.CONFIRMED, State.FAILED):
        assert await store.count_by_state(state) == 0
    await store.put_all(
        rec("a"),
        rec("b", type=2),
        rec("c", type=3, next_attempt_at=T0 + timedelta(days=365)),
        rec("d", state=State.CONFIRMED),
        rec("e", state=State.FAILED, type=2),
        rec("f", state=State.FAILED),
    )
    assert await store.count_by_state(State.PENDING) == 3
    assert await store.count_by_state(State.CONFIRMED) == 1
    assert await store.count_by_state(State.FAILED) == 2


@pytest.mark.parametrize("state", [State.UNKNOWN, 4, True])
async def test_count_by_state_refuses_a_bad_state(store: Store, state: Any) -> None:
    with pytest.raises(ValidationError) as caught:
        await store.count_by_state(state)
    assert caught.value.field == "state"


# --- data --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "data",
    [bytes(range(256)), b"\xff\xfe\x80\xc3(", b"\x00" * 10, bytes(range(256))[::-1] * 40],
    ids=["every-byte", "invalid-utf8", "nuls", "10k"],
)
async def test_data_is_binary_safe(store: Store, data: bytes) -> None:
    record = rec(data=data, reference_id="r\x00ef", next_attempt_at=T0)
    await store.put_all(record)
    assert (await store.get_by_task_id("task-1")).data == data
    (ready,) = await store.get_all_ready_by_state(State.PENDING, T0)
    assert ready.data == data
    record.data = b"ignored"
    record.state = State.CONFIRMED
    await store.update(record)
    assert record.data == data
    assert record.reference_id == "r\x00ef"


async def test_data_up_to_max_data_bytes_is_accepted(store: Store) -> None:
    data = b"\xab" * TEST_MAX_DATA_BYTES
    await store.put_all(rec(data=data))
    assert (await store.get_by_task_id("task-1")).data == data


async def test_data_over_max_data_bytes_is_a_validation_error(store: Store) -> None:
    batch = [rec("ok"), rec("big", data=b"\x00" * (TEST_MAX_DATA_BYTES + 1))]
    with pytest.raises(ValidationError) as caught:
        await store.put_all(*batch)
    assert caught.value.field == "data"
    assert await store.count_by_state(State.PENDING) == 0


async def test_put_all_refuses_a_batch_over_the_maximum_naming_it(store: Store) -> None:
    """MAX_PUT_BATCH records are taken; one more is a ValidationError naming the limit, and
    nothing is written."""
    over = [Record(task_id=f"big-{i}", type=1, data=b"") for i in range(MAX_PUT_BATCH + 1)]
    with pytest.raises(ValidationError, match=f"at most {MAX_PUT_BATCH} records"):
        await store.put_all(*over)
    assert await store.count_by_state(State.PENDING) == 0
    await store.put_all(*over[:MAX_PUT_BATCH])
    assert await store.count_by_state(State.PENDING) == MAX_PUT_BATCH
