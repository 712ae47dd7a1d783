"""The worker's own Prometheus metrics, on a private registry that tests can read.

Labels are bounded: `type` takes only registered task types, `outcome` the five Outcome names;
never a task id. Children are created once at start so the hot path does no label lookups.
"""

from __future__ import annotations

import collections
import functools
from bisect import bisect_left
from collections.abc import Callable, Iterable, Mapping
from importlib.metadata import PackageNotFoundError, version

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from store import Rate, Stats
from worker.outcomes import Outcome

__all__ = ["FLOW_LIMITS", "WORKER_LOOPS", "WorkerMetrics", "build_version", "unhandled_ready"]

# The worker's loops, as labelled in retryd_worker_errors_total{loop}.
WORKER_LOOPS = ("claimer", "writer", "leases", "wake", "prune", "lag")
# A type's limits, as labelled in retryd_type_held_back_total{limit}.
FLOW_LIMITS = ("concurrency", "rate")

# Handler time and start delay span sub-millisecond no-ops to multi-minute jobs.
_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)


def unhandled_ready(stats: Stats, handled_types: Iterable[int]) -> dict[int, int]:
    """Tasks due now by type, for the types that have no handler among handled_types."""
    handled = set(handled_types)
    return {t: n for t, n in sorted(stats.ready_by_type.items()) if t not in handled}


@functools.cache
def build_version() -> str:
    """retryd's installed version; read once (importlib.metadata parses a file each call)."""
    try:
        return version("retryd")
    except PackageNotFoundError:
        return "unknown"


