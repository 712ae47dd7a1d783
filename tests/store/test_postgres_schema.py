"""PostgreSQL's own rules: migrate (versioned, idempotent, safe in parallel), namespaces as
schemas, the schema check a worker makes, and put_all racing on one task id."""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import Iterator

import psycopg
import pytest
from psycopg import sql

from store import ExistsError, NotFoundError, Record, State, ValidationError
from store.postgres import (
    SCHEMA_VERSION,
    PostgresStore,
    SchemaVersionError,
    SyncPostgresStore,
    migrate,
)
from store.postgres._schema import Schema, migrations
from tests.pg import migrated_namespace


def _fresh_namespace() -> str:
    return f"t-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def bare_namespace(postgres_url: str) -> Iterator[str]:
    """A namespace nothing was migrated for yet; its schema is dropped afterwards if made."""
    name = _fresh_namespace()
    yield name
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(name)))


def _version(url: str, namespace: str) -> int:
    with psycopg.connect(url) as conn:
        query = sql.SQL("SELECT version FROM {}.schema_version").format(sql.Identifier(namespace))
        row = conn.execute(query).fetchone()
    assert row is not None
    return int(row[0])


def test_migrate_creates_the_schema_then_finds_nothing_to_do(
    postgres_url: str, bare_namespace: str
) -> None:
    with psycopg.connect(postgres_url) as conn:
        first = migrate(conn, bare_namespace)
        second = migrate(conn, bare_namespace)
    assert (first.before, first.after, first.applied) == (0, SCHEMA_VERSION, SCHEMA_VERSION)
    assert (second.before, second.after, second.applied) == (SCHEMA_VERSION, SCHEMA_VERSION, 0)
    assert _version(postgres_url, bare_namespace) == SCHEMA_VERSION


