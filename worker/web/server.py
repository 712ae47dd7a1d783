"""Serve the dashboard with uvicorn until SIGTERM or SIGINT, then close the store.

uvicorn's own access log is off: worker/web/app.py logs each request through structlog, by path
only, so the JSON log format and the secret scrubber apply to it like every other line.
"""

from __future__ import annotations

import structlog
import uvicorn

from store import WorkerStore
from store.connection import redact
from worker.config import WebSettings
from worker.web.app import create_app
from worker.web.board import Board

__all__ = ["serve"]

log = structlog.get_logger("retryd.web")


async def serve(settings: WebSettings, store: WorkerStore, url: str) -> None:
    """Listen on settings.host:port until told to stop; the store stays open meanwhile."""
    app = create_app(settings, Board(store), redis_label=redact(url))
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            host=settings.host,
            port=settings.port,
            log_config=None,
            access_log=False,
            server_header=False,
            proxy_headers=False,
            timeout_graceful_shutdown=5,
        )
    )
    log.info(
        "dashboard listening",
        url=f"http://{settings.host}:{settings.port}/",
        auth=settings.auth,
        read_only=settings.read_only,
    )
    try:
        await server.serve()
    finally:
        await store.aclose()
    log.info("dashboard stopped")
