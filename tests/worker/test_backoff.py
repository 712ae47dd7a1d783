"""compute_backoff: exponential from the initial delay, capped at the max, jitter bounded."""

from __future__ import annotations

import pytest

from worker.backoff import compute_backoff

# (initial_delay, max_delay): sub-second, the config default, and a cap reached early.
SETTINGS = [(0.01, 0.05), (0.5, 60.0), (1.0, 3600.0), (2.0, 10.0)]
DRAWS = 20  # per attempt: the jitter is random, so each bound is checked over several draws


@pytest.mark.parametrize(("initial", "cap"), SETTINGS)
def test_every_attempt_waits_exponential_plus_bounded_jitter_under_the_cap(
    initial: float, cap: float
) -> None:
    """Attempt n waits initial*2**(n-1) plus at most initial of jitter, never past max_delay."""
    for attempt in range(1, 31):
        base = initial * 2 ** (attempt - 1)
        low, high = min(base, cap), min(base + initial, cap)
        for _ in range(DRAWS):
            delay = compute_backoff(attempt, initial_delay_seconds=initial, max_delay_seconds=cap)
            assert low <= delay <= high, (attempt, delay)


def test_late_attempts_wait_exactly_the_cap() -> None:
    """Once the exponential passes max_delay the jitter cannot push the wait beyond it."""
    delays = {
        compute_backoff(n, initial_delay_seconds=1.0, max_delay_seconds=100.0) for n in range(9, 31)
    }
    assert delays == {100.0}


def test_huge_attempt_numbers_stay_at_the_cap() -> None:
    """A task retried thousands of times does not overflow: it waits max_delay."""
    assert compute_backoff(5000, initial_delay_seconds=1.0, max_delay_seconds=30.0) == 30.0


def test_jitter_spreads_one_attempts_waits() -> None:
    """A burst of first failures does not all retry at one instant."""
    delays = [
        compute_backoff(1, initial_delay_seconds=1.0, max_delay_seconds=100.0) for _ in range(200)
    ]
    assert len(set(delays)) > 100
    assert min(delays) < 1.25
    assert max(delays) > 1.75


def test_zero_initial_delay_retries_at_once() -> None:
    assert compute_backoff(7, initial_delay_seconds=0.0, max_delay_seconds=60.0) == 0.0


@pytest.mark.parametrize("attempt", [0, -1])
def test_attempts_below_one_are_refused(attempt: int) -> None:
    with pytest.raises(ValueError, match="at least 1"):
        compute_backoff(attempt, initial_delay_seconds=1.0, max_delay_seconds=60.0)


def test_the_jitter_is_added_to_the_exponential_and_capped() -> None:
    """With the jitter fixed, the wait is exactly initial*2**(n-1) + jitter, or the cap."""

    def high(low: float, top: float) -> float:
        return top

    assert compute_backoff(
        3, initial_delay_seconds=0.5, max_delay_seconds=60.0, jitter=high
    ) == pytest.approx(2.5)
    assert (
        compute_backoff(8, initial_delay_seconds=0.5, max_delay_seconds=60.0, jitter=high) == 60.0
    )
