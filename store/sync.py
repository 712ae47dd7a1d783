"""SyncRedisStore: the producer's side of RedisStore for code without an event loop.

A Flask or Django app puts and reads tasks with it. It drives the very same operations as
RedisStore (store/_operations.py: the same scripts, checks, recoveries and errors), blocking,
on a plain redis.Redis client.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any, Self, TypeVar, cast

from redis.retry import Retry

from store._base import RedisStoreBase
from store._commands import REPLICA_ACK_TIMEOUT_MS
from store._operations import (
    HashExists,
    HashGet,
    HashGetMany,
    HashScan,
    Op,
    Request,
    Script,
    ServerInfo,
)
from store._redis_errors import translated
from store._scripts import source
from store.connection import SyncClient, sync_client_from_url
from store.errors import StoreUnavailable
from store.lifecycle import Pruned, TaskDetails, TypeCursor
from store.record import Ordering, Record, State
from store.worker_types import Change

__all__ = ["SyncRedisStore"]

T = TypeVar("T")


class SyncRedisStore(RedisStoreBase[SyncClient]):
    """The Store contract and the lifecycle operations, blocking, on a redis.Redis client."""

    _connect = staticmethod(sync_client_from_url)
    _retry_class = Retry

    def close(self) -> None:
        """Close the client if this store created it (from_url)."""
        if self._owns_client:
            with translated():
                self.client.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def put_all(self, *records: Record) -> None:
        self._drive(self._ops.put_all(records))

    def update(self, record: Record) -> None:
        self._drive(self._ops.update(record))

    def get_by_task_id(self, task_id: str) -> Record:
        return self._drive(self._ops.get_by_task_id(task_id))

    def get_all_ready_by_state(
        self,
        state: State,
        as_of: datetime,
        cursor: int | None = None,
        limit: int = 100,
        direction: Ordering = Ordering.ASC,
    ) -> list[Record]:
        return self._drive(self._ops.get_all_ready_by_state(state, as_of, cursor, limit, direction))

    def list_tasks(
        self,
        state: State,
        as_of: datetime,
        cursor: int | None = None,
        limit: int = 100,
        direction: Ordering = Ordering.ASC,
    ) -> list[TaskDetails]:
        """get_all_ready_by_state's page, each record with its last failure; [] when empty."""
        return self._drive(self._ops.list_tasks(state, as_of, cursor, limit, direction))

    def list_by_type(
        self,
        state: State,
        task_type: int,
        after: TypeCursor | None = None,
        limit: int = 100,
        direction: Ordering = Ordering.ASC,
    ) -> list[TaskDetails]:
        """A page of one state and type by next_attempt_at (Lifecycle.list_by_type)."""
        return self._drive(self._ops.list_by_type(state, task_type, after, limit, direction))

    def inspect(self, task_id: str) -> TaskDetails:
        """The task's record and its last failure; NotFoundError if there is no such task."""
        return self._drive(self._ops.inspect(task_id))

    def delete(self, *task_ids: str) -> int:
        """Delete every task and all kept for it, or none (NotFoundError); returns the count."""
        return self._drive(self._ops.delete(task_ids))

    def cancel(self, *task_ids: str) -> int:
        """Make every PENDING task FAILED now (reason 'cancelled'), or none."""
        return self._drive(self._ops.cancel(task_ids))

    def retry(self, *task_ids: str) -> int:
        """Send every FAILED task back to PENDING, due now, attempts 0, or none."""
        return self._drive(self._ops.retry(task_ids))

    def retry_failed(self, task_type: int | None = None, *, limit: int = 1000) -> int:
        """One bounded batch of FAILED tasks back to PENDING, due now; how many."""
        return self._drive(self._ops.retry_failed(task_type, limit))

    def prune(self, *, confirmed_seconds: float, failed_seconds: float, limit: int = 100) -> Pruned:
        """Delete up to limit CONFIRMED / FAILED tasks past their retention (one slice)."""
        return self._drive(self._ops.prune(confirmed_seconds, failed_seconds, limit))

    def relist_all(self, *, batch: int = 500) -> int:
        """Put every record stored before the listing existed into it (see relist.lua), one
        HSCAN page at a time; safe beside live workers and to repeat. How many it listed."""
        return self._drive(self._ops.relist_all(batch))

    def count_by_state(self, state: State) -> int:
        return self._drive(self._ops.count_by_state(state))

    def settle(self, changes: Sequence[Change]) -> list[bool]:
        """Apply each change whose record still holds its version; False for the others."""
        return self._drive(self._ops.settle(changes))

    def _drive(self, op: Op[T]) -> T:
        """Run an operation: send what it asks for, give it the reply or the client's error."""
        with self._guarded():
            try:
                request = next(op)
                while True:
                    try:
                        reply = self._send(request)
                    except Exception as error:  # the operation decides; unhandled, it re-raises
                        request = op.throw(error)
                    else:
                        request = op.send(reply)
            except StopIteration as done:
                return cast(T, done.value)

    @contextlib.contextmanager
    def _guarded(self) -> Iterator[None]:
        """As RedisStore._guarded: the store's errors, and idle connections closed after a
        connection failure."""
        try:
            with translated():
                yield
        except StoreUnavailable:
            pool = getattr(self.client, "connection_pool", None)  # a cluster has one per node
            if pool is not None:
                with contextlib.suppress(Exception):
                    pool.disconnect(inuse_connections=False)
            raise

    def _send(self, request: Request) -> Any:
        """One request of an operation, sent as is (store/_operations.py)."""
        match request:
            case Script():
                return self._script(request)
            case HashGet(key, field):
                return self.client.hget(key, field)
            case HashGetMany(key, fields):
                return self.client.hmget(key, fields)
            case HashExists(key, fields):
                with self.client.pipeline(transaction=False) as pipe:
                    for field in fields:
                        pipe.hexists(key, field)
                    return pipe.execute()
            case HashScan(key, cursor, count):
                cursor, page = self.client.hscan(key, cursor, count=count)
                return cursor, list(page)  # the fields; the values are not needed
            case ServerInfo():
                return self.client.info()

    def _script(self, request: Script) -> tuple[Any, Any]:
        """Run a script by SHA (or by source); with wait_replicas, WAIT on the same connection."""
        call = request.call
        script = self._scripts[call.script]
        if not request.wait_replicas:
            if request.by_source:
                reply = self.client.eval(
                    source(call.script), len(call.keys), *call.keys, *call.args
                )
                return reply, None
            return script(keys=call.keys, args=call.args), None
        with self.client.pipeline(transaction=False) as pipe:
            if request.by_source:
                pipe.eval(source(call.script), len(call.keys), *call.keys, *call.args)
            else:
                script(keys=call.keys, args=call.args, client=pipe)
            pipe.execute_command("WAIT", request.wait_replicas, REPLICA_ACK_TIMEOUT_MS)
            reply, acknowledged = pipe.execute()
        return reply, acknowledged
