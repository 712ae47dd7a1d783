"""put_all(..., connection=conn) inside the application's own transaction: both commit or neither.

Shown with plain psycopg (blocking and asyncio), SQLAlchemy and Django, as docs/postgres.md
shows them. The application's row is an order in a table of its own; the task is the work that
order calls for. A rollback must leave no task, no wake-up and nothing for a worker to run.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import psycopg
import pytest
from psycopg import sql

from store import ExistsError, NotFoundError, Record, State, ValidationError
from store.postgres import PostgresStore, SyncPostgresStore
from tests.pg import migrated_namespace

TYPE = 7


class AppFailureError(Exception):
    """What the application raises after put_all, to roll its transaction back."""


@dataclass(frozen=True)
class App:
    """The application's side: its database URL and its orders table."""

    url: str
    orders: sql.Composable  # the qualified table name

    def insert_order(self, order_id: str) -> sql.Composed:
        return self.insert_template(sql.Literal(order_id))

    def insert_template(self, placeholder: sql.Composable) -> sql.Composed:
        """The INSERT with a driver's own placeholder (SQLAlchemy's :id, Django's %s)."""
        return sql.SQL("INSERT INTO {} (id) VALUES ({})").format(self.orders, placeholder)

    def order_ids(self) -> list[str]:
        with psycopg.connect(self.url) as conn:
            rows = conn.execute(sql.SQL("SELECT id FROM {} ORDER BY id").format(self.orders))
            return [str(row[0]) for row in rows]


@pytest.fixture
def namespace_pg(postgres_url: str) -> Iterator[str]:
    with migrated_namespace(postgres_url, f"t-{uuid.uuid4().hex[:12]}") as namespace:
        yield namespace


@pytest.fixture
def app(postgres_url: str) -> Iterator[App]:
    """An orders table in a schema of the test's own, dropped afterwards."""
    schema = f"app_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
        orders = sql.Identifier(schema, "orders")
        conn.execute(sql.SQL("CREATE TABLE {} (id text PRIMARY KEY)").format(orders))
    yield App(postgres_url, orders)
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema)))


@pytest.fixture
def sync_store(postgres_url: str, namespace_pg: str) -> Iterator[SyncPostgresStore]:
    with SyncPostgresStore.from_url(postgres_url, namespace=namespace_pg) as store:
        yield store


@pytest.fixture
async def async_store(postgres_url: str, namespace_pg: str) -> AsyncIterator[PostgresStore]:
    async with PostgresStore.from_url(postgres_url, namespace=namespace_pg) as store:
        yield store


def task(task_id: str) -> Record:
    return Record(task_id=task_id, type=TYPE, data=b"invoice", reference_id=task_id)


