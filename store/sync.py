"""SyncRedisStore: the producer's side of RedisStore for code without an event loop.

A Flask or Django app puts and reads tasks with it; it runs the very same scripts and checks as
RedisStore (store/_commands.py), on a plain redis.Redis client.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, Self, cast

from redis.exceptions import NoScriptError, ResponseError
from redis.retry import Retry

from store._base import RedisStoreBase
from store._codec import decode_record
from store._commands import AMBIGUOUS, REPLICA_ACK_TIMEOUT_MS, REPLICATED_SCRIPTS, Call
from store._scripts import source
from store.connection import SyncClient, sync_client_from_url
from store.errors import ExistsError, NotFoundError, NotReplicatedError
from store.queue import Change
from store.record import Ordering, Record, State, check_task_id

__all__ = ["SyncRedisStore"]


class SyncRedisStore(RedisStoreBase[SyncClient]):
    """The Store contract, blocking, on a redis.Redis client."""

    _connect = staticmethod(sync_client_from_url)
    _retry_class = Retry

    def close(self) -> None:
        """Close the client if this store created it (from_url)."""
        if self._owns_client:
            self.client.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def put_all(self, *records: Record) -> None:
        call = self._commands.put_all(records)
        try:
            reply = self._run(call)
        except AMBIGUOUS:
            # As RedisStore.put_all: re-send once; EXISTS then means ours only if stored as sent.
            try:
                reply = self._run(call)
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
        call = self._commands.get_ready(state, as_of, cursor, limit, direction)
        return self._commands.get_ready_done(self._run(call), state, as_of)

    def count_by_state(self, state: State) -> int:
        return int(self._run(self._commands.count(state)))

    def settle(self, changes: Sequence[Change]) -> list[bool]:
        """Apply each change whose record still holds its version; False for the others."""
        return self._commands.flags_done(self._run(self._commands.settle(changes)))

    def _run(self, call: Call) -> Any:
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
