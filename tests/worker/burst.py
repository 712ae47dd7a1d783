"""The helpers the worker suites share: a small config, a task, one burst run of a Worker."""

from __future__ import annotations

import asyncio
from typing import Any

from store import Record, WorkerStore
from worker import Config, Registry, Worker

TYPE = 7
BURST_TIMEOUT = 10.0


def config(**worker: Any) -> Config:
    """Small leases and polls, retries due at once, unless a test says otherwise."""
    retry = {"max_attempts": 3, "initial_delay": 0, "max_delay": 0, "timeout": 5}
    retry |= worker.pop("retry", {})
    settings = {"concurrency": 4, "batch": 10, "lease": 1.0, "poll_interval": 0.05} | worker
    return Config.from_mapping({"worker": settings, "retry": retry})


def task(task_id: str, task_type: int = TYPE, **fields: Any) -> Record:
    return Record(task_id=task_id, type=task_type, data=b"payload", **fields)


async def burst(store: WorkerStore, registry: Registry, cfg: Config | None = None) -> Worker:
    worker = Worker(store, registry, cfg or config())
    await asyncio.wait_for(worker.run(burst=True), BURST_TIMEOUT)
    return worker
