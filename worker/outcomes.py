"""What a handler's result means for its task: the Change to write and the outcome's name."""

from __future__ import annotations

import enum

from store import Change, Reason, Record, State
from worker.backoff import compute_backoff
from worker.config import RetrySettings
from worker.errors import RETRY_LATER_MAX_SECONDS, Permanent, RetryLater, is_delay

__all__ = ["Outcome", "decide", "release"]


class Outcome(enum.Enum):
    """How a run ended, as counted in retryd_task_runs_total{outcome}."""

    CONFIRMED = "confirmed"
    RETRIED = "retried"
    FAILED = "failed"
    RELEASED = "released"
    CONFLICT = "conflict"  # the outcome was refused: another worker holds the task now


def decide(
    record: Record, error: BaseException | None, retry: RetrySettings
) -> tuple[Change, Outcome]:
    """The change that records this run: success, a retry with backoff, or FAILED."""
    if error is None:
        return Change(record, State.CONFIRMED, record.failed_attempts), Outcome.CONFIRMED
    if isinstance(error, RetryLater) and is_delay(error.seconds):
        # Checked again here: a handler may set .seconds after construction.
        delay = min(error.seconds, RETRY_LATER_MAX_SECONDS)
        return Change(record, State.PENDING, record.failed_attempts, delay), Outcome.RETRIED
    failed = record.failed_attempts + 1
    reason = Reason.from_exception(error)  # kept beside the task as its last failure
    if isinstance(error, Permanent) or failed >= retry.max_attempts:
        return Change(record, State.FAILED, failed, reason=reason), Outcome.FAILED
    delay = compute_backoff(
        failed, initial_delay_seconds=retry.initial_delay, max_delay_seconds=retry.max_delay
    )
    return Change(record, State.PENDING, failed, delay, reason), Outcome.RETRIED


def release(record: Record) -> tuple[Change, Outcome]:
    """Give an unfinished task back, due now, without counting a failure (shutdown)."""
    return Change(record, State.PENDING, record.failed_attempts), Outcome.RELEASED
