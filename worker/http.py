"""The observability listener: /metrics, /healthz and /readyz on a minimal asyncio HTTP server.

One small HTTP/1.1 server, GET only, one request per connection, bounded in size and time, so a
stuck or hostile client cannot pin memory or a task. The store gauges are read from Redis when
scraped, by one stats() call that is cached for a second: any number of scrapers and probes cost
Redis at most one call per second. This module must never put a task id in a label, nor anything
of a Redis URL (passwords) in a response.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

import structlog
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge
from prometheus_client import generate_latest as render
from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from store import Stats, StoreError, WorkerStore
from worker.config import MetricsSettings
from worker.logs import error_kind
from worker.metrics import build_version, unhandled_ready

__all__ = ["Exposed", "Ticking", "start_observability_server"]

log = structlog.get_logger("retryd.http")

MAX_REQUEST_BYTES = 8 * 1024  # a request line and headers; GET has no body worth reading
READ_TIMEOUT_SECONDS = 5.0  # a client that has not sent its request by then is dropped
WRITE_TIMEOUT_SECONDS = 5.0
STATS_CACHE_SECONDS = 1.0
# Under Prometheus' default 10 s scrape timeout: a hung Redis costs a scrape its store gauges,
# not the whole scrape.
STATS_TIMEOUT_SECONDS = 3.0
# /healthz tolerates this long without a tick at least: during a Redis outage a claim may hang
# for the client's 10 s socket timeout and then back off; probes must not flap through that
# and restart a healthy worker.
MIN_STALL_SECONDS = 20.0
STALL_POLL_PERIODS = 3

# Whatever a stats() call may fail with when Redis is away or refuses, or STATS_TIMEOUT_SECONDS
# running out: counted, never raised.
_STATS_ERRORS = (StoreError, TimeoutError)

_REASONS = {
    200: "OK",
    404: "Not Found",
    405: "Method Not Allowed",
    408: "Request Timeout",
    400: "Bad Request",
    431: "Request Header Fields Too Large",
    500: "Internal Server Error",
    503: "Service Unavailable",
}
_JSON = "application/json"


class Exposed(Protocol):
    """What /metrics renders: a Worker's metrics, or a supervisor's view of all its processes."""

    @property
    def registry(self) -> Collector: ...

    @property
    def redis_errors(self) -> Counter: ...


class Ticking(Protocol):
    """What /healthz watches: a Worker, or a supervisor (its least recent process's tick)."""

    @property
    def last_tick(self) -> float: ...

    @property
    def poll_interval(self) -> float: ...

    @property
    def handled_types(self) -> frozenset[int]: ...


@dataclass(frozen=True, slots=True)
class _Response:
    status: int
    content_type: str
    body: bytes
    extra_headers: tuple[tuple[str, str], ...] = ()


async def start_observability_server(
    settings: MetricsSettings,
    *,
    store: WorkerStore,
    metrics: Exposed | None,
    worker: Ticking | None,
    min_stall_seconds: float = MIN_STALL_SECONDS,
) -> asyncio.Server:
    """Listen on settings.host:port (port 0: an ephemeral port, read from server.sockets).

    metrics and worker are None in `retryd metrics` mode: the store gauges alone, /healthz 200.
    min_stall_seconds lowers /healthz's floor for tests; operators keep the default.
    """
    site = _Site(store, metrics, worker, min_stall_seconds)
    server = await asyncio.start_server(
        site.serve_connection, settings.host, settings.port, limit=MAX_REQUEST_BYTES
    )
    bound = server.sockets[0].getsockname()
    log.info("metrics listening", host=bound[0], port=bound[1])
    return server


@dataclass(frozen=True, slots=True)
class _StatsRead:
    """One successful stats() call and when it returned (time.monotonic())."""

    stats: Stats
    read_at: float


def _oldest_ready_age(stats: Stats) -> float:
    if stats.oldest_ready_at is None:
        return 0.0
    return max((stats.now - stats.oldest_ready_at).total_seconds(), 0.0)


class _StoreGauges(Collector):
    """The store gauges from the last Stats read, and how old that read is.

    While Redis cannot be read the last values stay (a gauge that vanished would resolve the
    alerts on it silently, mid-outage), the oldest due task's age keeps growing (nobody can
    claim it meanwhile), and retryd_store_stats_age_seconds says how stale the rest is.
    """

    def __init__(
        self, stats: Stats, stale_seconds: float, handled_types: frozenset[int] | None
    ) -> None:
        self._stats = stats
        self._stale_seconds = stale_seconds
        self._handled = handled_types

    def collect(self) -> Iterable[Metric]:
        stats, stale_seconds = self._stats, self._stale_seconds
        tasks = GaugeMetricFamily("retryd_tasks", "Tasks in the store by state.", labels=["state"])
        for state, count in (
            ("pending", stats.pending),
            ("confirmed", stats.confirmed),
            ("failed", stats.failed),
        ):
            tasks.add_metric([state], count)
        yield tasks
        yield GaugeMetricFamily(
            "retryd_tasks_ready",
            "PENDING tasks due now (tasks under a lease excluded).",
            value=stats.ready,
        )
        age = _oldest_ready_age(stats)
        yield GaugeMetricFamily(
            "retryd_oldest_ready_age_seconds",
            "How long the oldest due task has waited, by the Redis server's clock (0 if none).",
            value=age + stale_seconds if stats.oldest_ready_at is not None else age,
        )
        yield GaugeMetricFamily(
            "retryd_store_stats_age_seconds",
            "Seconds since the store gauges were last read from Redis (0 to 1 normally).",
            value=stale_seconds,
        )
        if self._handled is not None:
            yield GaugeMetricFamily(
                "retryd_tasks_ready_unhandled",
                "Tasks due now of types this worker has no handler for: they wait, unclaimed.",
                value=sum(unhandled_ready(stats, self._handled).values()),
            )


class _StatsCache:
    """One store.stats() call per STATS_CACHE_SECONDS, shared by every concurrent request."""

    def __init__(self, store: WorkerStore, errors: Counter, handled: frozenset[int] | None) -> None:
        self._store = store
        self._errors = errors
        self._handled = handled
        self._lock = asyncio.Lock()
        self._last: _StatsRead | None = None
        self._error: str | None = None
        self._fetched_at = float("-inf")
        self._unhandled_seen: frozenset[int] = frozenset()

    async def get(self) -> tuple[_StatsRead | None, str | None]:
        """The last successful read (kept through an outage) and why the latest one failed."""
        async with self._lock:  # concurrent scrapes wait for one call instead of each making one
            if time.monotonic() - self._fetched_at >= STATS_CACHE_SECONDS:
                await self._refresh()
            return self._last, self._error

    @property
    def stale_seconds(self) -> float:
        """How old the last read was at the latest attempt: 0 while Redis answers, and the
        same for every scrape served from one cached attempt."""
        if self._last is None:
            return 0.0
        return max(self._fetched_at - self._last.read_at, 0.0)

    async def _refresh(self) -> None:
        try:
            async with asyncio.timeout(STATS_TIMEOUT_SECONDS):
                stats = await self._store.stats()
        except _STATS_ERRORS as error:
            self._errors.inc()
            kind = error_kind(error)
            if self._error is None:
                log.warning("store stats unavailable", error=kind)
            # The kind only: the client's messages name hosts, and a URL could carry a password.
            self._error = f"store unavailable ({kind})"
        else:
            if self._error is not None:
                log.info("store stats available again")
            self._error = None
            self._last = _StatsRead(stats, time.monotonic())
            self._warn_about_unhandled(stats)
        # Set after the call, so a slow failing call is not retried by the next scrape at once.
        self._fetched_at = time.monotonic()

    def _warn_about_unhandled(self, stats: Stats) -> None:
        """Log once for each type that starts waiting with no handler in this worker."""
        if self._handled is None:
            return
        waiting = unhandled_ready(stats, self._handled)
        new = frozenset(waiting) - self._unhandled_seen
        if new:
            log.warning(
                "tasks are due of types no handler is registered for; they wait unclaimed",
                types={t: waiting[t] for t in sorted(new)},
            )
        self._unhandled_seen = frozenset(waiting)


class _Site:
    """The three endpoints and the connection handling around them."""

    def __init__(
        self,
        store: WorkerStore,
        metrics: Exposed | None,
        worker: Ticking | None,
        min_stall_seconds: float,
    ) -> None:
        self._registry, errors = _registry_of(metrics)
        self._handled = None if worker is None else worker.handled_types
        self._stats = _StatsCache(store, errors, self._handled)
        self._worker = worker
        self._min_stall = min_stall_seconds
        self._routes = {
            "/metrics": self._metrics,
            "/healthz": self._healthz,
            "/readyz": self._readyz,
        }

    async def serve_connection(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        try:
            response = await self._respond(reader)
            writer.write(_encode(response))
            async with asyncio.timeout(WRITE_TIMEOUT_SECONDS):
                await writer.drain()
        except (ConnectionError, TimeoutError):
            pass  # the client left or stopped reading; nothing more is owed to it
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError, TimeoutError):
                async with asyncio.timeout(WRITE_TIMEOUT_SECONDS):
                    await writer.wait_closed()

    async def _respond(self, reader: asyncio.StreamReader) -> _Response:
        try:
            async with asyncio.timeout(READ_TIMEOUT_SECONDS):
                head = await reader.readuntil(b"\r\n\r\n")
        except TimeoutError:
            return _status(408, "request not received in time")
        except asyncio.LimitOverrunError:
            return _status(431, "request head too large")
        except asyncio.IncompleteReadError:
            return _status(400, "incomplete request")
        parts = head.split(b"\r\n", 1)[0].split(b" ")
        if len(parts) != 3 or not parts[2].startswith(b"HTTP/1."):
            return _status(400, "malformed request line")
        method, target = parts[0], parts[1].decode("latin-1").split("?", 1)[0]
        route = self._routes.get(target)
        if route is None:
            return _status(404, "unknown path (try /metrics, /healthz, /readyz)")
        if method != b"GET":
            return _status(405, "GET only", extra_headers=(("Allow", "GET"),))
        try:
            return await route()
        except Exception:  # a bug must cost one response, not the listener
            log.exception("observability endpoint failed", path=target)
            return _status(500, "internal error")

    async def _metrics(self) -> _Response:
        last, _ = await self._stats.get()
        body = render(self._registry)
        if last is not None:
            gauges = _StoreGauges(last.stats, self._stats.stale_seconds, self._handled)
            body += render(gauges)
        return _Response(200, CONTENT_TYPE_LATEST, body)

    async def _healthz(self) -> _Response:
        if self._worker is None:
            return _status(200)  # `retryd metrics`: no loop to watch; the process answers
        limit = max(STALL_POLL_PERIODS * self._worker.poll_interval, self._min_stall)
        quiet = time.monotonic() - self._worker.last_tick
        if quiet == float("inf"):
            return _status(503, "a worker loop has ended (see the error log); restart the process")
        if quiet > limit:
            return _status(503, f"worker loop has not ticked for {quiet:.1f} s (limit {limit:g} s)")
        return _status(200)

    async def _readyz(self) -> _Response:
        _, error = await self._stats.get()
        if error is not None:
            return _status(503, error)
        return _status(200)


def _registry_of(metrics: Exposed | None) -> tuple[Collector, Counter]:
    """The registry /metrics renders and the counter of failed Redis calls in it.

    Without a worker (`retryd metrics`) a registry of its own holds just the error counter and
    the build info: the handler series would be always-zero noise there.
    """
    if metrics is not None:
        return metrics.registry, metrics.redis_errors
    registry = CollectorRegistry()
    errors = Counter("retryd_redis_errors", "Failed Redis calls.", registry=registry)
    Gauge("retryd_build_info", "retryd's version.", ["version"], registry=registry).labels(
        version=build_version()
    ).set(1)
    return registry, errors


def _status(
    status: int, reason: str | None = None, extra_headers: tuple[tuple[str, str], ...] = ()
) -> _Response:
    """A small JSON answer: {"status": "ok"} or {"status": "unavailable", "reason": ...}."""
    if status == 200:
        document = {"status": "ok"}
    else:
        word = "unavailable" if status == 503 else "error"
        document = {"status": word, "reason": reason or _REASONS[status]}
    return _Response(status, _JSON, json.dumps(document).encode(), extra_headers)


def _encode(response: _Response) -> bytes:
    headers = [
        ("Content-Type", response.content_type),
        ("Content-Length", str(len(response.body))),
        ("Connection", "close"),
        ("Cache-Control", "no-store"),
        *response.extra_headers,
    ]
    lines = [f"HTTP/1.1 {response.status} {_REASONS[response.status]}"]
    lines += [f"{name}: {value}" for name, value in headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + response.body
