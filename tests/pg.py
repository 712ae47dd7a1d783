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
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import psycopg
import pytest
from psycopg import sql

from store.postgres import PostgresStore, migrate
from store.postgres._connection import POOL_TIMEOUT_SECONDS
from tests.servers import HOST, free_port, log_tail, stop_process

__all__ = [
    "FAST_FAILURE_SECONDS",
    "POSTGRES_URL_ENV",
    "PostgresServer",
    "migrated_namespace",
    "postgres_server",
    "postgres_store",
    "scratch_database",
    "server_url",
]

POSTGRES_URL_ENV = "RETRYD_TEST_POSTGRES_URL"
DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/test"
# How soon a store (or a page on it) says the database is down: generous for a loaded machine,
# and well below the pool's timeout, which a store that waited for the database would reach.
FAST_FAILURE_SECONDS = 3.0
assert FAST_FAILURE_SECONDS < POOL_TIMEOUT_SECONDS / 3


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


@contextlib.asynccontextmanager
async def postgres_store(url: str, namespace: str, **options: Any) -> AsyncIterator[PostgresStore]:
    """A PostgresStore on namespace, migrated first; closed, and its schema dropped, at exit."""
    with migrated_namespace(url, namespace):
        async with PostgresStore.from_url(url, namespace=namespace, **options) as store:
            yield store


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


@dataclass
class PostgresServer:
    """A PostgreSQL server of a test's own (initdb in a temporary directory, a free loopback
    port), restartable after a crash on the same port and data; stopped by the pid it started.

    PostgreSQL refuses to run as root: as root, initdb and the server run as the `postgres`
    user (subprocess's user=), owning the data directory.
    """

    directory: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"postgresql://postgres@{HOST}:{self.port}/postgres"

    @property
    def log_path(self) -> Path:
        return self.directory / "server.log"

    def init(self) -> None:
        """initdb (trust auth for loopback, user postgres) into directory/data."""
        for tool in ("initdb", "postgres"):
            if shutil.which(tool) is None:
                pytest.skip(f"{tool} is not installed (apt-get install postgresql)")
        self.directory.mkdir(parents=True, exist_ok=True)
        _own(self.directory)
        argv = ["initdb", "-D", str(self.data), "-U", "postgres", "-A", "trust", "--no-sync"]
        subprocess.run(argv, check=True, capture_output=True, **_as_postgres())

    @property
    def data(self) -> Path:
        return self.directory / "data"

    def start(self, timeout: float = 20.0) -> None:
        """Start the server (again, after a crash: same port, same data) and wait for it."""
        argv = ["postgres", "-D", str(self.data), "-p", str(self.port), "-k", str(self.directory)]
        argv += ["-c", f"listen_addresses={HOST}", "-c", "fsync=off", "-c", "max_connections=60"]
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log, **_as_postgres()
            )
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"postgres exited:\n{self.log()}")
            with contextlib.suppress(psycopg.OperationalError):
                psycopg.connect(self.url, connect_timeout=1).close()
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"postgres did not start:\n{self.log()}")
            time.sleep(0.05)

    def crash(self) -> None:
        """An immediate shutdown (SIGQUIT, what `pg_ctl stop -m immediate` sends): every
        connection is cut, nothing is flushed, and the next start runs crash recovery."""
        if self.process is None:
            return
        os.kill(self.process.pid, signal.SIGQUIT)
        self.process.wait(timeout=20)
        self.process = None

    def stop(self) -> None:
        """A fast shutdown (SIGINT); SIGKILL if it is still there after a while."""
        if self.process is not None:
            stop_process(self.process, signal.SIGINT, timeout=20)
        self.process = None

    def log(self) -> str:
        return log_tail(self.log_path)


@contextlib.contextmanager
def postgres_server() -> Iterator[PostgresServer]:
    """A started server of the caller's own; stopped and its files removed at exit."""
    with tempfile.TemporaryDirectory(prefix="retryd-pg-") as name:
        server = PostgresServer(Path(name) / "pg")
        server.init()
        try:
            server.start()
            yield server
        finally:
            server.stop()


def _as_postgres() -> dict[str, Any]:
    """subprocess options that run a PostgreSQL binary as `postgres` when we are root."""
    return {"user": "postgres", "group": "postgres"} if os.geteuid() == 0 else {}


def _own(path: Path) -> None:
    if os.geteuid() == 0:
        shutil.chown(path, "postgres", "postgres")
        shutil.chown(path.parent, "postgres", "postgres")
