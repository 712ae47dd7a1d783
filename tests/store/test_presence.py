"""Heartbeats (beat, beats) and per-type counts on Redis: what the dashboard's overview reads."""

from __future__ import annotations

import asyncio

import pytest

from store import Record, RedisStore, State, TypeCounts, ValidationError


async def test_count_by_type_counts_each_state_of_each_type(redis_store: RedisStore) -> None:
    await redis_store.put_all(
        Record("a", 7, b""),
        Record("b", 7, b"", state=State.FAILED),
        Record("c", 2, b"", state=State.CONFIRMED),
        Record("d", 2, b""),
        Record("e", 2, b""),
    )
    assert await redis_store.count_by_type() == [TypeCounts(2, 2, 1, 0), TypeCounts(7, 1, 0, 1)]


async def test_count_by_type_of_an_empty_namespace_is_empty(redis_store: RedisStore) -> None:
    assert await redis_store.count_by_type() == []


async def test_beats_lists_recent_members_latest_first(redis_store: RedisStore) -> None:
    first = await redis_store.beat("w-1", b'{"n": 1}', forget_after_seconds=60)
    await asyncio.sleep(0.01)
    await redis_store.beat("w-2", b"\x00binary", forget_after_seconds=60)
    await redis_store.beat("w-1", b'{"n": 2}', forget_after_seconds=60)
    presence = await redis_store.beats(within_seconds=60)
    assert [(b.member, b.payload) for b in presence.beats] == [
        ("w-1", b'{"n": 2}'),
        ("w-2", b"\x00binary"),
    ]
    assert presence.beats[0].at >= first
    assert presence.now >= presence.beats[0].at


async def test_silent_members_drop_out_and_are_forgotten(
    redis_store: RedisStore, admin_client: object
) -> None:
    await redis_store.beat("gone", b"", forget_after_seconds=0.05)
    await asyncio.sleep(0.1)
    assert (await redis_store.beats(within_seconds=0.05)).beats == []
    # The next beat of anyone forgets it for good, payload included.
    await redis_store.beat("alive", b"", forget_after_seconds=0.05)
    assert [b.member for b in (await redis_store.beats(within_seconds=3600)).beats] == ["alive"]
    payloads = await redis_store.client.hkeys(redis_store.keys.presence_payloads)
    assert payloads == [b"alive"]


@pytest.mark.parametrize(
    ("member", "payload", "forget_after", "field"),
    [
        ("", b"", 60, "member"),
        ("m" * 257, b"", 60, "member"),
        ("w", b"x" * 8193, 60, "payload"),
        ("w", "text", 60, "payload"),
        ("w", b"", 0, "forget_after"),
        ("w", b"", -1, "forget_after"),
    ],
)
async def test_a_bad_beat_is_refused_and_writes_nothing(
    redis_store: RedisStore, member: str, payload: bytes, forget_after: float, field: str
) -> None:
    with pytest.raises(ValidationError, match=f"^{field}:"):
        await redis_store.beat(member, payload, forget_after_seconds=forget_after)
    assert (await redis_store.beats(within_seconds=3600)).beats == []


@pytest.mark.parametrize(("within", "limit"), [(0, 10), (60, 0), (60, 1001)])
async def test_a_bad_beats_query_is_refused(
    redis_store: RedisStore, within: float, limit: int
) -> None:
    with pytest.raises(ValidationError):
        await redis_store.beats(within_seconds=within, limit=limit)
