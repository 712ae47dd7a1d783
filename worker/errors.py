"""The worker's exceptions: what handlers raise to steer a task, and what start-up refuses."""

from __future__ import annotations

import math

__all__ = [
    "RETRY_LATER_MAX_SECONDS",
    "ConfigError",
    "Permanent",
    "RetryLater",
    "WorkerError",
    "is_delay",
]


class WorkerError(Exception):
    """Raised when the worker cannot start or run; the root of the worker's own errors."""


class ConfigError(WorkerError):
    """Raised when a configuration key, value or handler module is wrong; names which."""


class Permanent(Exception):  # noqa: N818 - read at the raise site: `raise Permanent("bad input")`
    """Raised by a handler when retrying cannot help: the task becomes FAILED at once."""


# The longest a RetryLater may put a task off; a longer delay waits this long. A week: longer
# than any Retry-After worth honouring, far below what Redis's clock arithmetic holds.
RETRY_LATER_MAX_SECONDS = 7 * 24 * 3600.0


class RetryLater(Exception):  # noqa: N818 - read at the raise site: `raise RetryLater(30)`
    """Raised by a handler to run the task again after `seconds`, without counting a failure.

    `seconds` must be a finite number >= 0 (else ValueError: raised in a handler, a failed
    attempt with that message); above RETRY_LATER_MAX_SECONDS it is capped to it.
    """

    def __init__(self, seconds: float, reason: str = "") -> None:
        if not is_delay(seconds):
            raise ValueError(f"RetryLater needs a finite number of seconds >= 0, got {seconds!r}")
        super().__init__(reason or f"retry in {seconds}s")
        self.seconds = min(float(seconds), RETRY_LATER_MAX_SECONDS)


def is_delay(seconds: object) -> bool:
    """Whether seconds is a finite int or float >= 0 (bool, NaN and infinity are not)."""
    if isinstance(seconds, bool) or not isinstance(seconds, int | float):
        return False
    return math.isfinite(seconds) and seconds >= 0
