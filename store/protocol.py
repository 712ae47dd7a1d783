"""The store's contracts and the checks every store shares.

Store is the seed's producer contract (its Go interface, in async Python). Lifecycle is what an
operator does to stored tasks. WorkerStore is both, plus what the worker needs (claim, settle,
extend, stats, wake-ups, server facts): the worker, the CLI and the dashboard are written against
WorkerStore alone, so any store that implements it runs them.

The shared checks live here so that every store refuses exactly the same input with exactly the
same messages: the contract suite runs one set of tests against all of them.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from datetime import datetime
from typing import Any, Protocol

from store.errors import ExistsError, StateError, ValidationError
from store.lifecycle import Pruned, TaskDetails, TypeCursor
from store.presence import MAX_BEAT_PAYLOAD_BYTES, MAX_MEMBER_BYTES, Presence, TypeCounts
from store.record import (
    MAX_TYPE,
    MAX_UINT32,
    Ordering,
    Record,
    State,
    check_state,
    check_task_id,
    to_micros,
)
from store.worker_types import (
    MAX_BURST,
    MAX_RATE,
    MIN_RATE,
    Change,
    Claim,
    Rate,
    ServerFacts,
    Stats,
)

__all__ = [
    "DEFAULT_MAX_DATA_BYTES",
    "MAX_PUT_BATCH",
    "MAX_TYPE_PAGE",
    "Lifecycle",
    "Store",
    "Wakeups",
    "WorkerStore",
]

DEFAULT_MAX_DATA_BYTES = 1024 * 1024


class Store(Protocol):
    """Keeps task records; every method is a coroutine."""

    async def put_all(self, *records: Record) -> None:
        """Store every record or none; fills in id, version, created_at and next_attempt_at."""

    async def update(self, record: Record) -> None:
        """Write state, failed_attempts and next_attempt_at if the version still matches."""

    async def get_by_task_id(self, task_id: str) -> Record:
        """Return a copy of the record with this task id, or raise NotFoundError."""

    async def get_all_ready_by_state(
        self,
        state: State,
        as_of: datetime,
        cursor: int | None = None,
        limit: int = 100,
        direction: Ordering = Ordering.ASC,
    ) -> list[Record]:
        """Return a page of records in state due at or before as_of, ordered by id."""

    async def count_by_state(self, state: State) -> int:
        """Return how many records are in state."""


class Lifecycle(Protocol):
    """What an operator (CLI, dashboard) and the worker's pruner do to stored tasks, beyond the
    seed's contract; every method is a coroutine. Each either applies to all the task ids it is
    given or, on bad input, raises and writes nothing: NotFoundError (an unknown id),
    StateError (a task in a state the operation does not apply to), ValidationError."""

    async def list_tasks(
        self,
        state: State,
        as_of: datetime,
        cursor: int | None = None,
        limit: int = 100,
        direction: Ordering = Ordering.ASC,
    ) -> list[TaskDetails]:
        """get_all_ready_by_state's page (same order, cursor, directions), each record with its
        last failure; [] when the page is empty. Bounded work per server call."""

    async def list_by_type(
        self,
        state: State,
        task_type: int,
        after: TypeCursor | None = None,
        limit: int = 100,
        direction: Ordering = Ordering.ASC,
    ) -> list[TaskDetails]:
        """At most limit (1..MAX_TYPE_PAGE) tasks of one state and one type, ordered by
        next_attempt_at then task id (as UTF-8 bytes), strictly after the cursor; each with its
        last failure. If the cursor's task has left that state or moved in time, the page
        resumes after the cursor's instant. O(log N + limit) per call."""

    async def inspect(self, task_id: str) -> TaskDetails:
        """The task's record and its last failure; NotFoundError if there is no such task."""

    async def delete(self, *task_ids: str) -> int:
        """Delete the tasks and all kept for them (their ids may be put again); the count."""

    async def cancel(self, *task_ids: str) -> int:
        """PENDING tasks become FAILED now, last failure kind 'Cancelled', message 'cancelled',
        version + 1 (so a run in progress has its outcome refused); the count."""

    async def retry(self, *task_ids: str) -> int:
        """FAILED tasks go back to PENDING, due now, failed_attempts 0; the count."""

    async def retry_failed(self, task_type: int | None = None, *, limit: int = 1000) -> int:
        """One batch of at most limit (1..100000) FAILED tasks, of task_type or of any type,
        sent back as retry does; the count (fewer than limit: none was left)."""

    async def prune(
        self, *, confirmed_seconds: float, failed_seconds: float, limit: int = 100
    ) -> Pruned:
        """Delete at most limit CONFIRMED / FAILED tasks whose next_attempt_at (the instant
        they finished) is at or before now minus that state's retention; 0 keeps the state
        forever. Atomic per call, so any number of workers may prune at once."""