class WorkerMetrics:
    """Counters, histograms and gauges the worker updates as it runs tasks."""

    def __init__(self, types: Iterable[int], registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        # First, so that a scrape adds the tallied observations before it reads the histograms.
        self.registry.register(_FlushOnCollect(self))
        runs = Counter(
            "retryd_task_runs",
            "Handler runs by result.",
            ["type", "outcome"],
            registry=self.registry,
        )
        duration = Histogram(
            "retryd_task_duration_seconds",
            "Handler run time.",
            ["type"],
            buckets=_BUCKETS,
            registry=self.registry,
        )
        start_delay = Histogram(
            "retryd_task_start_delay_seconds",
            "Handler start minus the task's next_attempt_at (by the Redis server's clock).",
            ["type"],
            buckets=_BUCKETS,
            registry=self.registry,
        )
        # The multiprocess modes matter only under a supervisor (worker/supervisor.py), where each
        # process writes its series to a shared directory: in flight adds up over the live ones.
        self.inflight = Gauge(
            "retryd_inflight",
            "Handlers running now.",
            registry=self.registry,
            multiprocess_mode="livesum",
        )
        pruned = Counter(
            "retryd_tasks_pruned",
            "Finished tasks this worker deleted past their retention, by state.",
            ["state"],
            registry=self.registry,
        )
        self.pruned = {state: pruned.labels(state=state) for state in ("confirmed", "failed")}
        self.redis_errors = Counter(
            "retryd_redis_errors", "Failed Redis calls.", registry=self.registry
        )
        worker_errors = Counter(
            "retryd_worker_errors",
            "Errors a worker loop outlived (logged at error level), by loop.",
            ["loop"],
            registry=self.registry,
        )
        self.worker_errors = {name: worker_errors.labels(loop=name) for name in WORKER_LOOPS}
        self.event_loop_lag = Gauge(
            "retryd_event_loop_lag_seconds",
            "How late the event loop last woke up a 0.1 s sleep (a blocking async handler).",
            registry=self.registry,
            multiprocess_mode="max",
        )
        Gauge(
            "retryd_build_info",
            "retryd's version.",
            ["version"],
            registry=self.registry,
            multiprocess_mode="max",
        ).labels(version=build_version()).set(1)
        self._type_limits = {
            "concurrency": Gauge(
                "retryd_type_concurrency_limit",
                "Most runs of the type in flight in each worker process ([types.N] concurrency).",
                ["type"],
                registry=self.registry,
                multiprocess_mode="max",
            ),
            "rate": Gauge(
                "retryd_type_rate_limit",
                "Most starts of the type per second across all workers ([types.N] rate).",
                ["type"],
                registry=self.registry,
                multiprocess_mode="max",
            ),
            "burst": Gauge(
                "retryd_type_rate_burst",
                "Most starts of the type at once after a quiet spell ([types.N] burst).",
                ["type"],
                registry=self.registry,
                multiprocess_mode="max",
            ),
        }
        type_inflight = Gauge(
            "retryd_type_inflight",
            "Handlers of the type running now.",
            ["type"],
            registry=self.registry,
            multiprocess_mode="livesum",
        )
        held_back = Counter(
            "retryd_type_held_back",
            "Claims that left due tasks of the type behind because of its limit.",
            ["type", "limit"],
            registry=self.registry,
        )
        types = list(types)
        self._held_back = {
            (t, limit): held_back.labels(type=str(t), limit=limit)
            for t in types
            for limit in FLOW_LIMITS
        }
        self._type_inflight = {t: type_inflight.labels(type=str(t)) for t in types}
        self._count_by_type: Callable[[], Mapping[int, int]] = dict
        self._runs = {
            (t, o): runs.labels(type=str(t), outcome=o.value) for t in types for o in Outcome
        }
        self._duration = {t: _Tally(duration.labels(type=str(t))) for t in types}
        self._start_delay = {t: _Tally(start_delay.labels(type=str(t))) for t in types}
        self._count_inflight: Callable[[], int] = lambda: 0
        # Runs by outcome since start, for the heartbeat: read without collecting the registry.
        self._runs_by_outcome: collections.Counter[str] = collections.Counter()

    def count_inflight(self, count: Callable[[], int]) -> None:
        """Read the number of running handlers when scraped, not on every start and end."""
        self._count_inflight = count
        self.inflight.set_function(count)

    def count_inflight_by_type(self, count: Callable[[], Mapping[int, int]]) -> None:
        """Read the running handlers of each type when scraped (count: type -> running)."""
        self._count_by_type = count
        for task_type, child in self._type_inflight.items():
            child.set_function(functools.partial(_running_of, count, task_type))

    def publish_inflight(self) -> None:
        """Write the count now: a supervised process's gauge is read from its file, not called."""
        self.inflight.set(self._count_inflight())
        by_type = self._count_by_type()
        for task_type, child in self._type_inflight.items():
            child.set(by_type.get(task_type, 0))
        self.flush()

    def flow_limits(self, concurrency: Mapping[int, int], rates: Mapping[int, Rate]) -> None:
        """Show the configured limits of each limited type (types without one: no series)."""
        for task_type, most in concurrency.items():
            self._type_limits["concurrency"].labels(type=str(task_type)).set(most)
        for task_type, rate in rates.items():
            self._type_limits["rate"].labels(type=str(task_type)).set(rate.per_second)
            self._type_limits["burst"].labels(type=str(task_type)).set(rate.burst)

    def held_back(self, task_type: int, limit: str) -> None:
        """A claim left due tasks of task_type behind because of its limit (FLOW_LIMITS)."""
        self._held_back[(task_type, limit)].inc()

    def task_started(self, task_type: int, start_delay_seconds: float) -> None:
        self._start_delay[task_type].add(max(start_delay_seconds, 0.0))

    def task_finished(self, task_type: int, duration_seconds: float) -> None:
        self._duration[task_type].add(duration_seconds)

    def outcomes(self, counts: Mapping[tuple[int, Outcome], int]) -> None:
        """Count a settled batch's runs: one increment per (type, outcome), not per task."""
        for key, count in counts.items():
            self._runs[key].inc(count)
            self._runs_by_outcome[key[1].value] += count
        self.flush()

    def runs_by_outcome(self) -> dict[str, int]:
        """Runs counted so far by outcome, all types together."""
        return dict(self._runs_by_outcome)

    def inflight_now(self) -> int:
        """Handlers running now."""
        return self._count_inflight()

    def flush(self) -> None:
        """Add the tallied handler times and start delays to their histograms."""
        for tally in (*self._duration.values(), *self._start_delay.values()):
            tally.flush()


def _running_of(count: Callable[[], Mapping[int, int]], task_type: int) -> int:
    return count().get(task_type, 0)


class _Tally:
    """One histogram child's observations, counted per bucket and added in one go.

    Histogram.observe takes a lock and walks the buckets for each value: two per task were a
    tenth of the event loop's time with plain handlers. Used on the event loop only. It adds
    to the child's bucket and sum values directly (prometheus-client has no batch observe);
    tests/metrics read the histograms back, so a change there would show.
    """

    __slots__ = ("_bounds", "_child", "_counts", "_sum")

    def __init__(self, child: Histogram) -> None:
        self._child = child
        self._bounds: list[float] = list(child._upper_bounds)
        self._counts = [0] * len(self._bounds)
        self._sum = 0.0

    def add(self, value: float) -> None:
        # The first bound >= value: Histogram.observe's bucket (the last bound is +Inf).
        self._counts[bisect_left(self._bounds, value)] += 1
        self._sum += value

    def flush(self) -> None:
        counts = self._counts
        if not any(counts):
            return
        for index, count in enumerate(counts):
            if count:
                self._child._buckets[index].inc(count)
                counts[index] = 0
        self._child._sum.inc(self._sum)
        self._sum = 0.0


class _FlushOnCollect(Collector):
    """Yields nothing: a scrape of the registry makes the tallies current first."""

    def __init__(self, metrics: WorkerMetrics) -> None:
        self._metrics = metrics

    def collect(self) -> Iterable[Metric]:
        self._metrics.flush()
        return []
