"""Riding out a store outage: back off between tries, and log once per outage, not per tick.

One Outage is shared by every loop of a worker, so its failure count (and so its wait) climbs
with every failed call, whichever loop made it, and one outage makes one log line. A loop that
retries one call until the store is back runs it under retrying(): tenacity does the loop, the
filter (TransientError only) and the sleeping; the wait comes from this shared count.
"""

from __future__ import annotations

import time

import structlog
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, stop_never

from store import TransientError
from worker.backoff import compute_backoff
from worker.logs import describe
from worker.metrics import WorkerMetrics

__all__ = ["Outage"]

log = structlog.get_logger("retryd.redis")

# The first retry waits about this long; each failure doubles it, up to max_wait_seconds.
_FIRST_WAIT_SECONDS = 0.05
# A failure this soon after a recovery belongs to the outage that just ended.
SAME_OUTAGE_SECONDS = 1.0


class Outage:
    """Shared by every loop of a worker, so one outage makes one log line however many notice."""

    def __init__(self, metrics: WorkerMetrics, *, max_wait_seconds: float = 1.0) -> None:
        self._metrics = metrics
        # Capped at 1 s: every loop of the worker counts its failures here, so the wait climbs
        # to the cap within a second or two of an outage; a 5 s cap left a worker idle for up to
        # 5 s after Redis returned (tests/reliability: it missed a 2 s window entirely).
        self._max_wait_seconds = max_wait_seconds
        self._since: float | None = None
        self._failures = 0
        self._recovered_at = float("-inf")
        self._quiet = False  # an outage resumed within SAME_OUTAGE_SECONDS: logged already

    @property
    def ongoing(self) -> bool:
        return self._since is not None

    def failed(self, error: BaseException) -> float:
        """Count a failed call; return how long to wait before trying again."""
        self._metrics.redis_errors.inc()
        self._failures += 1
        if self._since is None:
            self._since = time.monotonic()
            # A pooled connection from before a restart fails once more just after the first
            # success: the same outage, not a new one worth two more lines.
            self._quiet = self._since - self._recovered_at < SAME_OUTAGE_SECONDS
            if not self._quiet:
                log.warning("store unavailable; retrying with backoff", error=describe(error))
        return compute_backoff(
            self._failures,
            initial_delay_seconds=_FIRST_WAIT_SECONDS,
            max_delay_seconds=self._max_wait_seconds,
        )

    def recovered(self) -> None:
        """Note a successful call; the first after an outage logs how long it lasted."""
        if self._since is not None:
            self._recovered_at = time.monotonic()
            if not self._quiet:
                down = round(self._recovered_at - self._since, 3)
                log.warning("store available again", down_seconds=down)
            self._since = None
            self._failures = 0

    def retrying(self) -> AsyncRetrying:
        """tenacity's loop for a call to retry until the store is back: `async for attempt in
        outage.retrying(): with attempt: ...`. Tries forever on TransientError, each failure
        counted here and waited out as failed() says; any other error is raised at once."""
        return AsyncRetrying(
            retry=retry_if_exception_type(TransientError),
            wait=self._wait_after,
            stop=stop_never,
            reraise=True,
        )

    def _wait_after(self, state: RetryCallState) -> float:
        error = state.outcome.exception() if state.outcome is not None else None
        assert error is not None, "retry_if_exception_type retries only after an exception"
        return self.failed(error)