class Wakeups(Protocol):
    """A subscription to "a task became due now" (a task put, a retry settled due at once)."""

    async def wait(self) -> None:
        """Return at the next wake-up; wake-ups that came while nobody waited count once."""


class WorkerStore(Store, Lifecycle, Protocol):
    """The worker's side of a store: what a Worker, `retryd run` and the CLI call.

    Every failure the server may recover from is a TransientError (StoreUnavailable,
    NotReplicatedError); "now" is always the store's clock, never the caller's.
    """

    async def claim(
        self,
        max_attempts: Mapping[int, int],
        *,
        limit: int,
        lease_seconds: float,
        type_limits: Mapping[int, int] | None = None,
        rates: Mapping[int, Rate] | None = None,
    ) -> Claim:
        """Lease up to limit due PENDING tasks of the given types (type -> max_attempts), oldest
        due first; at most type_limits[t] of type t, and of a type with rates[t] only as many
        as its token bucket holds (shared by every claimer of the namespace, by the store's
        clock; one token per task leased). Claim.held_by_rate / held_by_limit name the types
        that left due tasks behind for those reasons."""

    async def settle(self, changes: Sequence[Change]) -> list[bool]:
        """Apply each change whose record still holds its version; False for the others."""

    async def extend(self, records: Sequence[Record], *, lease_seconds: float) -> list[bool]:
        """Push forward the leases still held at each record's version; False where lost."""

    async def stats(self) -> Stats:
        """Counts per state, due-now count and oldest due instant, in one snapshot."""

    def wakeups(self) -> AbstractAsyncContextManager[Wakeups]:
        """Subscribe to wake-ups for the length of an `async with` block."""

    async def count_by_type(self) -> list[TypeCounts]:
        """Tasks per state of every type, by type, in one snapshot."""

    async def beat(self, member: str, payload: bytes, *, forget_after_seconds: float) -> datetime:
        """Say member is alive with payload; forget members silent for longer than
        forget_after_seconds. Returns the store's now."""

    async def beats(self, *, within_seconds: float, limit: int = 1000) -> Presence:
        """The members that beat within the last within_seconds, latest first."""

    async def which_exist(self, task_ids: Collection[str]) -> set[str]:
        """The given task ids that are stored (one round trip, however many)."""

    async def server_facts(self) -> ServerFacts:
        """Ask the server who it is and whether it may lose acknowledged tasks."""

    async def aclose(self) -> None:
        """Release the store's connections (those it opened itself)."""


# The most records one put_all takes: 100,000 held Redis for ~1.8 s in one script, stalling every
# worker; 10,000 is ~0.2 s. Larger imports are split by the caller (`retryd put` batches).
MAX_PUT_BATCH = 10_000


def check_batch(records: Sequence[Record], max_data_bytes: int) -> None:
    """Refuse a put_all batch that no store may accept, before anything is written."""
    if not records:
        raise ValidationError("records", "put_all needs at least one record")
    if len(records) > MAX_PUT_BATCH:
        raise ValidationError(
            "records",
            f"a put_all batch holds at most {MAX_PUT_BATCH} records (MAX_PUT_BATCH), got "
            f"{len(records)}: split it",
        )
    seen: set[str] = set()
    for record in records:
        if not isinstance(record, Record):
            raise ValidationError("records", f"expected Record, got {type(record).__name__}")
        record.validate()
        check_data_size(record.data, max_data_bytes)
        if record.id > 0:
            raise ExistsError(f"task {record.task_id!r} already has id {record.id}")
        if record.task_id in seen:
            raise ExistsError(f"task {record.task_id!r} is repeated in the batch")
        seen.add(record.task_id)


def check_data_size(data: bytes, max_data_bytes: int) -> None:
    """Refuse data larger than the store's cap (a task record is not a blob store)."""
    if len(data) > max_data_bytes:
        raise ValidationError(
            "data", f"is {len(data)} bytes, more than max_data_bytes ({max_data_bytes})"
        )


