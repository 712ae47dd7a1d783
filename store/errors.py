"""The store's exceptions: one root, a shallow hierarchy, one "raised when" line each."""

from __future__ import annotations

__all__ = [
    "ExistsError",
    "NotFoundError",
    "NotReplicatedError",
    "SchemaVersionError",
    "StaleVersionError",
    "StateError",
    "StoreAccessDenied",
    "StoreError",
    "StoreUnavailable",
    "TransientError",
    "ValidationError",
]


class StoreError(Exception):
    """Raised when a store operation cannot be carried out; the root of every store error."""


class NotFoundError(StoreError):
    """Raised when no task matches a lookup or a query."""


class ExistsError(StoreError):
    """Raised when put_all is given a task that is already stored, repeated, or carries an id."""


class StaleVersionError(StoreError):
    """Raised when update finds the task missing or at another version than the caller's."""


class StateError(StoreError):
    """Raised when an operation does not apply to a task in its current state (cancel of a
    CONFIRMED task, retry of a PENDING one); nothing was written."""


class SchemaVersionError(StoreError):
    """Raised when a namespace's schema (on PostgreSQL) is missing or at a version this retryd
    cannot use; the message says what to run (`retryd migrate`, or an upgrade of retryd)."""


class TransientError(StoreError):
    """Raised when a call failed for a reason that passes: the same call may succeed later.

    The worker rides these out with backoff; every other StoreError is a refusal to act on.
    """


class StoreUnavailable(TransientError):  # noqa: N818 - `except StoreUnavailable` reads as the state
    """Raised when the store's server cannot be reached, refuses or fails a call, or does not
    answer in time (a connection lost, a failover, a server still loading its data)."""

    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(f"{kind}: {detail}" if detail else kind)
        # What went wrong, in a word: the client library's error class ("ConnectionError").
        # Safe to show anywhere; detail names hosts and ports, never a password.
        self.kind = kind
        self.detail = detail


class StoreAccessDenied(StoreUnavailable):
    """Raised when the server refuses our credentials or a command (ACL): unavailable to us
    until an operator mends the user or its rules, so still worth retrying in a daemon."""


class NotReplicatedError(TransientError):
    """Raised when a write was not confirmed by replicas_to_ack replicas in time: it may be lost
    in a failover, so it must not be taken as acknowledged."""


class ValidationError(StoreError, ValueError):
    """Raised when a record or an argument is malformed; the message names the field."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem
