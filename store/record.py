"""The task record, its state, and the rules every store checks before writing one."""

from __future__ import annotations

import dataclasses
import enum
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from store.errors import ValidationError

__all__ = [
    "END_OF_TIME",
    "MAX_TASK_ID_BYTES",
    "MAX_TYPE",
    "MAX_UINT32",
    "Ordering",
    "Record",
    "State",
]

MAX_UINT32 = 2**32 - 1
MAX_TYPE = MAX_UINT32
MAX_TASK_ID_BYTES = 1024
MAX_REFERENCE_ID_BYTES = 1024

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_MICROSECOND = timedelta(microseconds=1)
# Timestamps are stored as integer microseconds in Lua numbers and sorted-set scores, both IEEE
# doubles: beyond 2**53 they would silently lose precision, so such instants are refused instead.
_MAX_ABS_MICROS = 2**53
# The latest instant a store can hold (year 2255): as_of for "every task, due or not".
END_OF_TIME = _EPOCH + timedelta(microseconds=_MAX_ABS_MICROS)


class State(enum.IntEnum):
    """Where a task is in its life; the numbers are stored, so they never change."""

    UNKNOWN = 0
    PENDING = 1
    CONFIRMED = 2
    FAILED = 3

    def __str__(self) -> str:
        return self.name.lower()


class Ordering(enum.Enum):
    """The direction of a page of records ordered by id."""

    ASC = "asc"
    DESC = "desc"


@dataclass(slots=True)
class Record:
    """One task: what to do (type, data) and where it stands (state, attempts, schedule)."""

    task_id: str
    type: int
    data: bytes
    reference_id: str | None = None
    state: State = State.PENDING
    failed_attempts: int = 0
    next_attempt_at: datetime | None = None
    created_at: datetime | None = None
    id: int = 0
    version: int = 0

    def clone(self) -> Record:
        """Return an independent copy (every field is immutable, so a shallow copy is deep)."""
        # Spelled out rather than dataclasses.replace: the worker clones every task it runs,
        # and replace's field introspection cost more than the rest of the hand-off.
        return Record(
            self.task_id,
            self.type,
            self.data,
            self.reference_id,
            self.state,
            self.failed_attempts,
            self.next_attempt_at,
            self.created_at,
            self.id,
            self.version,
        )

    def copy_to(self, dst: Record) -> None:
        """Overwrite every field of dst with this record's."""
        for name in _FIELD_NAMES:
            setattr(dst, name, getattr(self, name))

    def validate(self) -> None:
        """Raise ValidationError naming the first malformed field."""
        _check_text("task_id", self.task_id, MAX_TASK_ID_BYTES, required=True)
        _check_int("type", self.type, 1, MAX_TYPE)
        if not isinstance(self.data, bytes):
            raise ValidationError("data", f"must be bytes, got {type(self.data).__name__}")
        if self.reference_id is not None:
            _check_text("reference_id", self.reference_id, MAX_REFERENCE_ID_BYTES, required=False)
        check_state("state", self.state)
        _check_int("failed_attempts", self.failed_attempts, 0, MAX_UINT32)
        if self.next_attempt_at is not None:
            to_micros("next_attempt_at", self.next_attempt_at)
        if self.created_at is not None:
            to_micros("created_at", self.created_at)
        _check_int("id", self.id, 0, 2**63 - 1)
        _check_int("version", self.version, 0, 2**63 - 1)


_FIELD_NAMES = tuple(field.name for field in dataclasses.fields(Record))


def check_state(field: str, state: object) -> State:
    """Return state as a State, refusing UNKNOWN and anything that is not a known state."""
    if type(state) is State and state is not State.UNKNOWN:
        return state  # the common case, without the enum lookup below
    if isinstance(state, bool) or not isinstance(state, int):
        raise ValidationError(field, f"must be a State, got {state!r}")
    try:
        known = State(state)
    except ValueError:
        raise ValidationError(field, f"{state!r} is not a State") from None
    if known is State.UNKNOWN:
        raise ValidationError(field, "must not be UNKNOWN")
    return known


def to_micros(field: str, moment: object) -> int:
    """Return an aware datetime as integer microseconds since the epoch, exactly."""
    if not isinstance(moment, datetime):
        raise ValidationError(field, f"must be a datetime, got {type(moment).__name__}")
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValidationError(field, "must be timezone-aware (naive datetimes are ambiguous)")
    micros = (moment - _EPOCH) // _ONE_MICROSECOND
    if abs(micros) > _MAX_ABS_MICROS:
        raise ValidationError(field, f"{moment.isoformat()} is outside the storable range")
    return micros


def from_micros(micros: int) -> datetime:
    """Return integer microseconds since the epoch as an aware UTC datetime."""
    # Positional (days, seconds, microseconds): the keyword form is ~40% slower, and the
    # worker converts three timestamps per task it claims.
    return _EPOCH + timedelta(0, 0, micros)


def to_utc(moment: datetime) -> datetime:
    """The same instant, expressed in UTC."""
    return moment.astimezone(UTC)


def check_task_id(task_id: object) -> str:
    """Return task_id when it is a storable task id, else raise ValidationError."""
    return _check_text("task_id", task_id, MAX_TASK_ID_BYTES, required=True)


def _check_text(field: str, value: object, max_bytes: int, *, required: bool) -> str:
    if not isinstance(value, str):
        raise ValidationError(field, f"must be a str, got {type(value).__name__}")
    if required and not value:
        raise ValidationError(field, "must not be empty")
    try:
        size = len(value.encode("utf-8"))
    except UnicodeEncodeError:
        raise ValidationError(field, "is not encodable as UTF-8 (lone surrogate)") from None
    if size > max_bytes:
        raise ValidationError(field, f"is {size} bytes of UTF-8, more than {max_bytes}")
    return value


def _check_int(field: str, value: object, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValidationError(field, f"must be an int, got {type(value).__name__}")
    if not low <= value <= high:
        raise ValidationError(field, f"must be in {low}..{high}, got {value}")
    return value
