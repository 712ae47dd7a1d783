"""outcomes.decide and release: the Change a handler's result writes, and its outcome's name."""

from __future__ import annotations

from store import Record, State
from worker import Permanent, RetryLater
from worker.config import RetrySettings
from worker.outcomes import Outcome, decide, release

RETRY = RetrySettings(max_attempts=3, initial_delay=2.0, max_delay=60.0, timeout=5.0)


def record(failed_attempts: int = 0) -> Record:
    return Record(task_id="t1", type=7, data=b"x", failed_attempts=failed_attempts, version=4)


def test_success_confirms_without_touching_attempts() -> None:
    change, outcome = decide(record(1), None, RETRY)
    assert outcome is Outcome.CONFIRMED
    assert (change.state, change.failed_attempts, change.delay_seconds) == (State.CONFIRMED, 1, 0)
    assert change.record.version == 4  # the version the claim holds: settle checks it


def test_an_exception_counts_a_failure_and_waits_the_backoff() -> None:
    change, outcome = decide(record(1), RuntimeError("boom"), RETRY)
    assert outcome is Outcome.RETRIED
    assert (change.state, change.failed_attempts) == (State.PENDING, 2)
    assert 4.0 <= change.delay_seconds <= 6.0  # 2 * 2**(2-1), plus up to 2 s of jitter


def test_a_timeout_is_a_failure_like_any_other() -> None:
    change, outcome = decide(record(0), TimeoutError(), RETRY)
    assert outcome is Outcome.RETRIED
    assert (change.state, change.failed_attempts) == (State.PENDING, 1)
    assert 2.0 <= change.delay_seconds <= 4.0


def test_the_failure_that_reaches_max_attempts_fails_the_task() -> None:
    change, outcome = decide(record(2), RuntimeError("third"), RETRY)
    assert outcome is Outcome.FAILED
    assert (change.state, change.failed_attempts) == (State.FAILED, 3)


def test_one_attempt_allowed_fails_on_the_first_error() -> None:
    retry = RetrySettings(max_attempts=1)
    change, outcome = decide(record(0), ValueError(), retry)
    assert (outcome, change.state, change.failed_attempts) == (Outcome.FAILED, State.FAILED, 1)


def test_permanent_fails_at_once_with_attempts_left() -> None:
    change, outcome = decide(record(0), Permanent("bad input"), RETRY)
    assert outcome is Outcome.FAILED
    assert (change.state, change.failed_attempts) == (State.FAILED, 1)


def test_retry_later_waits_as_told_without_counting_a_failure() -> None:
    change, outcome = decide(record(2), RetryLater(42.5), RETRY)
    assert outcome is Outcome.RETRIED
    assert (change.state, change.failed_attempts, change.delay_seconds) == (
        State.PENDING,
        2,
        42.5,
    )


def test_release_gives_the_task_back_due_now_uncounted() -> None:
    change, outcome = release(record(2))
    assert outcome is Outcome.RELEASED
    assert (change.state, change.failed_attempts, change.delay_seconds) == (State.PENDING, 2, 0)
