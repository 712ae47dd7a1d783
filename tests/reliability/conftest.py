"""Fixtures of the reliability suite: its own servers, a ledger, worker pools, the report table.

Every scenario gets a fresh redis-server for the store (some kill it, flush its scripts or
restart it), and shares one plain server for the ledger, which no scenario disturbs.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from tests.reliability.harness import REPORT, Ledger, Pool, format_report
from tests.servers import RedisServer, redis_server

PoolFactory = Callable[..., Pool]
ServerFactory = Callable[..., RedisServer]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/reliability/" in str(item.path).replace("\\", "/"):
            item.add_marker(pytest.mark.reliability)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not REPORT:
        return
    terminalreporter.section("reliability")
    for line in format_report(sorted(REPORT, key=lambda row: int(row.scenario.split()[0]))):
        terminalreporter.write_line(line)


@pytest.fixture(scope="session")
def ledger_server() -> Iterator[RedisServer]:
    with redis_server() as server:
        yield server


@pytest.fixture
def ledger(ledger_server: RedisServer) -> Iterator[Ledger]:
    """An empty run ledger of this test's own."""
    with ledger_server.client() as client:
        yield Ledger(client, f"ledger:{uuid.uuid4().hex}")


@pytest.fixture
def ns() -> str:
    return f"rel-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def store_server_factory(tmp_path: Path) -> Iterator[ServerFactory]:
    """Start a store server with extra redis-server args; each is stopped at teardown."""
    with contextlib.ExitStack() as stack:

        def start(*args: str) -> RedisServer:
            directory = tmp_path / f"redis-{uuid.uuid4().hex[:6]}"
            return stack.enter_context(redis_server(*args, directory=directory))

        yield start


@pytest.fixture
def store_server(store_server_factory: ServerFactory) -> RedisServer:
    return store_server_factory()


@pytest.fixture
def store_client(store_server: RedisServer) -> Iterator[redis.Redis]:
    with store_server.client() as client:
        yield client


@pytest.fixture
def make_pool(
    tmp_path: Path, ns: str, ledger: Ledger, ledger_server: RedisServer
) -> Iterator[PoolFactory]:
    """Build a Pool for a store URL with config overrides; every worker is stopped at teardown."""
    pools: list[Pool] = []

    def build(redis_url: str, **overrides: Any) -> Pool:
        directory = tmp_path / f"pool-{len(pools)}"
        directory.mkdir()
        pool = Pool(
            directory,
            redis_url=redis_url,
            namespace=ns,
            ledger_url=ledger_server.url,
            ledger_key=ledger.key,
            **overrides,
        )
        pools.append(pool)
        return pool

    yield build
    for pool in pools:
        pool.stop_all()
