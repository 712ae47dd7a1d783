"""Who is alive on a namespace, and what each task type holds: for dashboards and operators.

Presence is a heartbeat board: each worker process beats every few seconds with an opaque
payload (the store never reads it), and whoever looks sees the members that beat recently.
TypeCounts is the per-type breakdown of Stats' per-state counts.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

__all__ = ["MAX_BEAT_PAYLOAD_BYTES", "MAX_MEMBER_BYTES", "Beat", "Presence", "TypeCounts"]

MAX_MEMBER_BYTES = 256
MAX_BEAT_PAYLOAD_BYTES = 8192


@dataclass(frozen=True, slots=True)
class Beat:
    """One member's latest beat: when (by the store's clock) and what it reported."""

    member: str
    at: datetime
    payload: bytes


@dataclass(frozen=True, slots=True)
class Presence:
    """The members that beat recently, latest first, and the store's now when asked."""

    now: datetime
    beats: list[Beat]


@dataclass(frozen=True, slots=True)
class TypeCounts:
    """How many tasks of one type are in each state."""

    type: int
    pending: int
    confirmed: int
    failed: int
