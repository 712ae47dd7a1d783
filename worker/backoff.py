"""How long a failed task waits before its next attempt: exponential, capped, jittered."""

from __future__ import annotations

from tenacity import RetryCallState, wait_exponential, wait_random

__all__ = ["compute_backoff"]


def compute_backoff(failed_attempts: int, *, initial_delay: float, max_delay: float) -> float:
    """Seconds to wait after the failed_attempts-th failure (1 for the first).

    initial_delay * 2**(failed_attempts - 1) plus up to initial_delay of jitter, never more than
    max_delay: the jitter spreads a burst of failures so they do not all retry at one instant.
    """
    if failed_attempts < 1:
        raise ValueError(f"failed_attempts must be at least 1, got {failed_attempts}")
    if initial_delay <= 0 or max_delay <= 0:
        return 0.0
    # Not wait_exponential_jitter(initial=...): tenacity 9.2 deprecates `initial` with a
    # DeprecationWarning on every call, and its replacement `multiplier` is missing before 9.2.
    wait = wait_exponential(multiplier=initial_delay, max=max_delay) + wait_random(0, initial_delay)
    state = RetryCallState(retry_object=None, fn=None, args=(), kwargs={})  # type: ignore[arg-type]
    state.attempt_number = failed_attempts
    return min(float(wait(state)), max_delay)
