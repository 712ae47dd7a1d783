"""The real PostgreSQL for tests: a scratch database per test session, a schema per test.

RETRYD_TEST_POSTGRES_URL (a postgresql:// URL) names the server (default: the machine's
127.0.0.1:5432, trust auth, database `test`). The session creates a database of its own there and
drops it at the end, so a run leaves nothing behind and never touches another run's tables. Where
no server answers, the PostgreSQL tests are skipped with the reason, except under CI (CI=true),
where they fail.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator
from urllib.parse import urlsplit

import psycopg
import pytest
from psycopg import sql

from store.postgres import migrate

__all__ = ["POSTGRES_URL_ENV", "migrated_namespace", "scratch_database", "server_url"]

POSTGRES_URL_ENV = "RETRYD_TEST_POSTGRES_URL"
DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/test"


def server_url() -> str:
    """The server to test against; skip (or, under CI, fail) when it does not answer."""
    url = os.environ.get(POSTGRES_URL_ENV) or DEFAULT_URL
    try:
        psycopg.connect(url, connect_timeout=3).close()
    except psycopg.OperationalError as error:
        reason = f"no PostgreSQL at {POSTGRES_URL_ENV} or {DEFAULT_URL}: {error}"
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    return url


@contextlib.contextmanager
def scratch_database(url: str, prefix: str = "retryd_test") -> Iterator[str]:
    """A new database on url's server; yields its URL; dropped (connections and all) at exit."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(url, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield urlsplit(url)._replace(path=f"/{name}").geturl()
    finally:
        with psycopg.connect(url, autocommit=True) as admin:
            admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


@contextlib.contextmanager
def migrated_namespace(url: str, namespace: str) -> Iterator[str]:
    """namespace migrated on url's database; its schema dropped at exit."""
    with psycopg.connect(url, autocommit=True) as conn:
        migrate(conn, namespace)
    try:
        yield namespace
    finally:
        with psycopg.connect(url, autocommit=True) as conn:
            drop = sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(namespace))
            conn.execute(drop)