def test_migrate_from_many_connections_at_once_applies_each_step_once(
    postgres_url: str, bare_namespace: str
) -> None:
    """Eight containers starting together: all succeed, exactly one creates the schema."""
    reports: list[int] = []
    failures: list[BaseException] = []
    start = threading.Barrier(8)

    def run() -> None:
        try:
            with psycopg.connect(postgres_url) as conn:
                start.wait()
                reports.append(migrate(conn, bare_namespace).applied)
        except BaseException as error:  # collected and asserted on below
            failures.append(error)

    threads = [threading.Thread(target=run) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    assert sorted(reports) == [0] * 7 + [SCHEMA_VERSION]
    assert _version(postgres_url, bare_namespace) == SCHEMA_VERSION


def test_migrate_refuses_a_schema_newer_than_this_code(
    postgres_url: str, bare_namespace: str
) -> None:
    with psycopg.connect(postgres_url) as conn:
        migrate(conn, bare_namespace)
        table = sql.Identifier(bare_namespace, "schema_version")
        conn.execute(sql.SQL("UPDATE {} SET version = version + 1").format(table))
        conn.commit()
        with pytest.raises(SchemaVersionError, match="upgrade retryd"):
            migrate(conn, bare_namespace)
    assert _version(postgres_url, bare_namespace) == SCHEMA_VERSION + 1


async def test_check_schema_says_to_run_migrate_on_a_missing_schema(
    postgres_url: str, bare_namespace: str
) -> None:
    async with PostgresStore.from_url(postgres_url, namespace=bare_namespace) as store:
        with pytest.raises(SchemaVersionError, match="run `retryd migrate`"):
            await store.check_schema()
    with SyncPostgresStore.from_url(postgres_url, namespace=bare_namespace) as sync:
        with pytest.raises(SchemaVersionError, match="run `retryd migrate`"):
            sync.check_schema()
        assert sync.migrate().applied == SCHEMA_VERSION
        sync.check_schema()


@pytest.mark.parametrize(("delta", "advice"), [(-1, "run `retryd migrate`"), (1, "upgrade")])
async def test_check_schema_refuses_another_version(
    postgres_url: str, bare_namespace: str, delta: int, advice: str
) -> None:
    with psycopg.connect(postgres_url) as conn:
        migrate(conn, bare_namespace)
        table = sql.Identifier(bare_namespace, "schema_version")
        conn.execute(sql.SQL("UPDATE {} SET version = version + %s").format(table), [delta])
    async with PostgresStore.from_url(postgres_url, namespace=bare_namespace) as store:
        with pytest.raises(SchemaVersionError, match=advice) as caught:
            await store.check_schema()
    assert f"version {SCHEMA_VERSION + delta}" in str(caught.value)


@pytest.mark.parametrize("namespace", ["", "pg_catalog", "x" * 64, 'quo"te', "sp ace", 7])
def test_a_namespace_postgres_cannot_hold_is_refused(postgres_url: str, namespace: object) -> None:
    with pytest.raises(ValidationError) as caught:
        PostgresStore.from_url(postgres_url, namespace=namespace)  # type: ignore[arg-type]
    assert caught.value.field == "namespace"


async def test_namespaces_in_one_database_do_not_see_each_other(postgres_url: str) -> None:
    with (
        migrated_namespace(postgres_url, _fresh_namespace()) as first,
        migrated_namespace(postgres_url, _fresh_namespace()) as second,
    ):
        async with (
            PostgresStore.from_url(postgres_url, namespace=first) as a,
            PostgresStore.from_url(postgres_url, namespace=second) as b,
        ):
            await a.put_all(Record("same-id", 1, b"a"))
            await b.put_all(Record("same-id", 1, b"b"), Record("only-b", 1, b""))
            assert (await a.get_by_task_id("same-id")).data == b"a"
            assert (await b.get_by_task_id("same-id")).data == b"b"
            with pytest.raises(NotFoundError):
                await a.get_by_task_id("only-b")
            assert await a.count_by_state(State.PENDING) == 1
            assert await b.count_by_state(State.PENDING) == 2


async def test_concurrent_puts_of_one_task_id_store_it_once(postgres_url: str) -> None:
    """Twenty producers race to put the same task id: one wins, the others get ExistsError
    naming it (the unique index decides when their checks ran before the winner committed)."""
    with migrated_namespace(postgres_url, _fresh_namespace()) as namespace:
        async with PostgresStore.from_url(
            postgres_url, namespace=namespace, min_size=10, max_size=20
        ) as store:
            puts = [store.put_all(Record("contested", 1, bytes([i]))) for i in range(20)]
            results = await asyncio.gather(*puts, return_exceptions=True)
            assert sum(result is None for result in results) == 1
            refused = [r for r in results if r is not None]
            assert all(isinstance(r, ExistsError) for r in refused)
            assert all("'contested'" in str(r) for r in refused)
            assert await store.count_by_state(State.PENDING) == 1


async def test_migrate_upgrades_a_schema_at_an_older_version_keeping_its_tasks(
    postgres_url: str, bare_namespace: str
) -> None:
    """A namespace made by the first migration alone, with a task in it, is brought to the
    current version by migrate; the task is still there and every operation works on it."""
    schema = Schema.for_namespace(bare_namespace)
    first = migrations()[0]
    table = sql.Identifier(bare_namespace, "tasks")
    with psycopg.connect(postgres_url) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(bare_namespace)))
        conn.execute(schema.migration_sql(first))
        conn.execute(
            sql.SQL(
                "CREATE TABLE {} (single boolean PRIMARY KEY DEFAULT true, version integer)"
            ).format(sql.Identifier(bare_namespace, "schema_version"))
        )
        conn.execute(
            sql.SQL("INSERT INTO {} (version) VALUES (1)").format(
                sql.Identifier(bare_namespace, "schema_version")
            )
        )
        conn.execute(
            sql.SQL(
                "INSERT INTO {} (id, task_id, type, data, state, failed_attempts, "
                "next_attempt_at, created_at, version) "
                "VALUES (nextval({}), 'old', 7, 'x', 1, 0, now(), now(), 1)"
            ).format(table, sql.Literal(f'"{bare_namespace}".task_ids'))
        )
        conn.commit()
        report = migrate(conn, bare_namespace)
    assert (report.before, report.after) == (1, SCHEMA_VERSION)
    async with PostgresStore.from_url(postgres_url, namespace=bare_namespace) as store:
        await store.check_schema()
        details = await store.inspect("old")
        assert (details.record.data, details.last_error) == (b"x", None)
        assert await store.cancel("old") == 1
        failure = (await store.inspect("old")).last_error
        assert failure is not None
        assert failure.kind == "Cancelled"
