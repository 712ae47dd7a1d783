"""A type's start-rate bucket, as MemoryStore and the PostgreSQL stores keep it.

claim.lua does the very same arithmetic, in the same order, on the same doubles, so every store
hands out the same tokens (tests/store/test_worker_contract.py holds them to it).

A bucket is kept as one number: the instant, in microseconds of the store's clock, at which it
is full again (a bucket never used, or whose instant has passed, is full). It holds
burst - (full_at - now) / interval tokens at now, interval being 1e6 / per_second microseconds
per token; taking n tokens pushes full_at n intervals further. Only whole tokens are handed out.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import datetime

from store.record import from_micros, to_micros
from store.worker_types import Claim, Claimed, Rate

__all__ = ["claim_result", "current", "next_token_at", "take", "tokens"]

# A bucket exactly n tokens short by arithmetic may come out a hair more than n short in
# doubles: this much of a token is forgiven, so a boundary is not one token short.
_TOLERANCE = 1e-6


def interval_us(rate: Rate) -> float:
    """Microseconds per token."""
    return 1e6 / rate.per_second


def current(full_at: float | None, now: int, rate: Rate) -> float | None:
    """The bucket's full_at as this rate reads it: no emptier than empty, so a bucket last used
    at a slower rate (another worker's settings, or this one's before a restart) refills at
    this one's; None (full) when never used or not a number."""
    if full_at is None or full_at != full_at:
        return None
    return min(full_at, now + rate.burst * interval_us(rate))


def tokens(full_at: float | None, now: int, rate: Rate) -> int:
    """Whole tokens in the bucket at now (full_at None: never used, so full)."""
    if full_at is None or full_at <= now:
        return rate.burst
    short = (full_at - now) / interval_us(rate)
    return max(math.floor(rate.burst - short + _TOLERANCE), 0)


def take(full_at: float | None, now: int, rate: Rate, count: int) -> float:
    """The bucket's full_at after count tokens were taken at now."""
    base = now if full_at is None or full_at < now else full_at
    return base + count * interval_us(rate)


def next_token_at(full_at: float, rate: Rate) -> int:
    """The first microsecond at which a bucket full again at full_at holds a whole token."""
    return math.ceil(full_at - (rate.burst - 1) * interval_us(rate))


def claim_result(
    now: datetime,
    tasks: list[Claimed],
    first: Mapping[int, datetime],
    caps: Mapping[int, int],
    rates: Mapping[int, Rate],
    full: Mapping[int, float | None],
    leased: Mapping[int, int],
) -> Claim:
    """A claim's answer from what is left after it, per type, as claim.lua reports it.

    first holds the earliest next_attempt_at among each claimed type's PENDING tasks after the
    claim (types with none left out), full each rated type's bucket after it, leased how many
    of each type it leased."""
    now_us = to_micros("now", now)
    held_by_rate: dict[int, datetime] = {}
    held_by_limit: set[int] = set()
    next_due: datetime | None = None
    for task_type, earliest in first.items():
        at = earliest
        if earliest <= now and task_type in rates:
            bucket = full.get(task_type)
            if tokens(bucket, now_us, rates[task_type]) < 1:
                assert bucket is not None, "a full bucket holds burst >= 1 tokens"
                at = held_by_rate[task_type] = from_micros(next_token_at(bucket, rates[task_type]))
        capped = task_type in caps and leased.get(task_type, 0) >= caps[task_type]
        if earliest <= now and capped:
            held_by_limit.add(task_type)
        next_due = at if next_due is None else min(next_due, at)
    return Claim(
        now=now,
        tasks=tasks,
        next_due=next_due,
        damaged=[],
        held_by_rate=held_by_rate,
        held_by_limit=frozenset(held_by_limit),
    )