@contextlib.contextmanager
def listening(url: str, channel: str) -> Iterator[psycopg.Connection[Any]]:
    """A connection LISTENing on the namespace's wake-up channel."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(channel)))
        yield conn


def wakeups(conn: psycopg.Connection[Any]) -> int:
    """Notifications received so far (waiting briefly for any in flight)."""
    return sum(1 for _ in conn.notifies(timeout=0.3, stop_after=10))


def assert_nothing_to_run(store: SyncPostgresStore, *task_ids: str) -> None:
    for task_id in task_ids:
        with pytest.raises(NotFoundError):
            store.get_by_task_id(task_id)
    assert store.count_by_state(State.PENDING) == 0


# --- plain psycopg -----------------------------------------------------------------------------


def test_the_task_is_invisible_until_the_transaction_commits(
    app: App, sync_store: SyncPostgresStore
) -> None:
    with listening(app.url, sync_store.schema.channel) as listener:
        with psycopg.connect(app.url) as conn:
            conn.execute(app.insert_order("o-1"))
            record = task("invoice-o-1")
            sync_store.put_all(record, connection=conn)
            assert record.id > 0
            with pytest.raises(NotFoundError):  # another connection: not committed yet
                sync_store.get_by_task_id("invoice-o-1")
            assert wakeups(listener) == 0
        # psycopg's `with connect()` commits on a clean exit
        assert sync_store.get_by_task_id("invoice-o-1") == record
        assert wakeups(listener) == 1
    assert app.order_ids() == ["o-1"]


def test_a_rollback_after_put_all_leaves_no_task_and_no_wakeup(
    app: App, sync_store: SyncPostgresStore
) -> None:
    before = task("earlier")
    sync_store.put_all(before)
    with listening(app.url, sync_store.schema.channel) as listener:
        burnt = task("invoice-o-2")

        def order_then_fail() -> None:
            with psycopg.connect(app.url) as conn:  # rolls back on an exception
                conn.execute(app.insert_order("o-2"))
                sync_store.put_all(burnt, connection=conn)
                raise AppFailureError("payment declined")

        with pytest.raises(AppFailureError):
            order_then_fail()
        assert wakeups(listener) == 0
    assert app.order_ids() == []
    with pytest.raises(NotFoundError):
        sync_store.get_by_task_id("invoice-o-2")
    assert sync_store.count_by_state(State.PENDING) == 1  # "earlier" alone
    # The rolled-back id is never handed out again: ids stay unique and increasing.
    again = task("invoice-o-2")
    sync_store.put_all(again)
    assert again.id > burnt.id > before.id


def test_an_exists_error_leaves_the_callers_transaction_usable(
    app: App, sync_store: SyncPostgresStore
) -> None:
    """put_all runs in a savepoint: refusing a duplicate does not abort the caller's work."""
    sync_store.put_all(task("dup"))
    with psycopg.connect(app.url) as conn:
        conn.execute(app.insert_order("o-3"))
        with pytest.raises(ExistsError, match="'dup'"):
            sync_store.put_all(task("fresh"), task("dup"), connection=conn)
        conn.execute(app.insert_order("o-4"))  # the transaction goes on
    assert app.order_ids() == ["o-3", "o-4"]
    with pytest.raises(NotFoundError):
        sync_store.get_by_task_id("fresh")


def test_a_connection_without_an_open_transaction_is_refused(
    app: App, sync_store: SyncPostgresStore
) -> None:
    with psycopg.connect(app.url, autocommit=True) as conn:
        with pytest.raises(ValidationError, match="autocommit") as caught:
            sync_store.put_all(task("a"), connection=conn)
        assert caught.value.field == "connection"
        with conn.transaction():  # an explicit transaction on an autocommit connection is fine
            sync_store.put_all(task("a"), connection=conn)
    assert sync_store.get_by_task_id("a").id > 0


def test_a_failed_transaction_is_refused_before_anything_is_sent(
    app: App, sync_store: SyncPostgresStore
) -> None:
    with psycopg.connect(app.url) as conn:
        with pytest.raises(psycopg.errors.DivisionByZero):
            conn.execute("SELECT 1 / 0")
        with pytest.raises(ValidationError, match="roll it back"):
            sync_store.put_all(task("a"), connection=conn)
        conn.rollback()
    assert_nothing_to_run(sync_store, "a")


def test_something_else_than_a_psycopg_connection_is_refused(
    sync_store: SyncPostgresStore,
) -> None:
    with pytest.raises(ValidationError, match="psycopg connection"):
        sync_store.put_all(task("a"), connection=object())  # type: ignore[arg-type]


async def test_asyncio_both_commit_or_neither(app: App, async_store: PostgresStore) -> None:
    async with await psycopg.AsyncConnection.connect(app.url) as conn:
        async with conn.transaction():
            await conn.execute(app.insert_order("o-5"))
            await async_store.put_all(task("invoice-o-5"), connection=conn)

        async def order_then_fail() -> None:
            async with conn.transaction():
                await conn.execute(app.insert_order("o-6"))
                await async_store.put_all(task("invoice-o-6"), connection=conn)
                raise AppFailureError("out of stock")

        with pytest.raises(AppFailureError):
            await order_then_fail()
    assert app.order_ids() == ["o-5"]
    assert (await async_store.get_by_task_id("invoice-o-5")).state is State.PENDING
    with pytest.raises(NotFoundError):
        await async_store.get_by_task_id("invoice-o-6")
    claim = await async_store.claim({TYPE: 3}, limit=10, lease_seconds=30)
    assert [c.record.task_id for c in claim.tasks] == ["invoice-o-5"]


