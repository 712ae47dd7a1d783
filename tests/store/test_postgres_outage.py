"""The PostgreSQL stores while their server is away: a call fails with StoreUnavailable within a
second or two, not after the pool's whole timeout (POOL_TIMEOUT_SECONDS); it succeeds again
once the server is back, on the same store; and a pool that is merely busy is still waited for.

The outage is real: a server of the test's own (tests/pg.py) stopped with an immediate shutdown
and started again on the same port; a port nothing listens on; a socket that accepts TCP and
never answers (as a black-holed host does).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import socket
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import UTC, datetime

import pytest

from store import Record, State, StoreUnavailable
from store.postgres import PostgresStore, SyncPostgresStore
from store.postgres._connection import POOL_TIMEOUT_SECONDS
from tests.pg import FAST_FAILURE_SECONDS, PostgresServer, migrated_namespace, postgres_server
from tests.servers import HOST, free_port


def timed_failure(call: Callable[[], object]) -> tuple[StoreUnavailable, float]:
    started = time.monotonic()
    with pytest.raises(StoreUnavailable) as raised:
        call()
    return raised.value, time.monotonic() - started


async def timed_async_failure(
    call: Callable[[], Awaitable[object]],
) -> tuple[StoreUnavailable, float]:
    started = time.monotonic()
    with pytest.raises(StoreUnavailable) as raised:
        await call()
    return raised.value, time.monotonic() - started


@pytest.fixture
def own_server() -> Iterator[PostgresServer]:
    with postgres_server() as server:
        yield server


@pytest.fixture
def namespace_pg(postgres_url: str) -> Iterator[str]:
    with migrated_namespace(postgres_url, f"t-{uuid.uuid4().hex[:12]}") as namespace:
        yield namespace


@contextlib.contextmanager
def silent_socket() -> Iterator[int]:
    """A port that accepts TCP connections (the kernel's backlog does) and never says a word."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        sock.listen(16)
        yield int(sock.getsockname()[1])


async def test_async_store_fails_fast_while_the_server_is_down_and_recovers(
    own_server: PostgresServer,
) -> None:
    with migrated_namespace(own_server.url, "outage") as namespace:
        async with PostgresStore.from_url(own_server.url, namespace=namespace) as store:
            await store.put_all(Record("before", 1, b"{}"))
            assert await store.count_by_state(State.PENDING) == 1
            own_server.crash()
            for _ in range(3):  # the pooled connection's loss, then no server to connect to
                error, took = await timed_async_failure(lambda: store.count_by_state(State.PENDING))
                assert took < FAST_FAILURE_SECONDS, f"{took:.2f} s to fail: {error}"
            # put_all resends a batch whose reply may be lost: still bounded.
            _, took = await timed_async_failure(lambda: store.put_all(Record("during", 1, b"{}")))
            assert took < 2 * FAST_FAILURE_SECONDS
            own_server.start()
            assert await store.count_by_state(State.PENDING) == 1  # the first call after
            await store.put_all(Record("after", 1, b"{}"))
            assert await store.count_by_state(State.PENDING) == 2


def test_sync_store_fails_fast_while_the_server_is_down_and_recovers(
    own_server: PostgresServer,
) -> None:
    with (
        migrated_namespace(own_server.url, "outage") as namespace,
        SyncPostgresStore.from_url(own_server.url, namespace=namespace) as store,
    ):
        store.put_all(Record("before", 1, b"{}"))
        assert store.count_by_state(State.PENDING) == 1
        own_server.crash()
        for _ in range(3):
            error, took = timed_failure(lambda: store.count_by_state(State.PENDING))
            assert took < FAST_FAILURE_SECONDS, f"{took:.2f} s to fail: {error}"
        own_server.start()
        assert store.count_by_state(State.PENDING) == 1
        store.put_all(Record("after", 1, b"{}"))
        assert store.count_by_state(State.PENDING) == 2


async def test_a_store_whose_server_refuses_connections_fails_at_once() -> None:
    """Never reached (a CLI command's case): no pool timeout to wait, and the password the URL
    holds is not in the error."""
    url = f"postgresql://retryd:s3cret-pw@{HOST}:{free_port()}/nowhere"
    async with PostgresStore.from_url(url, namespace="down") as store:
        for _ in range(2):
            error, took = await timed_async_failure(lambda: store.count_by_state(State.PENDING))
            assert took < FAST_FAILURE_SECONDS
            assert "s3cret-pw" not in str(error)
    with SyncPostgresStore.from_url(url, namespace="down") as sync_store:
        error, took = timed_failure(lambda: sync_store.count_by_state(State.PENDING))
        assert took < FAST_FAILURE_SECONDS
        assert "s3cret-pw" not in str(error)
        error, took = timed_failure(sync_store.migrate)
        assert took < FAST_FAILURE_SECONDS


async def test_a_server_that_never_answers_costs_a_call_the_connect_timeout() -> None:
    """A black-holed host: the call's own attempt gives up after the connect timeout (2 s
    here, psycopg's least), not the pool's timeout; closing the store does not wait either."""
    with silent_socket() as port:
        url = f"postgresql://postgres@{HOST}:{port}/nowhere"
        started = time.monotonic()
        async with PostgresStore.from_url(
            url, namespace="down", kwargs={"connect_timeout": 2}
        ) as store:
            error, took = await timed_async_failure(lambda: store.count_by_state(State.PENDING))
            assert 1.5 < took < FAST_FAILURE_SECONDS + 1, error
        assert time.monotonic() - started < FAST_FAILURE_SECONDS + 1.5
        with SyncPostgresStore.from_url(
            url, namespace="down", kwargs={"connect_timeout": 2}
        ) as sync_store:
            _, took = timed_failure(lambda: sync_store.count_by_state(State.PENDING))
            assert 1.5 < took < FAST_FAILURE_SECONDS + 1


@contextlib.asynccontextmanager
async def all_connections_held(store: PostgresStore, seconds: float) -> AsyncIterator[None]:
    """Every connection of store's pool (max_size) lent out for seconds, in the background."""
    size = store.pool.max_size
    taken = asyncio.Event()

    async def hold() -> None:
        async with contextlib.AsyncExitStack() as stack:
            for _ in range(size):
                await stack.enter_async_context(store.pool.connection())
            taken.set()
            await asyncio.sleep(seconds)

    holder = asyncio.create_task(hold())
    await asyncio.wait_for(taken.wait(), 10)
    try:
        yield
    finally:
        await holder


async def test_a_busy_pool_is_waited_for_not_taken_for_an_outage(
    postgres_url: str, namespace_pg: str
) -> None:
    """All the pool's connections lent out, the server fine: a call waits for one to come back
    (the pool's timeout), as before; after a busy pool's timeout, the next call still succeeds
    (its own connection proves the server there) instead of failing fast."""
    async with PostgresStore.from_url(
        postgres_url, namespace=namespace_pg, max_size=2, timeout=4.0
    ) as store:
        assert await store.count_by_state(State.PENDING) == 0  # the server reached
        async with all_connections_held(store, 1.5):
            started = time.monotonic()
            assert await store.count_by_state(State.PENDING) == 0
            assert time.monotonic() - started > 1.0  # it waited for a connection back

    async with PostgresStore.from_url(
        postgres_url, namespace=namespace_pg, max_size=2, timeout=1.0
    ) as store:
        await store.put_all(Record("busy", 1, b"{}"))
        async with all_connections_held(store, 3.0):
            _, took = await timed_async_failure(lambda: store.count_by_state(State.PENDING))
            assert took >= 0.9  # the pool's own timeout, waited in full
            assert await store.count_by_state(State.PENDING) == 1  # pool still busy
        assert await store.count_by_state(State.PENDING) == 1
        ready = await store.get_all_ready_by_state(State.PENDING, datetime.now(UTC))
        assert [r.task_id for r in ready] == ["busy"]


async def test_a_call_queued_for_the_pool_when_the_server_went_away_is_served_when_it_returns(
    own_server: PostgresServer,
) -> None:
    """A call that queued for a busy pool before the crash was known: the pool gives up
    reconnecting after reconnect_timeout (2 s), and starts again while such a call waits, so the
    call gets its connection about a second after the server returns, not a PoolTimeout."""
    with migrated_namespace(own_server.url, "queued") as namespace:
        async with PostgresStore.from_url(own_server.url, namespace=namespace, max_size=1) as store:
            assert await store.count_by_state(State.PENDING) == 0  # reached: not in doubt
            held = await store.pool.getconn()
            queued = asyncio.create_task(store.count_by_state(State.PENDING))
            await asyncio.sleep(0.2)
            own_server.crash()
            with contextlib.suppress(Exception):
                await held.execute("SELECT 1")  # learns the connection is gone
            await store.pool.putconn(held)  # discarded: the pool starts reconnecting
            await asyncio.sleep(3.5)  # past the pool's reconnect_timeout, attempts given up
            assert not queued.done()
            own_server.start()
            restarted = time.monotonic()
            assert await asyncio.wait_for(queued, POOL_TIMEOUT_SECONDS) == 0
            assert time.monotonic() - restarted < FAST_FAILURE_SECONDS


def test_the_sync_pool_too_serves_a_queued_call_when_the_server_returns(
    own_server: PostgresServer,
) -> None:
    """As above, on SyncPostgresStore: the pool's reconnect_failed runs in its worker thread."""
    with (
        migrated_namespace(own_server.url, "queued") as namespace,
        SyncPostgresStore.from_url(own_server.url, namespace=namespace, max_size=1) as store,
        concurrent.futures.ThreadPoolExecutor(1) as executor,
    ):
        assert store.count_by_state(State.PENDING) == 0
        held = store.pool.getconn()
        queued = executor.submit(store.count_by_state, State.PENDING)
        time.sleep(0.2)
        own_server.crash()
        with contextlib.suppress(Exception):
            held.execute("SELECT 1")
        store.pool.putconn(held)
        time.sleep(3.5)
        assert not queued.done()
        own_server.start()
        restarted = time.monotonic()
        assert queued.result(timeout=POOL_TIMEOUT_SECONDS) == 0
        assert time.monotonic() - restarted < FAST_FAILURE_SECONDS
