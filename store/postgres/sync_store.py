"""SyncPostgresStore: the producer's side of PostgresStore for code without an event loop.

A Flask or Django app puts and reads tasks with it, in its own transaction when it passes its
connection to put_all. It runs the very same statements and checks as PostgresStore
(store/postgres/_statements.py), on a psycopg ConnectionPool.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from datetime import datetime
from typing import Any, Self

import psycopg
from psycopg import errors
from psycopg_pool import ConnectionPool

from store.errors import SchemaVersionError, StoreError
from store.lifecycle import Pruned, TaskDetails
from store.postgres._connection import SAVEPOINT, check_callers_connection, pool_options
from store.postgres._errors import translated
from store.postgres._migrate import MigrationReport, migrate, read_schema_version
from store.postgres._schema import QueryName, Schema
from store.postgres._statements import Query, Row, Statements
from store.protocol import DEFAULT_MAX_DATA_BYTES
from store.record import Ordering, Record, State
from store.worker_types import Change

__all__ = ["SyncPostgresStore"]

Connection = psycopg.Connection[Any]


class SyncPostgresStore:
    """The Store contract, blocking, on a psycopg ConnectionPool."""

    def __init__(
        self,
        pool: ConnectionPool[Any],
        *,
        namespace: str = "retryd",
        max_data_bytes: int = DEFAULT_MAX_DATA_BYTES,
        owns_pool: bool = False,
    ) -> None:
        self.pool = pool
        self.schema = Schema.for_namespace(namespace)
        self._statements = Statements(self.schema, max_data_bytes)
        self._owns_pool = owns_pool

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        namespace: str = "retryd",
        max_data_bytes: int = DEFAULT_MAX_DATA_BYTES,
        **options: Any,
    ) -> Self:
        """A store on a pool of its own for url (postgresql://...), opened on first use;
        closing the store closes the pool. options go to ConnectionPool (min_size, ...)."""
        pool: ConnectionPool[Any] = ConnectionPool(url, **pool_options(options))
        return cls(pool, namespace=namespace, max_data_bytes=max_data_bytes, owns_pool=True)

    def close(self) -> None:
        """Close the pool if this store created it (from_url)."""
        if self._owns_pool:
            self.pool.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def put_all(self, *records: Record, connection: Connection | None = None) -> None:
        """Store every record or none. With connection, inside that connection's transaction:
        the tasks exist once it commits, and never if it rolls back."""
        query = self._statements.put_all(records)
        try:
            if connection is None:
                row = self._one(query)
            else:
                with translated(self.schema):
                    row = self._in_callers_transaction(connection, query)
        except StoreError as error:
            if isinstance(error.__cause__, errors.UniqueViolation):
                raise self._statements.duplicate(error.__cause__.diag.message_detail) from None
            raise
        assert row is not None
        self._statements.put_all_done(records, row)

    def update(self, record: Record) -> None:
        self._statements.update_done(record, self._one(self._statements.update(record)))

    def get_by_task_id(self, task_id: str) -> Record:
        return self._statements.get_done(task_id, self._one(self._statements.get(task_id)))

    def get_all_ready_by_state(
        self,
        state: State,
        as_of: datetime,
        cursor: int | None = None,
        limit: int = 100,
        direction: Ordering = Ordering.ASC,
    ) -> list[Record]:
        query = self._statements.get_ready(state, as_of, cursor, limit, direction)
        return self._statements.get_ready_done(self._all(query), state, as_of)

    def count_by_state(self, state: State) -> int:
        row = self._one(self._statements.count(state))
        assert row is not None
        return int(row[0])

    # --- the lifecycle operations (store.Lifecycle) ------------------------------------------

    def list_tasks(
        self,
        state: State,
        as_of: datetime,
        cursor: int | None = None,
        limit: int = 100,
        direction: Ordering = Ordering.ASC,
    ) -> list[TaskDetails]:
        """get_all_ready_by_state's page, each record with its last failure; [] if empty."""
        query = self._statements.get_ready(state, as_of, cursor, limit, direction)
        return self._statements.details_done(self._all(query))

    def inspect(self, task_id: str) -> TaskDetails:
        """The task's record and its last failure; NotFoundError if there is no such task."""
        row = self._one(self._statements.get(task_id))
        return self._statements.inspect_done(task_id, row)

    def delete(self, *task_ids: str) -> int:
        """Delete the tasks and their failures, all or none (NotFoundError); the count."""
        return self._by_ids("delete", task_ids)

    def cancel(self, *task_ids: str) -> int:
        """PENDING tasks become FAILED now ('Cancelled'), all or none; the count."""
        return self._by_ids("cancel", task_ids)

    def retry(self, *task_ids: str) -> int:
        """FAILED tasks go back to PENDING, due now, all or none; the count."""
        return self._by_ids("retry", task_ids)

    def retry_failed(self, task_type: int | None = None, *, limit: int = 1000) -> int:
        """One batch of at most limit FAILED tasks sent back as retry does; the count."""
        row = self._one(self._statements.retry_failed(task_type, limit))
        assert row is not None
        return int(row[0])

    def prune(self, *, confirmed_seconds: float, failed_seconds: float, limit: int = 100) -> Pruned:
        """Delete at most limit CONFIRMED / FAILED tasks past their state's retention."""
        row = self._one(self._statements.prune(confirmed_seconds, failed_seconds, limit))
        assert row is not None
        return self._statements.prune_done(row)

    def _by_ids(self, name: QueryName, task_ids: Sequence[str]) -> int:
        query, ids = self._statements.by_ids(name, task_ids)
        row = self._one(query)
        assert row is not None
        return self._statements.by_ids_done(name, ids, row)

    def settle(self, changes: Sequence[Change]) -> list[bool]:
        """Apply each change whose record still holds its version; False for the others."""
        rows = self._all(self._statements.settle(changes))
        return self._statements.flags_done(rows, len(changes))

    def migrate(self) -> MigrationReport:
        """Create or upgrade this namespace's schema (what `retryd migrate` runs)."""
        with translated(self.schema), self._connection() as conn:
            return migrate(conn, self.schema.namespace)

    def check_schema(self) -> None:
        """Raise SchemaVersionError, saying what to run, unless the schema is the one this
        code knows."""
        with translated(self.schema), self._connection() as conn, conn.cursor() as cursor:
            version = read_schema_version(cursor, self.schema)
        problem = self.schema.version_problem(version)
        if problem is not None:
            raise SchemaVersionError(problem)

    def _connection(self) -> contextlib.AbstractContextManager[Connection]:
        if self.pool.closed and self._owns_pool:  # from_url's pool opens on first use
            self.pool.open()
        return self.pool.connection()

    def _one(self, query: Query) -> Row | None:
        rows = self._all(query)
        return rows[0] if rows else None

    def _all(self, query: Query) -> list[Row]:
        """Run query on a pooled connection; psycopg's errors become the store's."""
        with translated(self.schema), self._connection() as conn, conn.cursor() as cursor:
            cursor.execute(query.sql, query.params, binary=True)
            return cursor.fetchall()

    def _in_callers_transaction(self, conn: Connection, query: Query) -> Row | None:
        """As PostgresStore's: the statement inside a savepoint of conn's transaction."""
        check_callers_connection(conn)
        # Our own cursor class, whatever the caller's cursor_factory (Django's binds
        # client-side, and tuples, not its row factory, are what the statements are read as).
        with psycopg.Cursor(conn, row_factory=psycopg.rows.tuple_row) as cursor:
            cursor.execute(SAVEPOINT.create)
            try:
                cursor.execute(query.sql, query.params, binary=True)
                row = cursor.fetchone()
            except BaseException:
                with contextlib.suppress(psycopg.Error):
                    cursor.execute(SAVEPOINT.roll_back)
                raise
            cursor.execute(SAVEPOINT.release)
            return row
