"""The worker's exceptions: what handlers raise to steer a task, and what start-up refuses."""

from __future__ import annotations

__all__ = ["ConfigError", "Permanent", "RetryLater", "WorkerError"]


class WorkerError(Exception):
    """Raised when the worker cannot start or run; the root of the worker's own errors."""


class ConfigError(WorkerError):
    """Raised when a configuration key, value or handler module is wrong; names which."""


class Permanent(Exception):  # noqa: N818 - read at the raise site: `raise Permanent("bad input")`
    """Raised by a handler when retrying cannot help: the task becomes FAILED at once."""


class RetryLater(Exception):  # noqa: N818 - read at the raise site: `raise RetryLater(30)`
    """Raised by a handler to run the task again after `seconds`, without counting a failure."""

    def __init__(self, seconds: float, reason: str = "") -> None:
        if isinstance(seconds, bool) or not isinstance(seconds, int | float) or seconds < 0:
            raise ValueError(f"RetryLater needs a number of seconds >= 0, got {seconds!r}")
        super().__init__(reason or f"retry in {seconds}s")
        self.seconds = float(seconds)
