"""SyncPostgresStore: the producer's side of PostgresStore for code without an event loop.

A Flask or Django app puts and reads tasks with it, in its own transaction when it passes its
connection to put_all. Every operation is PostgresStore's plan (store/postgres/_plans.py), run
on a psycopg ConnectionPool: this module only waits by blocking.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any, Self, TypeVar

import psycopg
from psycopg_pool import ConnectionPool

from store.errors import ExistsError
from store.lifecycle import Pruned, TaskDetails, TypeCursor
from store.postgres._base import PostgresStoreBase
from store.postgres._connection import SAVEPOINT, check_callers_connection, keep_trying
from store.postgres._errors import LostReply, lost_reply, translated
from store.postgres._migrate import MigrationReport, migrate
from store.postgres._plans import Plan
from store.postgres._statements import Query, Row
from store.record import Ordering, Record, State
from store.worker_types import Change

__all__ = ["SyncPostgresStore"]

Connection = psycopg.Connection[Any]
T = TypeVar("T")


class SyncPostgresStore(PostgresStoreBase[ConnectionPool[Any]]):
    """The Store contract, blocking, on a psycopg ConnectionPool."""

    _pool_class = ConnectionPool
    _reconnect_failed = staticmethod(keep_trying)

    def close(self) -> None:
        """Close the pool if this store created it (from_url)."""
        self._closed = True
        if self._owns_pool:
            self.pool.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def put_all(self, *records: Record, connection: Connection | None = None) -> None:
        """Store every record or none. With connection, inside that connection's transaction:
        the tasks exist once it commits, and never if it rolls back."""
        plan = self._plans.put_all(records)
        if connection is not None:
            plan.done(self._in_callers_transaction(connection, plan.query))
            return
        try:
            self._run(plan)
        except LostReply:
            # As PostgresStore.put_all: send once more; an ExistsError may be this very batch.
            try:
                self._run(plan)
            except ExistsError:
                if not self._run(self._plans.put_all_recovered(records)):
                    raise

    def update(self, record: Record) -> None:
        self._run(self._plans.update(record))

    def get_by_task_id(self, task_id: str) -> Record:
        return self._run(self._plans.get_by_task_id(task_id))

    def get_all_ready_by_state(
        self,
        state: State,
        as_of: datetime,
        cursor: int | None = None,
        limit: int = 100,
        direction: Ordering = Ordering.ASC,
    ) -> list[Record]:
        return self._run(self._plans.get_all_ready_by_state(state, as_of, cursor, limit, direction))

    def count_by_state(self, state: State) -> int:
        return self._run(self._plans.count_by_state(state))

    def list_tasks(
        self,
        state: State,
        as_of: datetime,
        cursor: int | None = None,
        limit: int = 100,
        direction: Ordering = Ordering.ASC,
    ) -> list[TaskDetails]:
        return self._run(self._plans.list_tasks(state, as_of, cursor, limit, direction))

    def list_by_type(
        self,
        state: State,
        task_type: int,
        after: TypeCursor | None = None,
        limit: int = 100,
        direction: Ordering = Ordering.ASC,
    ) -> list[TaskDetails]:
        """A page of one state and type by next_attempt_at, then task id (Lifecycle)."""
        return self._run(self._plans.list_by_type(state, task_type, after, limit, direction))

    def inspect(self, task_id: str) -> TaskDetails:
        return self._run(self._plans.inspect(task_id))

    def delete(self, *task_ids: str) -> int:
        return self._run(self._plans.by_ids("delete", task_ids))

    def cancel(self, *task_ids: str) -> int:
        return self._run(self._plans.by_ids("cancel", task_ids))

    def retry(self, *task_ids: str) -> int:
        return self._run(self._plans.by_ids("retry", task_ids))

    def retry_failed(self, task_type: int | None = None, *, limit: int = 1000) -> int:
        return self._run(self._plans.retry_failed(task_type, limit))

    def prune(self, *, confirmed_seconds: float, failed_seconds: float, limit: int = 100) -> Pruned:
        return self._run(self._plans.prune(confirmed_seconds, failed_seconds, limit))

    def settle(self, changes: Sequence[Change]) -> list[bool]:
        """Apply each change whose record still holds its version; False for the others."""
        return self._run(self._plans.settle(changes))

    def migrate(self) -> MigrationReport:
        """Create or upgrade this namespace's schema (what `retryd migrate` runs)."""
        with self._reaching(), translated(self.schema), self._connection() as conn:
            return migrate(conn, self.schema.namespace)

    def check_schema(self) -> None:
        """Raise SchemaVersionError, saying what to run, unless the schema is this code's."""
        self._refuse_unknown(self._run(self._plans.schema_version()))

    def _run(self, plan: Plan[T]) -> T:
        return plan.done(self._all(plan.query))

    @contextlib.contextmanager
    def _connection(self) -> Iterator[Connection]:
        """As PostgresStore's: the pool's connection, or one of the call's own while the server
        is in doubt and the pool has none idle."""
        target = self._probe_target()
        if target is None:
            self._open_own_pool()
            with self.pool.connection() as conn:
                yield conn
            return
        conninfo, options = target
        with self.pool.connection_class.connect(conninfo, **options) as conn:
            self._open_own_pool()  # the server is there: the pool may start connecting
            yield conn

    def _open_own_pool(self) -> None:
        """Open from_url's pool, on first use of the server (never after close)."""
        if self._pool_to_open:
            self.pool.open()

    def _all(self, query: Query) -> list[Row]:
        """Run query on a pooled connection; psycopg's errors become the store's."""
        with (
            self._reaching(),
            translated(self.schema),
            self._connection() as conn,
            conn.cursor() as cursor,
        ):
            try:
                cursor.execute(query.sql, query.params, binary=True)
                return cursor.fetchall()
            except (psycopg.Error, OSError) as error:
                lost = lost_reply(error)
                if lost is None:
                    raise
                raise lost from error

    def _in_callers_transaction(self, conn: Connection, query: Query) -> list[Row]:
        """As PostgresStore's: the statement inside a savepoint of conn's transaction."""
        check_callers_connection(conn)
        with (
            translated(self.schema),
            psycopg.Cursor(conn, row_factory=psycopg.rows.tuple_row) as cursor,
        ):
            cursor.execute(SAVEPOINT.create)
            try:
                cursor.execute(query.sql, query.params, binary=True)
                rows: list[Row] = list(cursor.fetchall())
            except BaseException:
                with contextlib.suppress(psycopg.Error):
                    cursor.execute(SAVEPOINT.roll_back)
                raise
            cursor.execute(SAVEPOINT.release)
            return rows