# --- SQLAlchemy --------------------------------------------------------------------------------


def test_sqlalchemy_session_both_commit_or_neither(app: App, sync_store: SyncPostgresStore) -> None:
    from sqlalchemy import create_engine, text
    from sqlalchemy.orm import Session

    engine = create_engine(app.url.replace("postgresql://", "postgresql+psycopg://", 1))
    insert = text(app.insert_template(sql.SQL(":id")).as_string())

    def order(order_id: str, *, fail: bool) -> None:
        with Session(engine) as session, session.begin():
            session.execute(insert, {"id": order_id})
            raw = session.connection().connection.driver_connection
            sync_store.put_all(task(f"invoice-{order_id}"), connection=raw)
            if fail:
                raise AppFailureError("validation failed")

    try:
        order("o-7", fail=False)
        with pytest.raises(AppFailureError):
            order("o-8", fail=True)
    finally:
        engine.dispose()
    assert app.order_ids() == ["o-7"]
    assert sync_store.get_by_task_id("invoice-o-7").reference_id == "invoice-o-7"
    assert_nothing_to_run_but(sync_store, "invoice-o-7", "invoice-o-8")


def assert_nothing_to_run_but(store: SyncPostgresStore, kept: str, rolled_back: str) -> None:
    with pytest.raises(NotFoundError):
        store.get_by_task_id(rolled_back)
    assert store.count_by_state(State.PENDING) == 1
    assert store.get_by_task_id(kept).state is State.PENDING


# --- Django ------------------------------------------------------------------------------------


@pytest.fixture
def django_connection(app: App) -> Iterator[Any]:
    """Django configured on the test database (once per process), its connection closed after."""
    from django.conf import settings

    if not settings.configured:
        parts = urlsplit(app.url)
        database = {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": parts.path.lstrip("/"),
            "USER": parts.username or "",
            "HOST": parts.hostname or "",
            "PORT": str(parts.port or 5432),
        }
        settings.configure(DATABASES={"default": database}, USE_TZ=True)
        import django

        django.setup()
    from django.db import connection

    yield connection
    connection.close()


def test_django_atomic_both_commit_or_neither(
    app: App, sync_store: SyncPostgresStore, django_connection: Any
) -> None:
    from django.db import transaction

    insert = app.insert_template(sql.SQL("%s")).as_string()

    def order(order_id: str, *, fail: bool) -> None:
        with transaction.atomic():
            with django_connection.cursor() as cursor:
                cursor.execute(insert, [order_id])
            record = task(f"invoice-{order_id}")
            sync_store.put_all(record, connection=django_connection.connection)
            if fail:
                raise AppFailureError("form invalid")

    order("o-9", fail=False)
    with pytest.raises(AppFailureError):
        order("o-10", fail=True)
    assert app.order_ids() == ["o-9"]
    assert_nothing_to_run_but(sync_store, "invoice-o-9", "invoice-o-10")


def test_django_put_all_as_the_first_statement_of_atomic_still_rolls_back(
    app: App, sync_store: SyncPostgresStore, django_connection: Any
) -> None:
    """atomic() leaves psycopg's connection idle outside autocommit: put_all's savepoint opens
    Django's transaction, not one of its own that would commit early."""
    from django.db import transaction

    def put_then_fail() -> None:
        with transaction.atomic():
            sync_store.put_all(task("first"), connection=django_connection.connection)
            raise AppFailureError("changed my mind")

    with pytest.raises(AppFailureError):
        put_then_fail()
    assert_nothing_to_run(sync_store, "first")
