"""The lease keeper: extends the leases of every claim a worker holds, every lease / 3.

A worker holds a claim from the moment it is claimed until its outcome is written: while it
waits for a slot, while its handler runs, while its outcome waits for the writer. HeldClaims is
that set, shared between the event loop (which adds and drops claims, one lock per batch) and
the keeper.

With a store opener the keeper runs in a thread of its own, with its own event loop and its own
store connections, so an `async def` handler that blocks the worker's event loop cannot make the
leases of the tasks running beside it lapse (another worker would claim and run them again, and
their outcomes would be refused). What it learns is handed back to the worker's loop thread-safely
and acted on there: a lost lease is reported only if that very claim still runs when the report
arrives, so a run that ended (and had its outcome accepted) while the extension was in flight is
never called lost. A loop stalled longer than stall_limit_seconds (longer than any handler may
run) is taken for hung: the keeper stops extending, so that other workers can take the tasks.

Without an opener (an in-process Worker on a store that cannot be opened twice) the same rounds
run on the worker's own event loop. This module talks to the store through its public API only.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

import structlog

from store import Record, StoreError, TransientError, WorkerStore
from worker.metrics import WorkerMetrics

__all__ = ["THREAD_NAME", "HeldClaims", "LeaseKeeper"]

log = structlog.get_logger("retryd.worker")

THREAD_NAME = "retryd-leases"
# The keeper's round, as a share of the lease: two rounds may fail before a lease can lapse.
_ROUNDS_PER_LEASE = 3


class HeldClaims:
    """The claims a worker holds, by task id: the record at the version it was claimed at."""

    def __init__(self) -> None:
        self._lock = threading.Lock()  # the keeper's thread reads while the loop writes
        self._held: dict[str, Record] = {}

    def hold(self, records: Iterable[Record]) -> None:
        """Hold these claims (a claim of a task held already replaces it: a newer version)."""
        with self._lock:
            for record in records:
                self._held[record.task_id] = record

    def drop(self, records: Iterable[Record]) -> None:
        """Let these claims go (their outcomes are written), unless a newer claim replaced one."""
        with self._lock:
            held = self._held
            for record in records:
                if held.get(record.task_id) is record:
                    del held[record.task_id]

    def snapshot(self) -> list[Record]:
        with self._lock:
            return list(self._held.values())

    def __len__(self) -> int:
        return len(self._held)


class LeaseKeeper:
    """Extends the leases of `held` every lease / 3, in a thread of its own or on the loop."""

    def __init__(
        self,
        held: HeldClaims,
        *,
        lease_seconds: float,
        stall_limit_seconds: float,
        metrics: WorkerMetrics,
        on_lost: Callable[[list[Record]], None],
        on_failed: Callable[[BaseException], object],
        on_recovered: Callable[[], None],
    ) -> None:
        self._held = held
        self._lease = lease_seconds
        self._interval = lease_seconds / _ROUNDS_PER_LEASE
        self._stall_limit = stall_limit_seconds
        self._metrics = metrics
        self._on_lost = on_lost
        self._on_failed = on_failed
        self._on_recovered = on_recovered
        # Set by start(): the worker's loop (reports go there) and the keeper's own.
        self._worker_loop: asyncio.AbstractEventLoop | None = None
        self._own_loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._wake: asyncio.Event | None = None  # made on the keeper's loop: stop() sets it
        self._stopping = False
        self._ended: asyncio.Future[None] | None = None  # on the worker's loop: the thread ended
        self._loop_seen = time.monotonic()  # when the worker's loop last ran a callback of ours
        self._gave_up = False

    # --- on the worker's event loop -------------------------------------------------------------

    async def run_here(self, store: WorkerStore) -> None:
        """Extend on the worker's own loop until cancelled (no second store to open)."""
        while True:
            await asyncio.sleep(self._interval)
            await self.extend_once(store)

    def start(self, open_store: Callable[[], WorkerStore]) -> None:
        """Start the keeper's thread; open_store is called there, for connections of its own."""
        self._worker_loop = asyncio.get_running_loop()
        self._ended = self._worker_loop.create_future()
        self._own_loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._serve, args=(open_store,), name=THREAD_NAME, daemon=True
        )
        self._thread.start()

    async def stop(self, wait_seconds: float) -> None:
        """Stop the thread and wait up to wait_seconds for it (an extension in flight may hang on a
        store that does not answer: the daemon thread is then left to end with the process)."""
        if self._thread is None or self._own_loop is None or self._ended is None:
            return
        self._stopping = True
        with contextlib.suppress(RuntimeError):  # its loop is closed already: it has ended
            self._own_loop.call_soon_threadsafe(self._wake_up)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(self._ended), wait_seconds)

    @property
    def dead(self) -> bool:
        """The keeper's thread ended though nobody stopped it (/healthz then answers 503)."""
        return self._thread is not None and not self._stopping and not self._thread.is_alive()

    def _seen(self) -> None:
        self._loop_seen = time.monotonic()

    # --- in the keeper's thread -----------------------------------------------------------------

    def _serve(self, open_store: Callable[[], WorkerStore]) -> None:
        loop = self._own_loop
        assert loop is not None
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(self._keep(open_store))
        finally:
            with contextlib.suppress(Exception):
                loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()
            if not self._stopping:
                log.error(
                    "worker loop ended; /healthz now answers 503 so that the process is restarted",
                    loop="leases",
                )
            self._report(self._thread_ended)

    def _thread_ended(self) -> None:
        if self._ended is not None and not self._ended.done():
            self._ended.set_result(None)

    def _stop_requested(self) -> bool:  # set by the worker's loop thread, read here
        return self._stopping

    def _wake_up(self) -> None:
        if self._wake is not None:
            self._wake.set()

    async def _keep(self, open_store: Callable[[], WorkerStore]) -> None:
        self._wake = asyncio.Event()
        store: WorkerStore | None = None
        try:
            while not self._stop_requested():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self._interval)
                if self._stop_requested():
                    return
                try:
                    if store is None:
                        store = open_store()
                    if not self._loop_stalled():
                        await self.extend_once(store)
                except Exception as error:  # the keeper outlives every error, as the loops do
                    self._metrics.worker_errors["leases"].inc()
                    log.error(
                        "worker loop failed; it starts again",
                        loop="leases",
                        error=f"{type(error).__name__}: {error}",
                        exc_info=error,
                    )
        finally:
            if store is not None:
                with contextlib.suppress(Exception):
                    await store.aclose()

    def _loop_stalled(self) -> bool:
        """Ask the worker's loop for a sign of life; True once it has given none for longer
        than any handler may run (a hung loop: its leases are let go)."""
        self._report(self._seen)
        silent = time.monotonic() - self._loop_seen
        if silent <= self._stall_limit:
            if self._gave_up:
                self._gave_up = False
                log.warning("event loop answers again; leases extended again")
            return False
        if not self._gave_up:
            self._gave_up = True
            log.error(
                "event loop stalled longer than any handler may run; leases no longer extended, "
                "other workers may take these tasks",
                stalled_seconds=round(silent, 3),
                leases=len(self._held),
            )
        return True

    # --- either ---------------------------------------------------------------------------------

    async def extend_once(self, store: WorkerStore) -> None:
        """One round: extend every held lease; report the lost ones and the store's health."""
        records = self._held.snapshot()
        if not records:
            return
        try:
            held = await store.extend(records, lease_seconds=self._lease)
        except TransientError as error:
            self._report(self._on_failed, error)
            return
        except StoreError as error:  # an error reply that is not an outage: try next round
            self._metrics.worker_errors["leases"].inc()
            log.error("lease extension failed", error=str(error), leases=len(records))
            return
        self._report(self._on_recovered)
        lost = [record for record, ok in zip(records, held, strict=True) if not ok]
        if lost:
            self._report(self._on_lost, lost)

    def _report(self, callback: Callable[..., Any], *args: Any) -> None:
        """Call back on the worker's loop: from the thread through call_soon_threadsafe."""
        if self._thread is None or threading.current_thread() is not self._thread:
            callback(*args)
            return
        assert self._worker_loop is not None
        with contextlib.suppress(RuntimeError):  # the worker's loop is closed: nobody to tell
            self._worker_loop.call_soon_threadsafe(callback, *args)