def check_update(record: Record) -> int:
    """Validate a record for update and return its next_attempt_at in microseconds."""
    if not isinstance(record, Record):
        raise ValidationError("record", f"expected Record, got {type(record).__name__}")
    record.validate()
    if record.next_attempt_at is None:
        raise ValidationError("next_attempt_at", "is required to update a task")
    return to_micros("next_attempt_at", record.next_attempt_at)


def check_query(
    state: object, as_of: object, cursor: object, limit: object, direction: object
) -> tuple[State, int]:
    """Validate get_all_ready_by_state's arguments; return the state and as_of in microseconds."""
    known = check_state("state", state)
    as_of_micros = to_micros("as_of", as_of)
    if cursor is not None and (isinstance(cursor, bool) or not isinstance(cursor, int)):
        raise ValidationError("cursor", f"must be an int id or None, got {cursor!r}")
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise ValidationError("limit", f"must be an int of at least 1, got {limit!r}")
    if not isinstance(direction, Ordering):
        raise ValidationError("direction", f"must be an Ordering, got {direction!r}")
    return known, as_of_micros


# The most tasks one list_by_type call returns.
MAX_TYPE_PAGE = 10_000


def check_type_query(
    state: object, task_type: object, after: object, limit: object, direction: object
) -> tuple[State, int, tuple[int, str] | None]:
    """Validate list_by_type's arguments; return the state, the type and the cursor as
    (next_attempt_at in microseconds, task id)."""
    known = check_state("state", state)
    if isinstance(task_type, bool) or not isinstance(task_type, int):
        raise ValidationError("task_type", f"must be an int, got {task_type!r}")
    if not 1 <= task_type <= MAX_TYPE:
        raise ValidationError("task_type", f"must be in 1..{MAX_TYPE}, got {task_type}")
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_TYPE_PAGE:
        raise ValidationError("limit", f"must be an int in 1..{MAX_TYPE_PAGE}, got {limit!r}")
    if not isinstance(direction, Ordering):
        raise ValidationError("direction", f"must be an Ordering, got {direction!r}")
    if after is None:
        return known, task_type, None
    if not isinstance(after, TypeCursor):
        raise ValidationError("after", f"must be a TypeCursor or None, got {after!r}")
    micros = to_micros("after.next_attempt_at", after.next_attempt_at)
    return known, task_type, (micros, check_task_id(after.task_id))


# The state each state-changing operation applies to, for naming it in a StateError.
_APPLIES_TO = {"cancel": State.PENDING, "retry": State.FAILED}


def state_error(operation: str, task_id: str, state: State) -> StateError:
    """The error for an operation that does not apply to a task in state (one text for all
    stores)."""
    needed = _APPLIES_TO[operation]
    return StateError(
        f"task {task_id!r} is {state}, not {needed}: only a {needed} task can be "
        f"{'cancelled' if operation == 'cancel' else 'retried'}; nothing changed"
    )


def check_task_ids(task_ids: Sequence[str]) -> list[str]:
    """The task ids of a delete, cancel or retry: at least one, each valid, repeats dropped."""
    if isinstance(task_ids, str) or not task_ids:
        raise ValidationError("task_ids", "give at least one task id")
    return list(dict.fromkeys(check_task_id(t) for t in task_ids))


# The most tasks one claim may lease (claim.lua refuses more, so every store does).
MAX_CLAIM_LIMIT = 1_000_000


def check_claim(
    max_attempts: Mapping[int, int],
    limit: int,
    lease_seconds: float,
    type_limits: Mapping[int, int] | None = None,
    rates: Mapping[int, Rate] | None = None,
) -> int:
    """Validate claim's arguments; return the lease in microseconds."""
    if not max_attempts:
        raise ValidationError("types", "claim needs at least one task type")
    lease = seconds_to_micros("lease", lease_seconds)
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_CLAIM_LIMIT:
        raise ValidationError("limit", f"must be an int in 1..{MAX_CLAIM_LIMIT}, got {limit!r}")
    for task_type, most in max_attempts.items():
        check_uint32("type", task_type)
        check_uint32("max_attempts", most)
    for task_type, cap in _per_type("type_limits", type_limits, max_attempts).items():
        check_uint32(f"type_limits[{task_type}]", cap)
    for task_type, rate in _per_type("rates", rates, max_attempts).items():
        check_rate(f"rates[{task_type}]", rate)
    return lease


