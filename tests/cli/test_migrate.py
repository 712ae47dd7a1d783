"""`retryd migrate`: creates the PostgreSQL schema once, reports, and refuses what it cannot do."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator

import psycopg
import pytest
from psycopg import sql

from store.postgres import SCHEMA_VERSION
from tests.cli.conftest import Retryd, assert_one_error_line


@pytest.fixture
def pg_namespace(postgres_url: str) -> Iterator[str]:
    name = f"t-{uuid.uuid4().hex[:12]}"
    yield name
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(name)))


def test_migrate_creates_the_schema_then_reports_it_up_to_date(
    retryd: Retryd, postgres_url: str, pg_namespace: str
) -> None:
    env = {"RETRYD_REDIS_URL": postgres_url, "RETRYD_REDIS_NAMESPACE": pg_namespace}
    first = retryd("migrate", env=env)
    assert first.code == 0, first.err
    assert f"schema version 0 -> {SCHEMA_VERSION}" in first.out
    again = retryd("migrate", "--json", env=env)
    assert again.code == 0, again.err
    assert json.loads(again.out) == {
        "namespace": pg_namespace,
        "store": "postgresql",
        "before": SCHEMA_VERSION,
        "after": SCHEMA_VERSION,
        "applied": 0,
    }
    with psycopg.connect(postgres_url) as conn:
        table = sql.Identifier(pg_namespace, "tasks")
        assert conn.execute(sql.SQL("SELECT count(*) FROM {}").format(table)).fetchone() == (0,)


def test_migrate_on_redis_has_nothing_to_do(retryd: Retryd) -> None:
    result = retryd("migrate")
    assert result.code == 0, result.err
    assert "needs no schema" in result.out


def test_migrate_names_an_unreachable_server_without_its_password(retryd: Retryd) -> None:
    url = "postgresql://app:hunter2-secret@127.0.0.1:1/db"
    result = retryd("migrate", env={"RETRYD_REDIS_URL": url})
    assert result.code == 1
    assert_one_error_line(result, "cannot use PostgreSQL at", "app:***@127.0.0.1:1")
    assert "hunter2" not in result.out + result.err


def test_migrate_refuses_a_namespace_postgres_cannot_hold(
    retryd: Retryd, postgres_url: str
) -> None:
    env = {"RETRYD_REDIS_URL": postgres_url, "RETRYD_REDIS_NAMESPACE": "pg_reserved"}
    result = retryd("migrate", env=env)
    assert result.code == 2
    assert_one_error_line(result, "namespace", "pg_")
