"""The types of the worker-facing operations (claim, settle, extend, stats) of RedisStore."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from store.lifecycle import Reason
from store.record import Record, State

__all__ = ["Change", "Claim", "Claimed", "Stats"]


@dataclass(frozen=True, slots=True)
class Claimed:
    """A task leased to this worker, and the instant it had been due at."""

    record: Record
    due_at: datetime


@dataclass(frozen=True, slots=True)
class Claim:
    """What one claim leased, by the server's clock."""

    now: datetime
    tasks: list[Claimed]
    # The earliest next_attempt_at left among the claimed types' PENDING tasks (leases
    # included), so an idle worker can sleep until then; None when there is none.
    next_due: datetime | None
    # Index entries whose record was missing or damaged: set aside, never leased.
    damaged: list[str]


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