def _per_type(field: str, given: object, max_attempts: Mapping[int, int]) -> Mapping[int, Any]:
    """A claim's per-type argument: None, or a mapping keyed by types the claim asks for."""
    if given is None:
        return {}
    if not isinstance(given, Mapping):
        raise ValidationError(field, f"must be a mapping of task type to value, got {given!r}")
    for task_type in given:
        if task_type not in max_attempts:
            raise ValidationError(field, f"type {task_type!r} is not among the claimed types")
    return given


def check_rate(field: str, rate: object) -> Rate:
    """rate when it is a Rate within MIN_RATE..MAX_RATE per second and 1..MAX_BURST, else
    ValidationError."""
    if not isinstance(rate, Rate):
        raise ValidationError(field, f"must be a Rate, got {rate!r}")
    per_second = rate.per_second
    if (
        isinstance(per_second, bool)
        or not isinstance(per_second, int | float)
        or not MIN_RATE <= per_second <= MAX_RATE
    ):
        raise ValidationError(
            field, f"per_second must be a number in {MIN_RATE:g}..{MAX_RATE:g}, got {per_second!r}"
        )
    burst = rate.burst
    if isinstance(burst, bool) or not isinstance(burst, int) or not 1 <= burst <= MAX_BURST:
        raise ValidationError(field, f"burst must be an int in 1..{MAX_BURST}, got {burst!r}")
    return rate


def check_changes(changes: Sequence[Change]) -> None:
    """Refuse a settle batch that is empty or holds a malformed change, before any write."""
    if not changes:
        raise ValidationError("changes", "settle needs at least one change")
    for change in changes:
        check_change(change)


def check_change(change: Change) -> tuple[State, int]:
    """Validate one change; return its state and its delay in microseconds."""
    state = check_state("state", change.state)
    if not 0 <= change.failed_attempts <= MAX_UINT32:
        raise ValidationError("failed_attempts", f"must be in 0..{MAX_UINT32}")
    return state, seconds_to_micros("delay", change.delay_seconds)


def seconds_to_micros(field: str, seconds: float) -> int:
    """A duration of at least 0 seconds as integer microseconds, or ValidationError."""
    if isinstance(seconds, bool) or not isinstance(seconds, int | float) or not seconds >= 0:
        raise ValidationError(field, f"must be a number of seconds >= 0, got {seconds!r}")
    return round(seconds * 1_000_000)


def check_uint32(field: str, value: int) -> int:
    """value when it is an int in 1..MAX_UINT32, else ValidationError."""
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_UINT32:
        raise ValidationError(field, f"must be an int in 1..{MAX_UINT32}, got {value!r}")
    return value


# The most tasks one retry_failed or prune call handles: a bounded slice of work per call.
MAX_BATCH_LIMIT = 100_000


def check_batch_limit(limit: int) -> int:
    """limit when it is an int in 1..MAX_BATCH_LIMIT, else ValidationError."""
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_BATCH_LIMIT:
        raise ValidationError("limit", f"must be an int in 1..{MAX_BATCH_LIMIT}, got {limit!r}")
    return limit


# The longest span a beat or a look at beats may cover: microseconds a script holds exactly.
MAX_SPAN_MICROS = 2**53
# The most members one look at beats returns.
MAX_BEATS = 1000


def check_span(field: str, seconds: float) -> int:
    """A duration of more than 0 seconds, as microseconds."""
    micros = seconds_to_micros(field, seconds)
    if not 1 <= micros <= MAX_SPAN_MICROS:
        raise ValidationError(field, f"must be more than 0 seconds, got {seconds!r}")
    return micros


def check_beat(member: str, payload: bytes, forget_after_seconds: float) -> int:
    """Validate a beat; return forget_after in microseconds."""
    size = len(member.encode("utf-8", "surrogatepass")) if isinstance(member, str) else 0
    if not 1 <= size <= MAX_MEMBER_BYTES:
        raise ValidationError("member", f"must be a str of 1..{MAX_MEMBER_BYTES} bytes of UTF-8")
    if not isinstance(payload, bytes) or len(payload) > MAX_BEAT_PAYLOAD_BYTES:
        raise ValidationError("payload", f"must be bytes, at most {MAX_BEAT_PAYLOAD_BYTES}")
    return check_span("forget_after", forget_after_seconds)


def check_beats(within_seconds: float, limit: int) -> int:
    """Validate a look at beats; return within in microseconds."""
    within = check_span("within", within_seconds)
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_BEATS:
        raise ValidationError("limit", f"must be an int in 1..{MAX_BEATS}, got {limit!r}")
    return within
