"""Fixtures for the observability endpoints: a listener on an ephemeral loopback port."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

from store import RedisStore
from worker.config import MetricsSettings
from worker.http import start_observability_server
from worker.loop import Worker
from worker.metrics import WorkerMetrics

LOOPBACK = MetricsSettings(host="127.0.0.1", port=0)  # port 0: the kernel picks a free one


@contextlib.asynccontextmanager
async def listening(
    store: RedisStore,
    *,
    metrics: WorkerMetrics | None = None,
    worker: Worker | None = None,
    **options: Any,
) -> AsyncIterator[int]:
    """Serve the endpoints for store (and worker); yield the bound port; close at exit."""
    server = await start_observability_server(
        LOOPBACK, store=store, metrics=metrics, worker=worker, **options
    )
    try:
        yield int(server.sockets[0].getsockname()[1])
    finally:
        server.close()
        await server.wait_closed()
