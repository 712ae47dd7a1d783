"""PostgresStore: the Store contract and the worker's operations on PostgreSQL (asyncio).

One namespace is one schema (store/postgres/_schema.py); each operation is one statement from
sql/*.sql, planned once in _plans.py and run here on a connection of a psycopg pool in
autocommit, so it is its own transaction. put_all(..., connection=conn) runs instead inside the
caller's open transaction (a savepoint around the statement): the tasks commit with the caller's
rows, or not at all. This module never imports the worker.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Collection, Mapping, Sequence
from datetime import datetime
from typing import Any, Self, TypeVar

import psycopg
from psycopg_pool import AsyncConnectionPool

from store.errors import ExistsError, SchemaVersionError, StoreUnavailable
from store.lifecycle import Pruned, TaskDetails, TypeCursor
from store.postgres._base import PostgresStoreBase
from store.postgres._connection import SAVEPOINT, async_keep_trying, check_callers_connection
from store.postgres._errors import LostReply, lost_reply, translated
from store.postgres._facts import DatabaseFacts
from store.postgres._plans import Plan
from store.postgres._schema import Schema
from store.postgres._statements import Query, Row
from store.presence import Presence, TypeCounts
from store.protocol import Wakeups
from store.record import Ordering, Record, State
from store.worker_types import Change, Claim, Rate, ServerFacts, Stats

__all__ = ["PostgresStore"]

AsyncConnection = psycopg.AsyncConnection[Any]
T = TypeVar("T")

# How long testing the idle connections after a failure may take: a server that does not
# answer at all must not hold the caller's error back.
_CHECK_SECONDS = 2.0


class PostgresStore(PostgresStoreBase[AsyncConnectionPool[Any]]):
    """A Store on a psycopg AsyncConnectionPool; several namespaces share one database unseen."""

    _pool_class = AsyncConnectionPool
    _reconnect_failed = staticmethod(async_keep_trying)

    async def aclose(self) -> None:
        """Close the pool if this store created it (from_url); leave a caller's pool open."""
        self._closed = True
        if self._owns_pool:
            await self.pool.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def put_all(self, *records: Record, connection: AsyncConnection | None = None) -> None:
        """Store every record or none. With connection, inside that connection's transaction:
        the tasks exist once it commits, and never if it rolls back."""
        plan = self._plans.put_all(records)
        if connection is not None:
            plan.done(await self._in_callers_transaction(connection, plan.query))
            return
        try:
            await self._run(plan)
        except LostReply:
            # The statement may have committed and only its reply been lost: send it once more
            # (on another connection); if that finds the batch stored, check it is this one.
            try:
                await self._run(plan)
            except ExistsError:
                if not await self._run(self._plans.put_all_recovered(records)):
                    raise

    async def update(self, record: Record) -> None:
        await self._run(self._plans.update(record))

    async def get_by_task_id(self, task_id: str) -> Record:
        return await self._run(self._plans.get_by_task_id(task_id))

    async def get_all_ready_by_state(
        self,
        state: State,
        as_of: datetime,
        cursor: int | None = None,
        limit: int = 100,
        direction: Ordering = Ordering.ASC,
    ) -> list[Record]:
        plan = self._plans.get_all_ready_by_state(state, as_of, cursor, limit, direction)
        return await self._run(plan)

    async def count_by_state(self, state: State) -> int:
        return await self._run(self._plans.count_by_state(state))

    async def list_tasks(
        self,
        state: State,
        as_of: datetime,
        cursor: int | None = None,
        limit: int = 100,
        direction: Ordering = Ordering.ASC,
    ) -> list[TaskDetails]:
        """get_all_ready_by_state's page, each record with its last failure; [] if empty."""
        return await self._run(self._plans.list_tasks(state, as_of, cursor, limit, direction))

    async def list_by_type(
        self,
        state: State,
        task_type: int,
        after: TypeCursor | None = None,
        limit: int = 100,
        direction: Ordering = Ordering.ASC,
    ) -> list[TaskDetails]:
        """A page of one state and type by next_attempt_at, then task id (Lifecycle)."""
        return await self._run(self._plans.list_by_type(state, task_type, after, limit, direction))

    async def inspect(self, task_id: str) -> TaskDetails:
        """The task's record and its last failure; NotFoundError if there is no such task."""
        return await self._run(self._plans.inspect(task_id))

    async def delete(self, *task_ids: str) -> int:
        """Delete the tasks and their failures, all or none (NotFoundError); the count."""
        return await self._run(self._plans.by_ids("delete", task_ids))

    async def cancel(self, *task_ids: str) -> int:
        """PENDING tasks become FAILED now ('Cancelled'), all or none; the count."""
        return await self._run(self._plans.by_ids("cancel", task_ids))

    async def retry(self, *task_ids: str) -> int:
        """FAILED tasks go back to PENDING, due now, all or none; the count."""
        return await self._run(self._plans.by_ids("retry", task_ids))

    async def retry_failed(self, task_type: int | None = None, *, limit: int = 1000) -> int:
        """One batch of at most limit FAILED tasks sent back as retry does; the count."""
        return await self._run(self._plans.retry_failed(task_type, limit))

    async def prune(
        self, *, confirmed_seconds: float, failed_seconds: float, limit: int = 100
    ) -> Pruned:
        """Delete at most limit CONFIRMED / FAILED tasks past their state's retention."""
        return await self._run(self._plans.prune(confirmed_seconds, failed_seconds, limit))

    async def claim(
        self,
        max_attempts: Mapping[int, int],
        *,
        limit: int,
        lease_seconds: float,
        type_limits: Mapping[int, int] | None = None,
        rates: Mapping[int, Rate] | None = None,
    ) -> Claim:
        """Lease up to limit due PENDING tasks of the given types (type -> max_attempts), within
        type_limits and rates (WorkerStore.claim): one statement; a type's first claim with a
        rate in this store makes its bucket row first (a statement of its own, once)."""
        plan = self._plans.claim(max_attempts, limit, lease_seconds, type_limits, rates)
        new = set(rates or ()) - self._rate_buckets
        if new:
            await self._run(self._plans.rate_buckets(new))
            self._rate_buckets |= new
        return await self._run(plan)

    async def settle(self, changes: Sequence[Change]) -> list[bool]:
        """Apply each change whose record still holds its version; False for the others."""
        return await self._run(self._plans.settle(changes))

    async def extend(self, records: Sequence[Record], *, lease_seconds: float) -> list[bool]:
        """Push forward the leases still held at each record's version; False where lost."""
        if not records:
            return []
        return await self._run(self._plans.extend(records, lease_seconds))

    async def stats(self) -> Stats:
        """Counts per state, due-now count and oldest due instant, in one snapshot."""
        return await self._run(self._plans.stats())

    async def count_by_type(self) -> list[TypeCounts]:
        """Tasks per state of every type, by type, in one snapshot."""
        return await self._run(self._plans.count_by_type())

    async def beat(self, member: str, payload: bytes, *, forget_after_seconds: float) -> datetime:
        """Say member is alive with payload; forget members silent for longer than
        forget_after_seconds. Returns the store's now."""
        return await self._run(self._plans.beat(member, payload, forget_after_seconds))

    async def beats(self, *, within_seconds: float, limit: int = 1000) -> Presence:
        """The members that beat within the last within_seconds, latest first."""
        return await self._run(self._plans.beats(within_seconds, limit))

    async def which_exist(self, task_ids: Collection[str]) -> set[str]:
        """The given task ids that are stored: one statement, however many."""
        return await self._run(self._plans.which_exist(task_ids))

    async def server_facts(self) -> ServerFacts:
        """The server's version and durability settings. A namespace whose schema this code
        cannot use is refused here with SchemaVersionError, saying what to run: `retryd run`
        and `retryd check` ask for these facts before anything else."""
        facts = await self._run(self._plans.server_facts())
        await self.check_schema()
        return facts

    async def check_schema(self) -> None:
        """Raise SchemaVersionError, saying what to run, unless the schema is this code's."""
        self._refuse_unknown(await self._run(self._plans.schema_version()))

    async def database_facts(self) -> DatabaseFacts:
        """The server's version and durability settings, and the namespace's schema version
        against this code's (what `retryd check` shows): a schema this code cannot use is
        reported here, not refused."""
        settings = await self._run(self._plans.server_settings())
        try:
            found = await self._run(self._plans.schema_version())
        except SchemaVersionError:  # the schema or its version table does not exist
            found = None
        return DatabaseFacts.read(self.schema, settings, found)

    @contextlib.asynccontextmanager
    async def wakeups(self) -> AsyncIterator[Wakeups]:
        """LISTENing on the namespace's channel, on a connection of the pool held for the
        length of the block. A NOTIFY is sent by the statement that makes a task due now and
        delivered when its transaction commits: a rolled-back put wakes no one."""
        with translated(self.schema):
            async with self._connection() as conn:
                await conn.execute(b"LISTEN " + self.schema.quoted.encode("utf-8"))
                try:
                    yield _ListenWakeups(conn, self.schema)
                finally:
                    with contextlib.suppress(psycopg.Error):  # back to the pool deaf
                        await conn.execute(b"UNLISTEN *")

    # --- I/O -------------------------------------------------------------------------------

    async def _run(self, plan: Plan[T]) -> T:
        return plan.done(await self._all(plan.query))

    @contextlib.asynccontextmanager
    async def _connection(self) -> AsyncIterator[AsyncConnection]:
        """The pool's connection; one of the call's own while the server is in doubt and the
        pool has none idle (PostgresStoreBase._probe_target), closed after the call."""
        target = self._probe_target()
        if target is None:
            await self._open_own_pool()
            async with self.pool.connection() as conn:
                yield conn
            return
        conninfo, options = target
        async with await self.pool.connection_class.connect(conninfo, **options) as conn:
            await self._open_own_pool()  # the server is there: the pool may start connecting
            yield conn

    async def _open_own_pool(self) -> None:
        """Open from_url's pool, on first use of the server (never after aclose)."""
        if self._pool_to_open:
            await self.pool.open()

    async def _all(self, query: Query) -> list[Row]:
        """Run query on a pooled connection; psycopg's errors become the store's."""
        try:
            with self._reaching(), translated(self.schema):
                async with self._connection() as conn, conn.cursor() as cursor:
                    try:
                        await cursor.execute(query.sql, query.params, binary=True)
                        return await cursor.fetchall()
                    except (psycopg.Error, OSError) as error:
                        lost = lost_reply(error)
                        if lost is None:
                            raise
                        raise lost from error
        except StoreUnavailable:
            await self._drop_broken_connections()
            raise

    async def _drop_broken_connections(self) -> None:
        """After a lost connection, test the idle ones: a server that restarted dropped them
        all, and each would otherwise fail one more call after it is back."""
        if self.pool.closed:
            return
        with contextlib.suppress(Exception):  # best effort: the caller's error is the news
            await asyncio.wait_for(self.pool.check(), timeout=_CHECK_SECONDS)

    async def _in_callers_transaction(self, conn: AsyncConnection, query: Query) -> list[Row]:
        """Run query in conn's transaction, inside a savepoint: a failure leaves the caller's
        transaction as it was before, still usable."""
        check_callers_connection(conn)
        # Our own cursor class, whatever the caller's cursor_factory (Django's binds
        # client-side, and tuples, not its row factory, are what the statements are read as).
        with translated(self.schema):
            async with psycopg.AsyncCursor(conn, row_factory=psycopg.rows.tuple_row) as cursor:
                await cursor.execute(SAVEPOINT.create)
                try:
                    await cursor.execute(query.sql, query.params, binary=True)
                    rows: list[Row] = list(await cursor.fetchall())
                except BaseException:
                    with contextlib.suppress(psycopg.Error):
                        await cursor.execute(SAVEPOINT.roll_back)
                    raise
                await cursor.execute(SAVEPOINT.release)
                return rows


class _ListenWakeups:
    """Wake-ups on a LISTENing connection: any notification on the channel is one."""

    def __init__(self, conn: AsyncConnection, schema: Schema) -> None:
        self._conn = conn
        self._schema = schema

    async def wait(self) -> None:
        # Notifications that arrived while nobody waited are psycopg's backlog: returned at
        # once. stop_after ends the generator cleanly, releasing the connection's lock.
        with translated(self._schema):
            async for _ in self._conn.notifies(stop_after=1):
                pass
