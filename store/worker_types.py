"""The values the worker-side operations take and return: claims, changes, stats, server facts.

They belong to the WorkerStore protocol (store/protocol.py), whatever store implements it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from store.lifecycle import Reason
from store.record import Record, State

__all__ = [
    "MAX_BURST",
    "MAX_RATE",
    "MIN_RATE",
    "Change",
    "Claim",
    "Claimed",
    "Rate",
    "ServerFacts",
    "Stats",
]

# The bounds of a start rate (per second) and of a bucket's burst. Together they keep a bucket's
# state (the instant it is full again, in microseconds) below 2**53, where a Lua number still
# holds it exactly: a bucket empties by at most MAX_BURST / MIN_RATE seconds (1e9).
MIN_RATE = 0.0001
MAX_RATE = 100_000.0
MAX_BURST = 100_000


@dataclass(frozen=True, slots=True)
class Claimed:
    """A task leased to this worker, and the instant it had been due at."""

    record: Record
    due_at: datetime


@dataclass(frozen=True, slots=True)
class Rate:
    """A type's start rate, shared by every claimer of a namespace: a token bucket that fills
    at per_second tokens a second up to burst tokens; each task leased takes one."""

    per_second: float  # MIN_RATE..MAX_RATE
    burst: int  # 1..MAX_BURST: the most tasks leased at once after a quiet spell


@dataclass(frozen=True, slots=True)
class Claim:
    """What one claim leased, by the server's clock."""

    now: datetime
    tasks: list[Claimed]
    # When a claim of the same types may next find work, so an idle worker can sleep until
    # then: the earliest next_attempt_at left among the claimed types' PENDING tasks (leases
    # included), where a type held back by its rate counts at its next token instead; None
    # when there is nothing left.
    next_due: datetime | None
    # Index entries whose record was missing or damaged: set aside, never leased.
    damaged: list[str]
    # Types that still had due tasks when their bucket ran dry (claim's rates), each with the
    # instant its next token is due.
    held_by_rate: Mapping[int, datetime] = field(default_factory=dict)
    # Types that still had due tasks when this claim had leased as many as their type_limits.
    held_by_limit: frozenset[int] = frozenset()


@dataclass(frozen=True, slots=True)
class Change:
    """An outcome to record: the new state, attempts, and a delay from the server's now; for a
    failed attempt, why (kept as the task's last failure, stamped with the server's now)."""

    record: Record
    state: State
    failed_attempts: int
    delay_seconds: float = 0.0
    reason: Reason | None = None


@dataclass(frozen=True, slots=True)
class Stats:
    """A consistent snapshot of a namespace's counts, for metrics."""

    now: datetime
    pending: int
    confirmed: int
    failed: int
    ready: int
    oldest_ready_at: datetime | None
    # PENDING tasks due now, by type (types with none left out): the worker reports the types
    # it has no handler for, which would otherwise wait forever, silently.
    ready_by_type: Mapping[int, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ServerFacts:
    """What the store's server says about itself, for `retryd check` and the worker's start-up.

    persistent and eviction_policy say whether the server may lose tasks it acknowledged.
    """

    version: str  # the product and its version: "redis 7.2.4", "valkey 8.0.1"
    persistent: bool  # writes survive a crash (Redis: appendonly on)
    eviction_policy: str  # "noeviction" unless the server may drop keys under memory pressure
