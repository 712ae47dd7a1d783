"""The types of the lifecycle operations: failure reasons, inspection, retention pruning.

They sit beside the seed's Record, which stays exactly as the contract defines it: a task's last
failure is kept next to its record (and pruned or deleted with it), never inside it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from store.record import Record, State

__all__ = [
    "CANCELLED",
    "MAX_REASON_KIND_BYTES",
    "MAX_REASON_MESSAGE_BYTES",
    "Failure",
    "Pruned",
    "Reason",
    "TaskDetails",
    "TypeCursor",
]

# How much of a failed attempt's error is kept, in bytes of UTF-8: enough for an exception's
# qualified name and a useful message, little enough that a million failures cost ~1 GB at most.
MAX_REASON_KIND_BYTES = 200
MAX_REASON_MESSAGE_BYTES = 1000
_CUT = "…"


@dataclass(frozen=True, slots=True)
class Reason:
    """Why an attempt failed: the exception's type name and its message, both truncated."""

    kind: str
    message: str

    @classmethod
    def of(cls, kind: str, message: str) -> Reason:
        """A reason with kind and message cut to their documented sizes."""
        return cls(
            _truncate(kind, MAX_REASON_KIND_BYTES), _truncate(message, MAX_REASON_MESSAGE_BYTES)
        )

    @classmethod
    def from_exception(cls, error: BaseException) -> Reason:
        """The reason an exception gives: 'module.Qualname' (builtins unqualified), str(error)."""
        kind = type(error).__qualname__
        module = type(error).__module__
        if module != "builtins":
            kind = f"{module}.{kind}"
        return cls.of(kind, str(error))


# The last failure every store records for a task it cancels (Lifecycle.cancel); cancel.lua
# writes the same two strings.
CANCELLED = Reason("Cancelled", "cancelled")


@dataclass(frozen=True, slots=True)
class Failure:
    """A task's last failed attempt: why, when (by the store's clock), and its failed_attempts
    count right after it."""

    kind: str
    message: str
    at: datetime
    failed_attempts: int


@dataclass(frozen=True, slots=True)
class TaskDetails:
    """A record and what is kept beside it: its last failure, if it ever failed."""

    record: Record
    last_error: Failure | None

    @property
    def cancelled(self) -> bool:
        """FAILED by a cancel (Lifecycle.cancel), not by its own attempts."""
        failure = self.last_error
        return (
            self.record.state is State.FAILED
            and failure is not None
            and failure.kind == CANCELLED.kind
        )


@dataclass(frozen=True, slots=True)
class TypeCursor:
    """Where a page of list_by_type ended: its last task's next_attempt_at and id (the time
    index's order). Made from that task's record, so it needs no other state to resume."""

    next_attempt_at: datetime
    task_id: str

    @classmethod
    def after(cls, record: Record) -> TypeCursor:
        """The cursor that resumes after record."""
        assert record.next_attempt_at is not None  # every stored record has one
        return cls(record.next_attempt_at, record.task_id)


@dataclass(frozen=True, slots=True)
class Pruned:
    """How many tasks one prune slice deleted, by state."""

    confirmed: int
    failed: int

    @property
    def total(self) -> int:
        return self.confirmed + self.failed


def _truncate(text: str, max_bytes: int) -> str:
    """text, cut at a character boundary to at most max_bytes of UTF-8 (ending in '…' if cut)."""
    encoded = text.encode("utf-8", "backslashreplace")
    if len(encoded) <= max_bytes:
        return encoded.decode("utf-8")
    room = max_bytes - len(_CUT.encode("utf-8"))
    return encoded[:room].decode("utf-8", "ignore") + _CUT
