"""The worker: claim due tasks, run their handlers, record outcomes in batches.

Small loops share one event loop: the claimer (leases what it can run), the writer (settles
outcomes, one script call per batch), the listener (wakes the claimer when tasks are put), the
pruner and the lag watcher. The lease keeper (worker/leases.py) extends the leases of every claim
held, from a thread of its own when the worker can open a second store: a handler that blocks the
event loop cannot make the leases of the tasks beside it lapse. The store
decides what is due, by its clock. No loop ends on an error: each is logged, counted in
retryd_worker_errors_total{loop} and the loop goes on; should one end anyway, /healthz turns 503
(last_tick). This module talks to the store through its public API only.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import functools
import math
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import structlog

from store import (
    Change,
    Claim,
    Claimed,
    NotFoundError,
    NotReplicatedError,
    Record,
    SchemaVersionError,
    StoreAccessDenied,
    StoreError,
    TransientError,
    ValidationError,
    WorkerStore,
)
from worker.background import STOP_SECONDS, cancel_and_wait
from worker.config import Config, RetrySettings
from worker.deadlines import Deadlines
from worker.errors import ConfigError
from worker.leases import HeldClaims, LeaseKeeper
from worker.metrics import WorkerMetrics
from worker.outage import Outage
from worker.outcomes import Outcome, decide, release
from worker.registry import HandlerSpec, Registry, retry_settings
from worker.retention import Pruner
from worker.runs import ABANDON_SECONDS, HandlerRun, RunResult
from worker.threads import HandlerThreads
from worker.tracing import task_tracer

__all__ = ["Worker"]

log = structlog.get_logger("retryd.worker")

_SETTLE_BATCH = 1000
_MIN_FLUSH_SECONDS = 5.0
# Tasks are claimed ahead only while runs are this short: a task held for a busy slot then waits
# about one run, instead of sitting behind long runs while another worker idles.
_PREFETCH_MAX_RUN_SECONDS = 0.1
# Claimed ahead: at least the tasks this process starts during this many claim round trips, so a
# claim that takes longer than the runs it feeds (PostgreSQL's, a distant Redis) returns before
# the tasks waiting here run out.
_PREFETCH_CLAIM_TRIPS = 2
# WAIT itself already waited a second (store REPLICA_ACK_TIMEOUT_MS) before the error.
_NOT_REPLICATED_RETRY_SECONDS = 0.1
# The event loop's lag is measured with a sleep this long; a lag this long is a warning.
_LAG_PROBE_SECONDS = 0.1
_LAG_WARN_SECONDS = 1.0
# retryd_event_loop_lag_seconds holds the longest lag this long: a stall stays visible to scrapes
# made after it (a scrape during it waits for the loop), instead of the next 0.1 s probe's ~0.
_LAG_HOLD_SECONDS = 60.0
# How many tasks whose outcomes were refused are looked up at once, to say why each was.
_REFUSED_LOOKUPS = 32
# A loop that failed on an unexpected error starts again after this pause.
_LOOP_RETRY_SECONDS = 1.0
# An idle claimer woken for a type's next start token sleeps at least this long: a high rate is
# then claimed a few tokens at a time, not in one claim per token.
_RATE_WAIT_SECONDS = 0.01


@dataclass(slots=True)
class _Running:
    claimed: Claimed
    spec: HandlerSpec
    retry: RetrySettings
    run: HandlerRun | None = None  # an async handler's run
    ignored_cancel: bool = False  # the async handler ignored its cancellation: abandoned
    ended: bool = False  # its outcome is decided: its timeout no longer matters
    timed_out: bool = False
    lease_lost: bool = False  # logged once, not at every extension
    # A plain handler's run, as worker/threads.py hands it over and back: no Task, no Future.
    func: Callable[[Any], Any] | None = None
    argument: Any = None
    error: BaseException | None = None
    seconds: float = 0.0
    started: float = 0.0  # perf_counter() when handed to a thread
    abandoned: bool = False  # timed out or released while its thread runs on
    span: Any = None  # the run's OpenTelemetry span, with the `otel` extra installed


@dataclass(slots=True)
class _Pending:
    change: Change
    outcome: Outcome | None  # None: a prefetched task handed back unrun, not counted as a run


# A claimed task waiting for a free slot: the claim, its lateness at the claim by the server's
# clock, and when the claim arrived (time.monotonic()).
_Ready = tuple[Claimed, float, float]


class Worker:
    """Runs the handlers of a Registry on the tasks of a WorkerStore, until stopped."""

    def __init__(
        self,
        store: WorkerStore,
        registry: Registry,
        config: Config,
        *,
        metrics: WorkerMetrics | None = None,
        lease_store: Callable[[], WorkerStore] | None = None,
    ) -> None:
        """lease_store opens a second store (connections of its own) for the lease keeper's
        thread; without it the keeper runs on the worker's event loop, where a handler that
        blocks the loop holds up the extensions too."""
        if not registry.types():
            raise ConfigError("handlers.modules: no handler is registered, nothing to run")
        self._store = store
        self._tracer = task_tracer()  # None without the `otel` extra: no span, no cost
        self._registry = registry
        self._settings = config.worker
        self._retry = {spec.type: retry_settings(config, spec) for spec in registry.specs()}
        self._max_attempts = {t: r.max_attempts for t, r in self._retry.items()}
        # Flow control of the handled types: [types.N] concurrency is this process's own; a
        # rate is kept by the store for every worker of the namespace.
        self._type_limits = {
            t: most for t in self._retry if (most := config.concurrency_for(t)) is not None
        }
        self._rates = {t: rate for t in self._retry if (rate := config.rate_for(t)) is not None}
        self.metrics = metrics or WorkerMetrics(registry.types())
        self.metrics.count_inflight(lambda: len(self._running))
        self.metrics.count_inflight_by_type(self._running_by_type)
        self.metrics.flow_limits(self._type_limits, self._rates)
        self._outage = Outage(self.metrics)
        self._pruner = Pruner(store, config.retention, self.metrics)
        self._running: dict[str, _Running] = {}
        # Claimed ahead of free slots, so a slot that frees starts its next task at once instead
        # of after a claim's round trip; held under lease, extended like the running ones.
        self._ready: collections.deque[_Ready] = collections.deque()
        self._prefetch = min(self._settings.batch, self._settings.concurrency)
        # Moving average of run times since the worker was last idle; None: nothing ran since.
        self._recent_run_seconds: float | None = None
        self._claim_seconds = 0.0  # moving average of a claim's round trip
        self._pending: list[_Pending] = []
        # Every claim from its claim until its outcome is written: the leases the keeper extends.
        self._held = HeldClaims()
        self._open_lease_store = lease_store
        self._leases = LeaseKeeper(
            self._held,
            lease_seconds=self._settings.lease,
            # No run holds its task longer than its timeout (+ the abandon bound): a loop silent
            # for longer is hung, and its leases are let go.
            stall_limit_seconds=max(r.timeout for r in self._retry.values())
            + ABANDON_SECONDS
            + self._settings.lease,
            metrics=self.metrics,
            on_lost=self._leases_lost,
            on_failed=self._outage.failed,
            on_recovered=self._outage.recovered,
        )
        self._settling: list[_Pending] = []  # the batch being written now
        # Tasks claimed again while their outcome was being written: the settle's answer tells
        # whether the claim is the task's next attempt or took it from under that outcome.
        self._claimed_while_settling: dict[str, _Ready] = {}
        self._nudge = asyncio.Event()  # tasks put, a slot freed, or stop: claim again
        self._outcomes_ready = asyncio.Event()
        self._written = asyncio.Event()
        self._stopping = asyncio.Event()
        # Why outcomes cannot be written now (None while they can): the claimer claims nothing
        # meanwhile, since every run would end in an outcome that waits in memory too.
        self._writer_stalled: str | None = None
        # Runs given up on (a plain handler's thread past its timeout; an async handler that
        # ignored its cancellation): each holds its slot until it returns, and no task may be
        # claimed for it.
        self._stuck_by_type: collections.Counter[int] = collections.Counter()
        self.abandoned_runs = 0  # async handlers among them: still tasks on this event loop
        self._dead_loops: set[str] = set()
        self._claimed_once = False  # access refused before any claim is a configuration fault
        self._threads: HandlerThreads | None = None  # made in run(), on its event loop
        self._deadlines: Deadlines[_Running] | None = None  # ...and so are these
        self._none_running = asyncio.Event()  # set whenever the last running handler ends
        self._last_tick = time.monotonic()

    @property
    def last_tick(self) -> float:
        """/healthz: the claimer is alive while this moves; -inf once any loop has ended."""
        return float("-inf") if self._dead_loops or self._leases.dead else self._last_tick

    @property
    def _stuck_slots(self) -> int:
        """Slots held by runs given up on whose thread or task has not returned yet."""
        return self._stuck_by_type.total()

    @property
    def _unwritten(self) -> int:
        """Outcomes decided but not yet settled in Redis."""
        return len(self._pending) + len(self._settling)

    @property
    def handled_types(self) -> frozenset[int]:
        """The task types this worker has a handler for (and so claims)."""
        return frozenset(self._retry)

    @property
    def outage(self) -> bool:
        return self._outage.ongoing

    @property
    def poll_interval(self) -> float:
        """[worker] poll_interval: /healthz allows a few of these between ticks."""
        return self._settings.poll_interval

    def stop(self) -> None:
        """Stop claiming; run() then drains in-flight handlers and returns."""
        self._stopping.set()
        self._nudge.set()

    async def run(self, *, burst: bool = False) -> None:
        """Work until stop() (or, with burst, until nothing is due and nothing runs)."""
        helpers = [self._helper("writer", self._write_outcomes)]
        if self._open_lease_store is not None:
            self._leases.start(self._open_lease_store)
        else:
            helpers.append(
                self._helper("leases", functools.partial(self._leases.run_here, self._store))
            )
        helpers.append(self._helper("lag", self._watch_lag))
        loop = asyncio.get_running_loop()
        self._threads = HandlerThreads(self._settings.concurrency, loop, self._threads_done)
        self._deadlines = Deadlines(loop, self._time_out)
        if not burst:
            helpers.append(self._helper("wake", self._listen_for_wakeups))
            helpers.append(self._helper("prune", self._pruner.run))
        try:
            await self._keep_alive("claimer", functools.partial(self._claim_until_stopped, burst))
            await self._drain()
        finally:
            await cancel_and_wait(helpers)
            await self._leases.stop(STOP_SECONDS)  # after the drain: outcomes written
            self._threads.shutdown()
            self._deadlines.close()

    def _helper(self, name: str, body: Callable[[], Awaitable[None]]) -> asyncio.Task[None]:
        task = asyncio.create_task(self._keep_alive(name, body), name=f"retryd-{name}")
        task.add_done_callback(functools.partial(self._helper_ended, name))
        return task

    async def _keep_alive(self, name: str, body: Callable[[], Awaitable[None]]) -> None:
        """Run a loop; after any error, log it, count it and run the loop again (but for a store
        schema this code does not know, which stops the worker: see SchemaVersionError)."""
        while True:
            try:
                await body()
            except (SchemaVersionError, StoreAccessDenied):
                # A schema this code does not know, or access refused before the first claim:
                # no loop can mend that by retrying; the process exits and says why.
                raise
            except Exception as error:  # every loop must outlive every other error
                self.metrics.worker_errors[name].inc()
                log.error(
                    "worker loop failed; it starts again",
                    loop=name,
                    error=f"{type(error).__name__}: {error}",
                    exc_info=error,
                )
                await asyncio.sleep(_LOOP_RETRY_SECONDS)
            else:
                return

    def _helper_ended(self, name: str, task: asyncio.Task[None]) -> None:
        """A helper loop ended, though none returns: cancelled at exit, or something escaped."""
        if task.cancelled() or self._stopping.is_set():
            return
        self._dead_loops.add(name)
        error = task.exception()
        log.error(
            "worker loop ended; /healthz now answers 503 so that the process is restarted",
            loop=name,
            error=None if error is None else f"{type(error).__name__}: {error}",
        )

    async def _claim_until_stopped(self, burst: bool) -> None:
        while not self._stopping.is_set():
            self._last_tick = time.monotonic()
            limit = self._claim_limit()
            plan = self._claim_plan(limit) if self._writer_stalled is None else None
            if plan is None:
                # Cleared here, not only before claiming: a nudge left set would make every
                # wait return at once without yielding, and the handlers could never finish.
                # (A run that ends nudges: a type at its concurrency limit then has room.)
                self._nudge.clear()
                await self._pause(self._settings.poll_interval)
                continue
            self._nudge.clear()
            # Burst ends only on an empty claim that no outcome could have raced: an outcome
            # settled while the claim was in flight may have made a retry due after it ran.
            idle_before = not self._running and not self._unwritten and not self._ready
            claim = await self._claim(limit, *plan)
            if claim is None:
                continue
            self._start_all(claim)
            for task_type in claim.held_by_limit:
                self.metrics.held_back(task_type, "concurrency")
            for task_type in claim.held_by_rate:
                self.metrics.held_back(task_type, "rate")
            if not claim.tasks and not self._running:
                self._recent_run_seconds = None  # idle: the next tasks may be of another kind
            if len(claim.tasks) + len(claim.damaged) >= limit:
                continue  # more may be due: claim again at once
            held = claim.held_by_rate  # due tasks wait for their tokens: not done yet
            if burst and not claim.tasks and not self._running and not self._ready and not held:
                if idle_before and not self._unwritten:
                    return
                await self._all_written()
                continue
            await self._pause(self._idle_seconds(claim))

    async def _claim(
        self, limit: int, max_attempts: Mapping[int, int], type_limits: Mapping[int, int] | None
    ) -> Claim | None:
        """One claim; None after a failure, once the pause it calls for is over."""
        sent = time.monotonic()
        try:
            claim = await self._store.claim(
                max_attempts,
                limit=limit,
                lease_seconds=self._settings.lease,
                type_limits=type_limits,
                # Only the claimed types' rates: a type at its concurrency limit is left out.
                rates={t: r for t, r in self._rates.items() if t in max_attempts} or None,
            )
        except StoreAccessDenied as error:
            if not self._claimed_once:
                raise  # refused from the start: wrong credentials or ACL, not an outage (exit 1)
            await self._pause(self._outage.failed(error))  # rotated under a running worker
            return None
        except TransientError as error:
            await self._pause(self._outage.failed(error))
            return None
        except SchemaVersionError:
            raise  # the store's schema is not this code's: say what to run, do not run on it
        except StoreError as error:
            # Not an outage (BUSY: a long script runs; OOM and READONLY are ridden out as outages
            # are), and not something a restart would mend: count it, say so and keep the
            # process up (a crash loop would stop every other type's work too).
            self.metrics.redis_errors.inc()
            self.metrics.worker_errors["claimer"].inc()
            log.error("claim failed; retrying after poll_interval", error=str(error))
            await self._pause(self._settings.poll_interval)
            return None
        self._outage.recovered()
        self._claimed_once = True
        self._claim_seconds += (time.monotonic() - sent - self._claim_seconds) / 8
        return claim

    def _claim_limit(self) -> int:
        """How many tasks to claim now: the free slots, plus, while recent runs are short, some
        ahead (_prefetch_depth); 0 while the tasks already waiting cover half of those."""
        free = self._settings.concurrency - len(self._running) - self._stuck_slots
        recent = self._recent_run_seconds
        prefetch = 0
        if recent is not None and recent < _PREFETCH_MAX_RUN_SECONDS:
            prefetch = self._prefetch_depth(recent)
        room = min(self._settings.batch, max(free, 0) + prefetch - len(self._ready))
        if self._ready and room < max(prefetch // 2, 1):
            return 0  # enough waits here: a claim for a few tasks would cost a round trip each
        return room

    def _prefetch_depth(self, run_seconds: float) -> int:
        """How many tasks to hold claimed ahead while runs take run_seconds: min(batch,
        concurrency), or the starts of _PREFETCH_CLAIM_TRIPS claim round trips if more, at most
        batch."""
        starts_per_second = self._settings.concurrency / max(run_seconds, 1e-6)
        per_trips = math.ceil(starts_per_second * self._claim_seconds * _PREFETCH_CLAIM_TRIPS)
        return min(self._settings.batch, max(self._prefetch, per_trips))

    def _claim_plan(self, limit: int) -> tuple[Mapping[int, int], Mapping[int, int] | None] | None:
        """What the next claim asks for: the types (type -> max_attempts) and the room each
        type with a concurrency limit has left in this process (its runs, tasks claimed ahead
        and abandoned runs still going count); None when there is no room at all. A type at
        its limit is left out, so the claim goes to the others at full speed."""
        if limit <= 0:
            return None
        if not self._type_limits:
            return self._max_attempts, None
        held = self._held_by_type()
        room = {t: most - held[t] for t, most in self._type_limits.items()}
        caps = {t: left for t, left in room.items() if 0 < left < limit}
        if all(left > 0 for left in room.values()):
            return self._max_attempts, caps or None
        types = {t: most for t, most in self._max_attempts.items() if room.get(t, 1) > 0}
        return (types, caps or None) if types else None

    def _held_by_type(self) -> collections.Counter[int]:
        """The runs of each type this process holds: running, claimed ahead, or given up on
        but still going (their thread or task has not returned)."""
        held = self._running_by_type()
        held.update(claimed.record.type for claimed, _, _ in self._ready)
        held.update(self._stuck_by_type)
        return held

    def _running_by_type(self) -> collections.Counter[int]:
        return collections.Counter(r.claimed.record.type for r in self._running.values())

    def _start_all(self, claim: Claim) -> None:
        received = time.monotonic()
        unwritten = {p.change.record.task_id: i for i, p in enumerate(self._pending)}
        settling = {p.change.record.task_id for p in self._settling}
        waiting = {c.record.task_id: i for i, (c, _, _) in enumerate(self._ready)}
        for claimed in claim.tasks:
            task_id = claimed.record.task_id
            ready = (claimed, (claim.now - claimed.due_at).total_seconds(), received)
            current = self._running.get(task_id)
            if current is not None:
                self._adopt(current, claimed)
            elif task_id in unwritten:
                self._adopt_outcome(unwritten[task_id], claimed)
            elif task_id in settling:
                self._claimed_while_settling[task_id] = ready  # decided by the settle's answer
            elif task_id in waiting:  # claimed ahead and claimed again: one run, the new claim
                self._ready[waiting[task_id]] = ready
            else:
                self._ready.append(ready)
        self._held.hold(claimed.record for claimed in claim.tasks)
        self._start_ready()
        for task_id in claim.damaged:
            log.error("damaged task set aside; repair or delete it", task_id=task_id)

    def _adopt(self, running: _Running, claimed: Claimed) -> None:
        """A task claimed again while its run goes on here (its lease lapsed, say through a
        stalled event loop): the run in progress takes the new claim, no second run starts."""
        running.claimed = claimed  # held by _start_all, in place of the lapsed claim
        running.lease_lost = False
        _task_log(claimed.record).warning(
            "claimed again while still running here (its lease had lapsed); "
            "the run in progress keeps the new claim"
        )

    def _adopt_outcome(self, index: int, claimed: Claimed) -> None:
        """A task claimed again while its run's outcome waits to be written: the outcome takes
        the new claim (written at its version), and the task does not run a second time."""
        pending = self._pending[index]
        self._pending[index] = _Pending(
            dataclasses.replace(pending.change, record=claimed.record), pending.outcome
        )
        _task_log(claimed.record).warning(
            "claimed again while its outcome waits to be written; the outcome keeps the new claim"
        )

    def _idle_seconds(self, claim: Claim) -> float:
        """Until the next task is due or the next start token of a type held back by its rate
        (by the server's clock), at most poll_interval."""
        if claim.next_due is None:
            return self._settings.poll_interval
        until_due = max((claim.next_due - claim.now).total_seconds(), 0.0)
        if claim.held_by_rate and claim.next_due == min(claim.held_by_rate.values()):
            until_due = max(until_due, _RATE_WAIT_SECONDS)
        return min(self._settings.poll_interval, until_due)

    async def _pause(self, seconds: float) -> None:
        """Sleep up to seconds, or less if nudged (tasks put, a slot freed, stop)."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self._nudge.wait()

    def _start_ready(self) -> None:
        """Start waiting tasks while slots are free (never once stopping: those are released)."""
        ready, limit = self._ready, self._settings.concurrency
        while ready and len(self._running) + self._stuck_slots < limit:
            if self._stopping.is_set():
                return
            self._start(*ready.popleft())

    def _release_ready(self) -> None:
        """Hand back, due now, the tasks claimed ahead that never started (shutdown)."""
        while self._ready:
            claimed, _, _ = self._ready.popleft()
            change, _ = release(claimed.record)
            self._pending.append(_Pending(change, None))
        self._outcomes_ready.set()

    def _start(self, claimed: Claimed, start_delay: float, received: float) -> None:
        record = claimed.record
        spec = self._registry.get(record.type)
        assert spec is not None, "claim returns only the types we asked for"
        running = _Running(claimed, spec, self._retry[record.type])
        self._running[record.task_id] = running
        delay = start_delay + (time.monotonic() - received)
        self.metrics.task_started(record.type, delay)
        if self._tracer is not None:
            running.span = self._tracer.start(record)
        self._none_running.clear()
        if running.spec.is_async:
            running.started = time.perf_counter()
            running.run = self._handler_run(running, spec.func(record.clone()))
        else:
            running.func, running.argument = spec.func, record.clone()
            running.started = time.perf_counter()
            assert self._threads is not None, "run() made the threads"
            self._threads.submit(running)
        # Not asyncio.timeout(), nor a call_later per run: one timer serves every run.
        assert self._deadlines is not None, "run() made the deadlines"
        self._deadlines.add(running, running.retry.timeout)

    def _handler_run(self, running: _Running, work: Awaitable[None]) -> HandlerRun:
        """The handler's own task, made inside its span: the task copies the active context."""
        on_end = functools.partial(self._run_ended, running)
        if running.span is None:
            return HandlerRun(work, on_end)
        assert self._tracer is not None
        with self._tracer.activate(running.span):
            return HandlerRun(work, on_end)

    def _run_ended(self, running: _Running, result: RunResult) -> None:
        """An async handler's run ended: whatever it raised is its outcome (worker/runs.py)."""
        seconds = time.perf_counter() - running.started
        if result.abandoned:
            assert running.run is not None
            self._abandon(running, running.run)
        self._finish(running, result.failure, seconds, cancelled=result.stopped)

    def _abandon(self, running: _Running, run: HandlerRun) -> None:
        """A stopped async handler runs on: its slot stays taken until it returns."""
        running.ignored_cancel = True
        self._stuck_by_type[running.spec.type] += 1
        self.abandoned_runs += 1
        run.when_returned(functools.partial(self._abandoned_returned, running.spec.type))
        _task_log(running.claimed.record).warning(
            "handler ignored its cancellation; abandoned, its slot stays taken until it returns",
            handler=running.spec.name,
        )

    def _abandoned_returned(self, task_type: int) -> None:
        self.abandoned_runs -= 1
        self._stuck_by_type[task_type] -= 1
        self._nudge.set()
        self._start_ready()

    def _threads_done(self, runs: list[_Running]) -> None:
        """Plain handlers' runs that returned or raised, handed back in one batch."""
        for running in runs:
            if running.abandoned:  # its outcome is decided already; the slot is free again
                self._stuck_by_type[running.spec.type] -= 1
                self._nudge.set()
                self._start_ready()
                continue
            # Any class (SystemExit too) is the run's outcome, reported as raised.
            self._finish(running, running.error, running.seconds)

    def _time_out(self, running: _Running) -> None:
        running.timed_out = True
        if running.run is not None:
            running.run.stop()
        else:
            self._abandon_thread(running)

    def _abandon_thread(self, running: _Running) -> None:
        """Decide a plain run now, timed out or released: its thread holds a slot till it ends."""
        running.abandoned = True
        self._stuck_by_type[running.spec.type] += 1
        self._finish(running, None, time.perf_counter() - running.started, cancelled=True)

    def _finish(
        self,
        running: _Running,
        failure: BaseException | None,
        seconds: float,
        *,
        cancelled: bool = False,
    ) -> None:
        """A run ended (returned, raised, timed out, or released): queue its outcome."""
        record = running.claimed.record
        running.ended = True
        self.metrics.task_finished(record.type, seconds)
        recent = self._recent_run_seconds
        self._recent_run_seconds = seconds if recent is None else recent + (seconds - recent) / 8
        del self._running[record.task_id]
        self._start_ready()
        if not self._running:
            self._none_running.set()
        self._nudge.set()
        if running.timed_out:
            ignored = "; it ignored its cancellation" if running.ignored_cancel else ""
            failure = TimeoutError(
                f"the handler ran past its timeout ({running.retry.timeout}s){ignored}"
            )
        if cancelled and failure is None:  # cut short by shutdown after shutdown_grace
            change, outcome = release(record)
        else:
            change, outcome = decide(record, failure, running.retry)
        if failure is not None:
            reason = f"{type(failure).__name__}: {failure}"
            _task_log(record).warning("handler failed", outcome=outcome.value, error=reason)
        self._pending.append(_Pending(change, outcome))
        self._outcomes_ready.set()
        if running.span is not None:
            assert self._tracer is not None
            self._tracer.end(running.span, outcome, failure)

    async def _write_outcomes(self) -> None:
        while True:
            await self._outcomes_ready.wait()
            self._outcomes_ready.clear()
            while self._pending:
                batch = self._settling = self._pending[:_SETTLE_BATCH]
                del self._pending[:_SETTLE_BATCH]
                try:
                    await self._settle(batch)
                except BaseException:
                    self._pending[:0] = batch  # not lost: written when the writer goes on
                    self._outcomes_ready.set()
                    # Not known whether they were written: the outcomes keep the new claims.
                    for index, pending in enumerate(batch):
                        task_id = pending.change.record.task_id
                        if task_id in self._claimed_while_settling:
                            claimed, _, _ = self._claimed_while_settling.pop(task_id)
                            self._adopt_outcome(index, claimed)
                    raise
                finally:
                    self._settling = []
                self._nudge.set()  # a retry due now can be claimed at once
            self._written.set()

    async def _settle(self, batch: list[_Pending]) -> None:
        """Write one batch of outcomes, retrying through outages: outcomes are never dropped.

        A batch sent again after a failure is answered as done where it was already applied, so
        a retry never turns a written outcome into a conflict."""
        while True:
            try:
                results = await self._settle_alone(batch)
                break
            except NotReplicatedError as error:
                # The master took the batch but no replica confirmed it (after a failover the
                # new master has none for seconds): not an outage, and claims still succeed.
                self._stall_writer(error)
                await asyncio.sleep(_NOT_REPLICATED_RETRY_SECONDS)
            except TransientError as error:
                self._stall_writer(error)
                await asyncio.sleep(self._outage.failed(error))
        self._outage.recovered()
        self._unstall_writer()
        counts: collections.Counter[tuple[int, Outcome]] = collections.Counter()
        refused: list[tuple[Record, Outcome]] = []
        for pending, result in zip(batch, results, strict=True):
            record = pending.change.record
            claimed_again = self._claimed_while_settling.pop(record.task_id, None)
            if claimed_again is not None:
                if result is False:  # the claim came first: the outcome takes the new claim
                    self._pending.append(pending)
                    self._adopt_outcome(len(self._pending) - 1, claimed_again[0])
                    self._outcomes_ready.set()
                    continue
                # Written before the claim (or refused as invalid): the claim is a new attempt.
                self._ready.append(claimed_again)
                self._start_ready()
            if pending.outcome is None or result is None:
                # Handed back unrun (not a run, no one else's business if refused), or refused as
                # invalid (logged by _settle_alone).
                continue
            if not result:
                counts[(record.type, Outcome.CONFLICT)] += 1
                refused.append((record, pending.outcome))
            else:
                counts[(record.type, pending.outcome)] += 1
        self._held.drop(pending.change.record for pending in batch)  # written: leases ended
        self.metrics.outcomes(counts)
        if refused:
            await self._log_refused(refused)

    async def _log_refused(self, refused: list[tuple[Record, Outcome]]) -> None:
        """Say why each outcome was refused: the task was deleted (vanished), cancelled, or
        claimed again by another worker at a later version."""
        reasons = await self._why_refused([record for record, _ in refused])
        for (record, outcome), reason in zip(refused, reasons, strict=True):
            _task_log(record).warning(f"outcome refused: {reason}", outcome=outcome.value)

    async def _why_refused(self, records: list[Record]) -> list[str]:
        """One lookup for all (which exist), then one per stored task, up to _REFUSED_LOOKUPS
        at once: refusals come after faults and operators' actions, but may come by hundreds."""
        unknown = "the task changed or vanished meanwhile"
        try:
            stored = await self._store.which_exist([record.task_id for record in records])
        except StoreError:  # cannot tell; the outcome is refused all the same
            return [unknown] * len(records)
        looked_up = [r.task_id for r in records if r.task_id in stored][:_REFUSED_LOOKUPS]
        details = await asyncio.gather(
            *(self._store.inspect(task_id) for task_id in looked_up), return_exceptions=True
        )
        found = dict(zip(looked_up, details, strict=True))
        reasons = []
        for record in records:
            detail = found.get(record.task_id)
            if record.task_id not in stored or isinstance(detail, NotFoundError):
                reasons.append("the task vanished (deleted while it ran)")
            elif detail is None or isinstance(detail, BaseException):
                reasons.append("the task was claimed again or cancelled meanwhile")
            elif detail.cancelled:
                reasons.append("the task was cancelled while it ran")
            else:
                reasons.append("another worker holds the task now")
        return reasons

    async def _settle_alone(self, batch: list[_Pending]) -> list[bool | None]:
        """Settle a batch; if the store refuses it as invalid, settle each change alone so that
        one bad change (None) cannot hold back the others."""
        try:
            return list(await self._store.settle([p.change for p in batch]))
        except ValidationError as error:
            if len(batch) > 1:
                return [r for p in batch for r in await self._settle_alone([p])]
            self.metrics.worker_errors["writer"].inc()
            _task_log(batch[0].change.record).error(
                "outcome refused as invalid; the task runs again after its lease",
                outcome=None if batch[0].outcome is None else batch[0].outcome.value,
                error=str(error),
            )
            return [None]

    def _stall_writer(self, error: BaseException) -> None:
        if self._writer_stalled is None:
            self._writer_stalled = f"{type(error).__name__}: {error}"
            log.warning(
                "outcomes cannot be written; claiming paused until they are",
                error=self._writer_stalled,
                unwritten=self._unwritten,
            )

    def _unstall_writer(self) -> None:
        if self._writer_stalled is not None:
            self._writer_stalled = None
            log.warning("outcomes written again; claiming resumed")
            self._nudge.set()

    def _leases_lost(self, records: list[Record]) -> None:
        """The keeper found these leases lost. Only a claim whose run still goes on is news:
        its outcome will be refused. A run that ended meanwhile had its outcome written (that
        is what moved the version), or it waits to be, and the settle's answer tells the truth;
        a run that took a newer claim of its task (adopted) holds that one."""
        for record in records:
            run = self._running.get(record.task_id)
            if run is None or run.claimed.record is not record or run.lease_lost:
                continue
            run.lease_lost = True
            _task_log(record).warning("lease lost; the outcome of this run will be refused")

    async def _watch_lag(self) -> None:
        """Measure how late the event loop wakes up; after a stall, name the async handlers
        that were running (one of them blocked it: it should be a plain def)."""
        peak, peak_at = 0.0, float("-inf")
        while True:
            before = time.monotonic()
            suspects = self._async_handlers_running()
            await asyncio.sleep(_LAG_PROBE_SECONDS)
            now = time.monotonic()
            lag = max(now - before - _LAG_PROBE_SECONDS, 0.0)
            if lag >= peak or now - peak_at > _LAG_HOLD_SECONDS:
                peak, peak_at = lag, now
            self.metrics.event_loop_lag.set(peak)
            if lag >= _LAG_WARN_SECONDS:
                log.warning(
                    "event loop blocked; an async handler must not block (make it a plain def)",
                    blocked_seconds=round(lag, 3),
                    handlers=sorted(suspects | self._async_handlers_running()),
                )

    def _async_handlers_running(self) -> set[str]:
        return {
            f"{r.spec.name} (type {r.spec.type})" for r in self._running.values() if r.spec.is_async
        }

    async def _listen_for_wakeups(self) -> None:
        async for attempt in self._outage.retrying():  # subscribes again after each outage
            with attempt:
                async with self._store.wakeups() as wakeups:
                    self._outage.recovered()
                    self._nudge.set()  # tasks put while we were not subscribed: look once
                    while True:
                        await wakeups.wait()
                        self._nudge.set()

    async def _drain(self) -> None:
        """Let running handlers finish within shutdown_grace, release the rest, flush outcomes."""
        deadline = time.monotonic() + self._settings.shutdown_grace
        self._release_ready()
        if self._running:
            log.info("draining", inflight=len(self._running), grace=self._settings.shutdown_grace)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._none_running.wait(), self._settings.shutdown_grace)
        if self._running:
            for running in [r for r in self._running.values() if r.run is None]:
                self._abandon_thread(running)
            for running in list(self._running.values()):
                if running.run is not None:
                    running.run.stop()
            # Within ABANDON_SECONDS: a handler that ignores its cancellation is given up on.
            await self._none_running.wait()
        # Writing outcomes gets what is left of the grace, at least a few seconds: with Redis
        # away it would wait forever, and the unwritten tasks are due again after their leases.
        flush_seconds = max(deadline - time.monotonic(), _MIN_FLUSH_SECONDS)
        try:
            await asyncio.wait_for(self._all_written(), timeout=flush_seconds)
        except TimeoutError:
            log.error(
                "exiting with outcomes not written; their tasks run again after their leases",
                unwritten=self._unwritten,
            )

    async def _all_written(self) -> None:
        while self._unwritten:
            self._written.clear()
            await self._written.wait()


def _task_log(record: Any) -> Any:
    return log.bind(
        task_id=record.task_id,
        type=record.type,
        attempt=record.failed_attempts + 1,
        reference_id=record.reference_id,
    )
