"""`retryd run`: the daemon. Claims and runs tasks until SIGTERM or SIGINT.

With `--processes N` (or [worker] processes) above 1 it runs a supervisor instead, which starts
N copies of this command as children (worker/supervisor.py).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

import structlog

from store import StoreError, TransientError, WorkerStore
from worker.background import cancel_and_wait
from worker.commands._common import add_config_argument, config_from_args, open_store
from worker.config import Config
from worker.cpu import OneCpu
from worker.embedded import EmbeddedServer, running_url, stop_orphan
from worker.eventloop import new_event_loop
from worker.heartbeat import beating, worker_report
from worker.logs import configure_logging, secrets_of_url
from worker.loop import Worker
from worker.metrics import unhandled_ready
from worker.registry import default_registry, import_handler_modules
from worker.supervisor import (
    SUPERVISED_OPTION,
    Supervisor,
    child_environment,
    report_to_supervisor,
    runtime_directory,
)

__all__ = ["add_parser"]

log = structlog.get_logger("retryd")


def add_parser(commands: Any) -> None:
    parser: argparse.ArgumentParser = commands.add_parser(
        "run", help="run the worker daemon", description=__doc__
    )
    add_config_argument(parser)
    parser.add_argument(
        "--burst", action="store_true", help="exit once nothing is due and nothing runs"
    )
    parser.add_argument(
        "--processes",
        type=int,
        metavar="N",
        help="worker processes, under one supervisor (default: [worker] processes, 1)",
    )
    # Given by the supervisor to its children: where they report (worker/supervisor.py).
    parser.add_argument(SUPERVISED_OPTION, type=Path, help=argparse.SUPPRESS)
    parser.set_defaults(handler=main)


def main(args: argparse.Namespace) -> int:
    config = config_from_args(args)
    if args.processes is not None:
        config = dataclasses.replace(
            config, worker=dataclasses.replace(config.worker, processes=args.processes)
        )
        config.check()
    configure_logging(config.log, secrets_of_url(config.redis.url))
    import_handler_modules(config.handlers.modules)
    embedded: EmbeddedServer | None = None
    if not config.redis.url and stop_orphan(config.embedded.data_dir):
        log.warning("stopped the embedded server a killed run left behind")
    url = config.redis.url or running_url(config.embedded.data_dir)
    if not url:
        embedded = EmbeddedServer(config.embedded.data_dir)
        url = embedded.start()
        log.info("embedded server started", data_dir=str(embedded.data_dir), url=url)
    try:
        if config.worker.processes > 1:
            given_url = None if embedded is None else url
            return asyncio.run(_supervise(config, url, args, given_url))
        with asyncio.Runner(loop_factory=new_event_loop) as runner:
            runner.run(
                _serve(
                    config,
                    url,
                    burst=args.burst,
                    supervised_by=args.supervised_by,
                    embedded=embedded,
                )
            )
    finally:
        if embedded is not None:
            embedded.stop()
    _leave_stuck_threads()
    return 0


def _child_argv(args: argparse.Namespace) -> list[str]:
    """This command again, as one worker process: the same config file, the same mode.

    -P: no working directory in front of sys.path; the CLI puts it after the installed packages,
    as it does for `retryd run` itself.
    """
    argv = [sys.executable, "-P", "-m", "worker.cli", "run", "--processes", "1"]
    if args.config is not None:
        argv += ["--config", str(Path(args.config).resolve())]
    return [*argv, "--burst"] if args.burst else argv


async def _supervise(
    config: Config, url: str, args: argparse.Namespace, given_url: str | None
) -> int:
    with runtime_directory() as directory:
        supervisor = Supervisor(
            _child_argv(args),
            child_environment(directory, given_url),
            directory,
            processes=config.worker.processes,
            poll_interval=config.worker.poll_interval,
            handled_types=frozenset(default_registry.types()),
            burst=args.burst,
        )
        _forward_signals(supervisor)
        store = open_store(config, url)
        http = await _start_http(config, store, supervisor)
        log.info("supervisor started", processes=config.worker.processes)
        try:
            return await supervisor.run()
        finally:
            if http is not None:
                http.close()
            await store.aclose()
            log.info("supervisor stopped")


def _forward_signals(supervisor: Supervisor) -> None:
    """Each SIGTERM/SIGINT goes to every child: the first drains them, a second ends them."""
    loop = asyncio.get_running_loop()

    def on_signal(signum: int) -> None:
        log.info("stopping worker processes", signal=signal.Signals(signum).name)
        supervisor.stop(signum)

    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, on_signal, signum)


def _leave_stuck_threads() -> None:
    """Exit now if plain handlers still run past shutdown_grace or their timeout.

    Python joins pool threads at exit, for as long as they hang; their tasks are released or
    settled already, so waiting would only hold up the exit (and the next worker's lease).
    """
    deadline = time.monotonic() + 0.2  # idle pool threads end at once after the pool's shutdown
    threads = [t for t in threading.enumerate() if t.name.startswith("retryd-handler")]
    for thread in threads:
        thread.join(timeout=max(deadline - time.monotonic(), 0.0))
    stuck = sum(thread.is_alive() for thread in threads)
    if stuck:
        log.warning("exiting without the plain handlers still running", threads=stuck)
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)


async def _serve(
    config: Config,
    url: str,
    *,
    burst: bool,
    supervised_by: Path | None,
    embedded: EmbeddedServer | None = None,
) -> None:
    store = open_store(config, url)
    # The lease keeper's own connections, in its own thread: a handler blocking the event loop
    # must not make the leases of the tasks beside it lapse (worker/leases.py).
    worker = Worker(store, default_registry, config, lease_store=lambda: open_store(config, url))
    _handle_signals(worker)
    reporter = None
    if supervised_by is not None:
        structlog.contextvars.bind_contextvars(pid=os.getpid())
        reporter = asyncio.create_task(report_to_supervisor(worker, supervised_by))
    try:
        await _warn_about_server(store)  # a PostgreSQL schema this code does not know: refused
    except BaseException:
        await store.aclose()
        raise
    await _warn_about_unhandled(store, worker.handled_types)
    one_cpu = OneCpu.start() if config.worker.one_cpu else None
    moving = None if one_cpu is None else asyncio.create_task(one_cpu.keep())
    http = await _start_http(config, store, worker)
    log.info(
        "worker started",
        namespace=config.redis.namespace,
        types=default_registry.types(),
        concurrency=config.worker.concurrency,
    )
    report = worker_report(worker.metrics, default_registry.types(), config.worker.concurrency)
    try:
        # Its own connection: one left dead by a Redis restart must fail a beat, never a claim.
        async with beating(open_store(config, url), report):
            await worker.run(burst=burst)
    finally:
        await cancel_and_wait([task for task in (reporter, moving) if task is not None])
        if http is not None:
            http.close()
        await store.aclose()
    log.info("worker stopped")
    if worker.abandoned_runs:
        _leave_abandoned_handlers(worker.abandoned_runs, embedded)


def _leave_abandoned_handlers(runs: int, embedded: EmbeddedServer | None) -> None:
    """Exit now: the asyncio runner would wait at exit, forever, for handlers that ignore
    cancellation.

    Their tasks are released or settled already (worker/runs.py gave up on them).
    """
    log.warning("exiting without the async handlers that ignored their cancellation", runs=runs)
    if embedded is not None:
        embedded.stop()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def _handle_signals(worker: Worker) -> None:
    """First SIGTERM/SIGINT: drain and exit 0. A second one: exit at once."""
    loop = asyncio.get_running_loop()
    received = 0

    def on_signal(signum: int) -> None:
        nonlocal received
        received += 1
        if received > 1:
            log.warning("second signal; exiting at once", signal=signal.Signals(signum).name)
            os._exit(1)
        log.info("stopping", signal=signal.Signals(signum).name)
        worker.stop()

    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, on_signal, signum)


async def _warn_about_server(store: WorkerStore) -> None:
    """Warn when the server may lose acknowledged tasks: no AOF, or an evicting policy."""
    try:
        facts = await store.server_facts()
    except TransientError:
        return  # the worker rides out the outage; the check is advice, not a gate
    if not facts.persistent:
        why = (
            "fsync or synchronous_commit is off"
            if facts.version.startswith("postgresql")
            else "append-only persistence is off"
        )
        log.warning(f"{why}: a crash loses recent tasks", server=facts.version)
    policy = facts.eviction_policy
    if policy != "noeviction":
        log.warning("redis may evict task keys under memory pressure", maxmemory_policy=policy)


async def _warn_about_unhandled(store: WorkerStore, handled: frozenset[int]) -> None:
    """Warn when tasks are due of a type no handler is registered for: they would wait forever.

    /metrics reports them too, as retryd_tasks_ready_unhandled, and warns again for new types.
    """
    try:
        waiting = unhandled_ready(await store.stats(), handled)
    except StoreError:
        return  # advice, not a gate: the worker rides out the outage
    if waiting:
        log.warning(
            "tasks are due of types no handler is registered for; they wait unclaimed",
            types=waiting,
        )


async def _start_http(
    config: Config, store: WorkerStore, worker: Worker | Supervisor
) -> asyncio.Server | None:
    if config.metrics.port == 0:
        return None
    from worker.http import start_observability_server

    return await start_observability_server(
        config.metrics, store=store, metrics=worker.metrics, worker=worker
    )
