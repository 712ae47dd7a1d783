"""`retryd check`: config, handler modules and the store's server (Redis, PostgreSQL), with exit
2 for the first two (and for a PostgreSQL schema the worker would refuse), 1 for the server."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from store.postgres import SCHEMA_VERSION, migrate
from tests.cli.conftest import Retryd, assert_one_error_line

HANDLERS = """
from worker import handler

@handler(type=77, max_attempts=3)
def charge(record):
    return None
"""


def test_check_lists_the_registered_handlers_and_the_server(
    retryd: Retryd, tmp_path: Path, namespace: str
) -> None:
    (tmp_path / "my_handlers.py").write_text(HANDLERS)
    (tmp_path / "retryd.toml").write_text(
        '[handlers]\nmodules = ["handlers.examples", "my_handlers"]\n'
        "[types.77]\ntimeout = 9.5\nconcurrency = 4\nrate = 2.5\n[types.99]\nmax_attempts = 2\n"
    )
    report = retryd("check", "--config", "retryd.toml", "--json")
    assert report.code == 0, report.err
    checked = json.loads(report.out)
    assert [(h["type"], h["handler"]) for h in checked["handlers"]] == [
        (1, "handlers.examples.log_task"),
        (2, "handlers.examples.post_webhook"),
        (77, "my_handlers.charge"),
    ]
    charge = checked["handlers"][2]
    assert (charge["max_attempts"], charge["timeout_seconds"], charge["async"]) == (3, 9.5, False)
    assert charge["concurrency"] == 4
    assert charge["rate"] == {"per_second": 2.5, "burst": 3}  # the default burst: ceil(rate)
    assert (checked["handlers"][0]["concurrency"], checked["handlers"][0]["rate"]) == (None, None)
    assert checked["namespace"] == namespace
    assert checked["redis"]["server"].split()[0] in ("redis", "valkey")
    assert "[types.99] is configured but no handler has type 99" in checked["warnings"]

    human = retryd("check", "--config", "retryd.toml")
    assert human.code == 0, human.err
    assert "my_handlers.charge" in human.out
    (charge_line,) = [line for line in human.out.splitlines() if "my_handlers.charge" in line]
    assert charge_line.split()[-4:] == ["4", "2.5/s,", "burst", "3"]
    assert human.out.splitlines()[-1] == "ok"


def test_check_exits_2_on_a_config_mistake_or_a_handler_module_that_fails(
    retryd: Retryd, tmp_path: Path
) -> None:
    (tmp_path / "typo.toml").write_text("[worker]\nconcurrncy = 4\n")
    typo = retryd("check", "--config", "typo.toml")
    assert (typo.code, typo.out) == (2, "")
    assert_one_error_line(typo, "worker.concurrncy: unknown key")

    (tmp_path / "broken_handlers.py").write_text("import no_such_module_here\n")
    broken = retryd("check", env={"RETRYD_HANDLERS_MODULES": "broken_handlers"})
    assert (broken.code, broken.out) == (2, "")
    assert_one_error_line(broken, "cannot import 'broken_handlers'", "no_such_module_here")


@pytest.fixture
def pg_env(postgres_url: str, namespace: str) -> Iterator[dict[str, str]]:
    """`retryd` pointed at the test's namespace in the session's PostgreSQL database (not
    migrated: tests migrate it when they want it); its schema dropped afterwards."""
    yield {"RETRYD_REDIS_URL": postgres_url, "RETRYD_HANDLERS_MODULES": "handlers.examples"}
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(namespace)))


def test_check_on_postgresql_reports_its_settings_and_schema_in_its_terms(
    retryd: Retryd, postgres_url: str, namespace: str, pg_env: dict[str, str]
) -> None:
    with psycopg.connect(postgres_url) as conn:
        migrate(conn, namespace)
    report = retryd("check", "--json", env=pg_env)
    assert report.code == 0, report.err
    checked = json.loads(report.out)
    assert "redis" not in checked
    database = checked["postgresql"]
    assert database["server"].split(".")[0].isdigit()
    assert (database["fsync"], database["synchronous_commit"]) == ("on", "on")
    assert database["schema_version"] == database["code_schema_version"] == SCHEMA_VERSION
    assert (database["migrations_pending"], checked["ok"]) == (False, True)

    human = retryd("check", env=pg_env)
    assert human.code == 0, human.err
    lines = human.out.splitlines()
    assert f"postgresql: {postgres_url}" in lines
    assert any(
        line.startswith("server:     PostgreSQL ")
        and line.endswith(", fsync on, synchronous_commit on")
        for line in lines
    ), human.out
    assert f"schema:     version {SCHEMA_VERSION}, as this retryd needs: up to date" in lines
    assert "appendonly" not in human.out
    assert "maxmemory" not in human.out
    assert lines[-1] == "ok"

    # A session whose commits do not wait for the disk: said, not failed.
    lax = retryd("check", env=pg_env | {"PGOPTIONS": "-c synchronous_commit=off"})
    assert lax.code == 0, lax.err
    assert "warning:    synchronous_commit is off: a database crash loses" in lax.out


def test_check_on_postgresql_fails_while_migrations_are_pending_saying_what_to_run(
    retryd: Retryd, postgres_url: str, namespace: str, pg_env: dict[str, str]
) -> None:
    missing = retryd("check", "--json", env=pg_env)
    assert missing.code == 2
    checked = json.loads(missing.out)
    assert checked["postgresql"]["schema_version"] is None
    assert (checked["postgresql"]["migrations_pending"], checked["ok"]) == (True, False)
    assert_one_error_line(missing, f"namespace {namespace!r} has no retryd schema", "migrate")

    with psycopg.connect(postgres_url) as conn:
        migrate(conn, namespace)
        table = sql.Identifier(namespace, "schema_version")
        conn.execute(sql.SQL("UPDATE {} SET version = %s").format(table), [SCHEMA_VERSION - 1])
    behind = retryd("check", env=pg_env)
    assert behind.code == 2
    assert (
        f"schema:     version {SCHEMA_VERSION - 1}, this retryd needs {SCHEMA_VERSION}: "
        "migrations pending"
    ) in behind.out.splitlines()
    assert "ok" not in behind.out.splitlines()
    assert_one_error_line(behind, "run `retryd migrate`")

    with psycopg.connect(postgres_url) as conn:
        conn.execute(sql.SQL("UPDATE {} SET version = %s").format(table), [SCHEMA_VERSION])
    assert retryd("check", env=pg_env).code == 0
