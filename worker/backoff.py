"""How long a failed task waits before its next attempt: exponential, capped, jittered.

A pure function of its arguments (and of `jitter`, random by default), so every rule of it is
tested exhaustively in tests/worker/test_backoff.py. The worker's own reconnect waits (see
worker/outage.py) use it too, with their own numbers.
"""

from __future__ import annotations

import random
from collections.abc import Callable

__all__ = ["compute_backoff"]

# Doublings past this many would overflow a float; the cap is reached long before.
_MAX_DOUBLINGS = 1023


def compute_backoff(
    failed_attempts: int,
    *,
    initial_delay_seconds: float,
    max_delay_seconds: float,
    jitter: Callable[[float, float], float] = random.uniform,
) -> float:
    """Seconds to wait after the failed_attempts-th failure (1 for the first).

    initial_delay_seconds * 2**(failed_attempts - 1), plus jitter(0, initial_delay_seconds),
    never more than max_delay_seconds: the jitter spreads a burst of failures so they do not
    all retry at one instant. 0 when either delay is 0 (retry at once).
    """
    if failed_attempts < 1:
        raise ValueError(f"failed_attempts must be at least 1, got {failed_attempts}")
    if initial_delay_seconds <= 0 or max_delay_seconds <= 0:
        return 0.0
    doublings = failed_attempts - 1
    if doublings > _MAX_DOUBLINGS:
        return float(max_delay_seconds)
    exponential = initial_delay_seconds * 2.0**doublings
    return min(exponential + jitter(0.0, initial_delay_seconds), float(max_delay_seconds))
