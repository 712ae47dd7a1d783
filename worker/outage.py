"""Riding out a Redis outage: back off between tries, and log once per outage, not per tick."""

from __future__ import annotations

import time

import structlog
from tenacity import RetryCallState, wait_exponential, wait_random

from worker.logs import describe
from worker.metrics import WorkerMetrics

__all__ = ["Outage"]

log = structlog.get_logger("retryd.redis")


class Outage:
    """Shared by every loop of a worker, so one outage makes one log line however many notice."""

    def __init__(self, metrics: WorkerMetrics, *, max_wait: float = 1.0) -> None:
        self._metrics = metrics
        # Capped at 1 s: every loop of the worker counts its failures here, so the wait climbs
        # to the cap within a second or two of an outage; a 5 s cap left a worker idle for up to
        # 5 s after Redis returned (tests/reliability: it missed a 2 s window entirely).
        # Not wait_exponential_jitter(initial=...): deprecated in tenacity 9.2 (a warning each
        # call); exponential plus random jitter is the same wait on every tenacity version.
        self._wait = wait_exponential(multiplier=0.05, max=max_wait) + wait_random(0, 0.05)
        self._since: float | None = None
        self._failures = 0

    @property
    def ongoing(self) -> bool:
        return self._since is not None

    def failed(self, error: BaseException) -> float:
        """Count a failed call; return how long to wait before trying again."""
        self._metrics.redis_errors.inc()
        self._failures += 1
        if self._since is None:
            self._since = time.monotonic()
            log.warning("redis unavailable; retrying with backoff", error=_describe(error))
        state = RetryCallState(retry_object=None, fn=None, args=(), kwargs={})  # type: ignore[arg-type]
        state.attempt_number = self._failures
        return float(self._wait(state))

    def recovered(self) -> None:
        """Note a successful call; the first after an outage logs how long it lasted."""
        if self._since is not None:
            down = round(time.monotonic() - self._since, 3)
            log.warning("redis available again", down_seconds=down)
            self._since = None
            self._failures = 0


def _describe(error: BaseException) -> str:
    # The error's kind and message; redis-py puts host and port there, never the password.
    return describe(error)
