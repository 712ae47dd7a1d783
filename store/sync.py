"""SyncRedisStore: the producer's side of RedisStore for code without an event loop.

A Flask or Django app puts and reads tasks with it; it runs the very same scripts and checks as
RedisStore (store/_commands.py), on a plain redis.Redis client.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any, Self, cast

from redis.exceptions import NoScriptError, ResponseError
from redis.retry import Retry

from store._base import RedisStoreBase
from store._codec import decode_record
from store._commands import AMBIGUOUS, REPLICA_ACK_TIMEOUT_MS, REPLICATED_SCRIPTS, Call
from store._redis_errors import translated
from store._scripts import source
from store.connection import SyncClient, sync_client_from_url
from store.errors import ExistsError, NotFoundError, NotReplicatedError, StoreUnavailable
from store.lifecycle import Pruned, TaskDetails
from store.protocol import check_query
from store.record import Ordering, Record, State, check_task_id
from store.worker_types import Change

__all__ = ["SyncRedisStore"]


class SyncRedisStore(RedisStoreBase[SyncClient]):
    """The Store contract, blocking, on a redis.Redis client."""

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
        call = self._commands.put_all(records)
        with self._guarded():
            self._put_all(call, records)

    def _put_all(self, call: Call, records: Sequence[Record]) -> None:
        try:
            reply = self._run_raw(call)
        except AMBIGUOUS:
            # As RedisStore.put_all: re-send once; EXISTS then means ours only if stored as sent.
            try:
                reply = self._run_raw(call)
            except ExistsError:
                stored = self.client.hmget(self.keys.tasks, list(call.subjects))
                if not self._commands.put_all_recovered(records, stored):
                    raise
                if self._replicas_to_ack:
                    raise NotReplicatedError(
                        "the batch is stored; its replication could not be confirmed"
                    ) from None
                return
        self._commands.put_all_done(records, reply)

    def update(self, record: Record) -> None:
        packed = self._run(self._commands.update(record))
        decode_record(record.task_id, packed).copy_to(record)

    def get_by_task_id(self, task_id: str) -> Record:
        with self._guarded():
            packed = self.client.hget(self.keys.tasks, check_task_id(task_id))
        if packed is None:
            raise NotFoundError(f"task {task_id!r} not found")
        return decode_record(task_id, cast(bytes, packed))

    def get_all_ready_by_state(
        self,
        state: State,
        as_of: datetime,
        cursor: int | None = None,
        limit: int = 100,
        direction: Ordering = Ordering.ASC,
    ) -> list[Record]:
        rows = self._page(state, as_of, cursor, limit, direction, with_errors=False)
        return self._commands.get_ready_done(rows, state, as_of)

    def list_tasks(
        self,
        state: State,
        as_of: datetime,
        cursor: int | None = None,
        limit: int = 100,
        direction: Ordering = Ordering.ASC,
    ) -> list[TaskDetails]:
        """get_all_ready_by_state's page, each record with its last failure; [] when empty."""
        return self._page(state, as_of, cursor, limit, direction, with_errors=True)

    def _page(
        self,
        state: State,
        as_of: datetime,
        cursor: int | None,
        limit: int,
        direction: Ordering,
        *,
        with_errors: bool,
    ) -> list[Any]:
        """A page in bounded slices: each script call reads at most PAGE_BUDGET entries."""
        check_query(state, as_of, cursor, limit, direction)  # before limit is counted down
        rows: list[Any] = []
        while True:
            left = limit - len(rows)
            call = self._commands.get_ready(
                state, as_of, cursor, left, direction, with_errors=with_errors
            )
            cursor, found = self._commands.get_ready_slice(self._run(call), with_errors=with_errors)
            rows += found
            if cursor is None:
                return rows

    def inspect(self, task_id: str) -> TaskDetails:
        """The task's record and its last failure; NotFoundError if there is no such task."""
        call = self._commands.inspect(task_id)
        return self._commands.inspect_done(self._run(call), call)

    def delete(self, *task_ids: str) -> int:
        """As RedisStore.delete."""
        return int(self._run(self._commands.delete(task_ids)))

    def cancel(self, *task_ids: str) -> int:
        """As RedisStore.cancel."""
        return int(self._run(self._commands.cancel(task_ids))[1])

    def retry(self, *task_ids: str) -> int:
        """As RedisStore.retry."""
        return int(self._run(self._commands.retry(task_ids)))

    def retry_failed(self, task_type: int | None = None, *, limit: int = 1000) -> int:
        """As RedisStore.retry_failed."""
        return int(self._run(self._commands.retry_failed(task_type, limit)))

    def prune(self, *, confirmed_seconds: float, failed_seconds: float, limit: int = 100) -> Pruned:
        """As RedisStore.prune."""
        call = self._commands.prune(confirmed_seconds, failed_seconds, limit)
        return self._commands.prune_done(self._run(call))

    def count_by_state(self, state: State) -> int:
        return int(self._run(self._commands.count(state)))

    def settle(self, changes: Sequence[Change]) -> list[bool]:
        """Apply each change whose record still holds its version; False for the others."""
        return self._commands.flags_done(self._run(self._commands.settle(changes)))

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

    def _run(self, call: Call) -> Any:
        """Run call's script; redis-py's failures become the store's errors."""
        with self._guarded():
            return self._run_raw(call)

    def _run_raw(self, call: Call) -> Any:
        try:
            try:
                return self._send(call, by_source=False)
            except NoScriptError:
                # redis-py loads a flushed script again and retries once; a second SCRIPT FLUSH
                # (or a restart) in between would still escape. NOSCRIPT means nothing ran, and
                # EVAL sends the source itself, so it cannot miss the cache.
                return self._send(call, by_source=True)
        except ResponseError as error:
            raise self._commands.translate(error, call) from None

    def _send(self, call: Call, *, by_source: bool) -> Any:
        """Run call's script by SHA (or by source); with replicas_to_ack, a write is followed by
        WAIT on the same connection and counts as done only once replicated."""
        script = self._scripts[call.script]
        if not (self._replicas_to_ack and call.script in REPLICATED_SCRIPTS):
            if by_source:
                return self.client.eval(source(call.script), len(call.keys), *call.keys, *call.args)
            return script(keys=call.keys, args=call.args)
        with self.client.pipeline(transaction=False) as pipe:
            if by_source:
                pipe.eval(source(call.script), len(call.keys), *call.keys, *call.args)
            else:
                script(keys=call.keys, args=call.args, client=pipe)
            pipe.execute_command("WAIT", self._replicas_to_ack, REPLICA_ACK_TIMEOUT_MS)
            reply, acknowledged = pipe.execute()
        self._commands.check_replicated(acknowledged, self._replicas_to_ack, call)
        return reply
