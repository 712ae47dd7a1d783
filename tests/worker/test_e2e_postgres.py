"""End to end on PostgreSQL: `retryd migrate`, `retryd run`, and a worker that will not start on
a schema it does not know, as an operator meets them (real processes, the machine's server)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from store import Record, SchemaVersionError, State
from store.postgres import SCHEMA_VERSION, PostgresStore, SyncPostgresStore
from tests.pg import migrated_namespace
from worker import Config, Registry, Worker, handler

RETRYD = [sys.executable, "-m", "worker.cli"]


@pytest.fixture
def env(postgres_url: str, namespace: str) -> dict[str, str]:
    """The child's environment: the PostgreSQL URL and the test's namespace, nothing else of
    ours (a checkout's config.toml is not picked up: the child runs in tmp_path)."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("RETRYD_")}
    return clean | {
        "RETRYD_REDIS_URL": postgres_url,
        "RETRYD_REDIS_NAMESPACE": namespace,
        "RETRYD_METRICS_PORT": "0",
        "RETRYD_WORKER_POLL_INTERVAL": "0.1",
        "PYTHONPATH": str(Path(__file__).resolve().parents[2]),
    }


def retryd(env: dict[str, str], cwd: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*RETRYD, *argv], env=env, cwd=cwd, capture_output=True, text=True, timeout=60
    )


@pytest.fixture
def dropped_after(postgres_url: str, namespace: str) -> Iterator[None]:
    yield
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(namespace)))


@pytest.mark.usefixtures("dropped_after")
def test_run_refuses_a_namespace_never_migrated_saying_what_to_run(
    env: dict[str, str], tmp_path: Path
) -> None:
    result = retryd(env, tmp_path, "run", "--burst")
    assert result.returncode == 2, result.stderr
    assert "run `retryd migrate`" in result.stderr
    assert "Traceback" not in result.stderr


def test_run_refuses_a_schema_newer_than_it_knows(
    env: dict[str, str], tmp_path: Path, postgres_url: str, namespace: str
) -> None:
    with migrated_namespace(postgres_url, namespace):
        with psycopg.connect(postgres_url) as conn:
            table = sql.Identifier(namespace, "schema_version")
            conn.execute(sql.SQL("UPDATE {} SET version = %s").format(table), [SCHEMA_VERSION + 1])
        result = retryd(env, tmp_path, "run", "--burst")
    assert result.returncode == 2, result.stderr
    assert "upgrade retryd" in result.stderr


@pytest.mark.usefixtures("dropped_after")
def test_migrate_then_run_confirms_every_task(
    env: dict[str, str], tmp_path: Path, postgres_url: str, namespace: str
) -> None:
    """The README's quick start on PostgreSQL: migrate, put, run; every task CONFIRMED, and
    `count` reads the same store."""
    assert retryd(env, tmp_path, "migrate").returncode == 0
    with SyncPostgresStore.from_url(postgres_url, namespace=namespace) as store:
        store.put_all(*(Record(f"hello-{i}", 1, b"hello") for i in range(40)))
    run = retryd(env, tmp_path, "run", "--burst")
    assert run.returncode == 0, run.stderr
    with SyncPostgresStore.from_url(postgres_url, namespace=namespace) as store:
        assert store.count_by_state(State.CONFIRMED) == 40
        assert store.count_by_state(State.PENDING) == 0
    count = retryd(env, tmp_path, "count", "--json")
    assert count.returncode == 0, count.stderr
    assert '"confirmed": 40' in count.stdout


async def test_a_worker_stops_when_its_schema_goes_away_mid_run(
    postgres_url: str, namespace: str
) -> None:
    """A schema dropped (or replaced) under a running worker is not an outage to ride out: the
    worker stops with the error that says what to run, instead of claiming in vain forever."""
    registry = Registry()

    @handler(type=1, registry=registry)
    async def ok(record: Record) -> None: ...

    config = Config.from_mapping({"worker": {"poll_interval": 0.05}})
    with migrated_namespace(postgres_url, namespace):
        async with PostgresStore.from_url(postgres_url, namespace=namespace) as store:
            worker = Worker(store, registry, config)
            running = asyncio.create_task(worker.run())
            await asyncio.sleep(0.3)  # claiming, idle
            with psycopg.connect(postgres_url, autocommit=True) as conn:
                drop = sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(namespace))
                conn.execute(drop)
            with pytest.raises(SchemaVersionError, match="run `retryd migrate`"):
                await asyncio.wait_for(running, 10)
