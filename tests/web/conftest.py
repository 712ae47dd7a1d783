"""Fixtures for the dashboard: the ASGI app on the test's namespace, driven in-process by httpx.

The app runs on the real store (the session's Redis); only the HTTP hop is in-process, so these
tests are fast. tests/web/test_browser.py drives a real `retryd web` process in chromium.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from store import Record, RedisStore, State, Store
from worker.config import WebSettings
from worker.web import Board, create_app

BASE_URL = "http://127.0.0.1:9465"
SECRET = "correct-horse-battery-staple"

Dashboard = Callable[..., AbstractAsyncContextManager[httpx.AsyncClient]]


@pytest.fixture
def dashboard(redis_store: RedisStore) -> Dashboard:
    """dashboard(**web_settings) -> an httpx client on the app over the test's namespace."""

    @asynccontextmanager
    async def open_dashboard(**settings: object) -> AsyncIterator[httpx.AsyncClient]:
        app = create_app(
            WebSettings(**settings),  # type: ignore[arg-type]
            Board(redis_store),
            redis_label="redis://127.0.0.1/0",
        )
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url=BASE_URL) as client:
            yield client

    return open_dashboard


def task_record(
    task_id: str,
    *,
    state: State = State.PENDING,
    task_type: int = 1,
    data: bytes = b"hello",
    failed_attempts: int = 0,
) -> Record:
    """A task to put, due now, in any state (put_all stores the state it is given)."""
    return Record(
        task_id=task_id,
        type=task_type,
        data=data,
        state=state,
        failed_attempts=failed_attempts,
        next_attempt_at=datetime.now(UTC),
    )


async def put_task(store: Store, task_id: str, **fields: Any) -> Record:
    """Put task_record(task_id, **fields); return it as stored."""
    await store.put_all(task_record(task_id, **fields))
    return await store.get_by_task_id(task_id)


async def csrf_token(client: httpx.AsyncClient) -> str:
    """Open the overview (which hands out the CSRF cookie); return the token forms carry."""
    await client.get("/")
    return csrf_of(client)


def csrf_of(client: httpx.AsyncClient) -> str:
    """The CSRF token the dashboard gave this client (its cookie; forms carry the same)."""
    token = client.cookies.get("retryd_csrf")
    assert token, "the dashboard set no CSRF cookie"
    return token


@pytest.fixture
def free_redis_url() -> str:
    """A Redis URL on a loopback port where nothing listens: Redis is down."""
    from tests.servers import free_port

    return f"redis://127.0.0.1:{free_port()}/0"
