"""RedisStore: the Store, Lifecycle and WorkerStore contracts on Redis (async).

Key schema (all keys of a namespace share the hash tag {ns}; see store/_keys.py):
  {ns}:tasks              hash: task id -> packed record (store/_codec.py)
  {ns}:seq                string: the last id handed out
  {ns}:types              set: every task type ever stored (bounded by the application)
  {ns}:idx:<state>:<type> sorted set: task ids of that state and type, scored by
                          next_attempt_at in integer microseconds
  {ns}:idx:damaged        sorted set: index entries set aside by claim (record missing/damaged)
  {ns}:list:<state>[:<b>] the listing: task ids by id, in buckets of 128 ids (pages by id)
  {ns}:errors             hash: task id -> its last failure
  {ns}:wake               pub/sub channel: published to when a task becomes due now
  {ns}:presence           sorted set: worker id -> its last heartbeat, in server microseconds
  {ns}:presence:payloads  hash: worker id -> what its last heartbeat reported (opaque bytes)

Cost of each operation (N tasks stored, B batch size, T task types, R due records):
  put_all        one script, O(B log N)           update       one script, O(log N)
  get_by_task_id one HGET, O(1)                   count        one script, O(T)
  get_all_ready  bounded slices (see get_ready.lua) claim       one script, O(T log N + B)
  settle/extend  one script per batch, O(B log N) stats        one script, O(T log N)
  count_by_type  one script, O(T)                 beat/beats   one script, O(log M) for M workers

Every mutation is one Lua script that validates all of its input before its first write.
This module never imports the worker: it is the store, used by producers and workers alike.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Collection, Mapping, Sequence
from datetime import datetime
from typing import Any, Self, cast

from redis.asyncio.client import PubSub
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.retry import Retry as AsyncRetry
from redis.exceptions import NoScriptError, ResponseError

from store._base import RedisStoreBase
from store._codec import decode_record
from store._commands import (
    AMBIGUOUS,
    REPLICA_ACK_TIMEOUT_MS,
    REPLICATED_SCRIPTS,
    Call,
    server_facts,
)
from store._redis_errors import translated
from store._scripts import source
from store.connection import AsyncClient, async_client_from_url
from store.errors import (
    ExistsError,
    NotFoundError,
    NotReplicatedError,
    StoreError,
    StoreUnavailable,
)
from store.lifecycle import Pruned, TaskDetails
from store.presence import Presence, TypeCounts
from store.protocol import Wakeups, check_query
from store.record import Ordering, Record, State, check_task_id, from_micros
from store.worker_types import Change, Claim, ServerFacts, Stats

__all__ = ["RedisStore"]


class RedisStore(RedisStoreBase[AsyncClient]):
    """A Store on a redis.asyncio client; several namespaces share one Redis unseen.

    A client built by hand (redis.asyncio.Redis(...)) re-sends a command up to ten times after a
    connection error, scripts included: give it retry=Retry(NoBackoff(), 0), or a put_all whose
    reply was lost may come back ExistsError for the batch it stored. from_url does this itself.
    """

    _connect = staticmethod(async_client_from_url)
    _retry_class = AsyncRetry

    async def aclose(self) -> None:
        """Close the client if this store created it (from_url); leave a caller's client open."""
        if self._owns_client:
            with translated():
                await self.client.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def put_all(self, *records: Record) -> None:
        call = self._commands.put_all(records)
        async with self._guarded():
            await self._put_all(call, records)

    async def _put_all(self, call: Call, records: Sequence[Record]) -> None:
        try:
            reply = await self._run_raw(call)
        except AMBIGUOUS:
            # The script may have run and only its reply been lost: send it once more (on a new
            # connection), and if that finds the batch stored, check it is this very batch.
            try:
                reply = await self._run_raw(call)
            except ExistsError:
                stored = await self.client.hmget(self.keys.tasks, list(call.subjects))
                if not self._commands.put_all_recovered(records, stored):
                    raise
                if self._replicas_to_ack:  # the first send's WAIT answer was lost with it
                    raise NotReplicatedError(
                        "the batch is stored; its replication could not be confirmed"
                    ) from None
                return
        self._commands.put_all_done(records, reply)

    async def update(self, record: Record) -> None:
        packed = await self._run(self._commands.update(record))
        decode_record(record.task_id, packed).copy_to(record)

    async def get_by_task_id(self, task_id: str) -> Record:
        async with self._guarded():
            packed = await self.client.hget(self.keys.tasks, check_task_id(task_id))
        if packed is None:
            raise NotFoundError(f"task {task_id!r} not found")
        return decode_record(task_id, cast(bytes, packed))

    async def get_all_ready_by_state(
        self,
        state: State,
        as_of: datetime,
        cursor: int | None = None,
        limit: int = 100,
        direction: Ordering = Ordering.ASC,
    ) -> list[Record]:
        rows = await self._page(state, as_of, cursor, limit, direction, with_errors=False)
        return self._commands.get_ready_done(rows, state, as_of)

    async def list_tasks(
        self,
        state: State,
        as_of: datetime,
        cursor: int | None = None,
        limit: int = 100,
        direction: Ordering = Ordering.ASC,
    ) -> list[TaskDetails]:
        """get_all_ready_by_state's page, each record with its last failure; [] when empty."""
        return await self._page(state, as_of, cursor, limit, direction, with_errors=True)

    async def _page(
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
            cursor, found = self._commands.get_ready_slice(
                await self._run(call), with_errors=with_errors
            )
            rows += found
            if cursor is None:
                return rows

    async def inspect(self, task_id: str) -> TaskDetails:
        """The task's record and its last failure; NotFoundError if there is no such task."""
        call = self._commands.inspect(task_id)
        return self._commands.inspect_done(await self._run(call), call)

    async def delete(self, *task_ids: str) -> int:
        """Delete every task and all kept for it, or none (NotFoundError); returns the count."""
        return int(await self._run(self._commands.delete(task_ids)))

    async def cancel(self, *task_ids: str) -> int:
        """Make every PENDING task FAILED now (reason 'cancelled'), or none; a run in
        progress has its outcome refused. NotFoundError / StateError; returns the count."""
        return int((await self._run(self._commands.cancel(task_ids)))[1])

    async def retry(self, *task_ids: str) -> int:
        """Send every FAILED task back to PENDING, due now, attempts 0, or none."""
        return int(await self._run(self._commands.retry(task_ids)))

    async def retry_failed(self, task_type: int | None = None, *, limit: int = 1000) -> int:
        """One bounded batch: up to limit FAILED tasks (of task_type, or any) back to PENDING,
        due now; returns how many (fewer than limit: none was left)."""
        return int(await self._run(self._commands.retry_failed(task_type, limit)))

    async def prune(
        self, *, confirmed_seconds: float, failed_seconds: float, limit: int = 100
    ) -> Pruned:
        """Delete up to limit CONFIRMED / FAILED tasks finished longer ago than their retention
        (0 keeps that state forever); one atomic slice, safe to run from many workers."""
        call = self._commands.prune(confirmed_seconds, failed_seconds, limit)
        return self._commands.prune_done(await self._run(call))

    async def count_by_state(self, state: State) -> int:
        return int(await self._run(self._commands.count(state)))

    async def claim(
        self, max_attempts: Mapping[int, int], *, limit: int, lease_seconds: float
    ) -> Claim:
        """Lease up to limit due PENDING tasks of the given types (type -> max_attempts)."""
        call = self._commands.claim(max_attempts, limit, lease_seconds)
        return self._commands.claim_done(await self._run(call))

    async def settle(self, changes: Sequence[Change]) -> list[bool]:
        """Apply each change whose record still holds its version; False for the others."""
        return self._commands.flags_done(await self._run(self._commands.settle(changes)))

    async def extend(self, records: Sequence[Record], *, lease_seconds: float) -> list[bool]:
        """Push forward the leases still held at each record's version; False where lost."""
        if not records:
            return []
        return self._commands.flags_done(
            await self._run(self._commands.extend(records, lease_seconds))
        )

    async def stats(self) -> Stats:
        """Counts per state, due-now count and oldest due instant, in one snapshot."""
        return self._commands.stats_done(await self._run(self._commands.stats()))

    async def count_by_type(self) -> list[TypeCounts]:
        """Tasks per state of every type ever stored, by type, in one snapshot (O(types))."""
        return self._commands.count_by_type_done(await self._run(self._commands.count_by_type()))

    async def beat(self, member: str, payload: bytes, *, forget_after_seconds: float) -> datetime:
        """Say member is alive with payload (at most 8 KiB); forget members silent for longer
        than forget_after_seconds. Returns the store's now."""
        call = self._commands.beat(member, payload, forget_after_seconds)
        return from_micros(int(await self._run(call)))

    async def beats(self, *, within_seconds: float, limit: int = 1000) -> Presence:
        """The members that beat within the last within_seconds, latest first."""
        return self._commands.beats_done(
            await self._run(self._commands.beats(within_seconds, limit))
        )

    @contextlib.asynccontextmanager
    async def wakeups(self) -> AsyncIterator[Wakeups]:
        """Subscribed to the namespace's wake channel on a pub/sub connection of its own."""
        pubsub = self.client.pubsub(ignore_subscribe_messages=True)
        try:
            async with self._guarded():
                if isinstance(self.client, RedisCluster):
                    # A cluster PubSub looks the channel's slot up in the client's slot map,
                    # which only the client's first command fills in (redis-py 6: a KeyError).
                    await self.client.initialize()
                await pubsub.subscribe(self.keys.wake_channel)
            yield _PubSubWakeups(pubsub)
        finally:
            with contextlib.suppress(StoreError), translated():
                await pubsub.aclose()  # type: ignore[no-untyped-call]

    async def which_exist(self, task_ids: Collection[str]) -> set[str]:
        """The given task ids that are stored: one pipeline of HEXISTS."""
        ids = [check_task_id(task_id) for task_id in task_ids]
        async with self._guarded(), self.client.pipeline(transaction=False) as pipe:
            for task_id in ids:
                pipe.hexists(self.keys.tasks, task_id)
            stored = await pipe.execute()
        return {task_id for task_id, found in zip(ids, stored, strict=True) if found}

    async def server_facts(self) -> ServerFacts:
        """From INFO: the server's version, appendonly and maxmemory-policy."""
        async with self._guarded():
            info = await self.client.info()
        return server_facts(info)

    @contextlib.asynccontextmanager
    async def _guarded(self) -> AsyncIterator[None]:
        """Raise the store's errors for redis-py's; after a connection failure, also close the
        idle pooled connections: a server that dropped one (a restart, a failover) dropped them
        all, and each would otherwise fail once more after it is back, a second outage."""
        try:
            with translated():
                yield
        except StoreUnavailable:
            pool = getattr(self.client, "connection_pool", None)  # a cluster has one per node
            if pool is not None:
                with contextlib.suppress(Exception):
                    await pool.disconnect(inuse_connections=False)
            raise

    async def _run(self, call: Call) -> Any:
        """Run call's script; redis-py's failures become the store's errors."""
        async with self._guarded():
            return await self._run_raw(call)

    async def _run_raw(self, call: Call) -> Any:
        try:
            try:
                return await self._send(call, by_source=False)
            except NoScriptError:
                # redis-py loads a flushed script again and retries once; a second SCRIPT FLUSH
                # (or a restart) in between would still escape. NOSCRIPT means nothing ran, and
                # EVAL sends the source itself, so it cannot miss the cache.
                return await self._send(call, by_source=True)
        except ResponseError as error:
            raise self._commands.translate(error, call) from None

    async def _send(self, call: Call, *, by_source: bool) -> Any:
        """Run call's script by SHA (or by source); with replicas_to_ack, a write is followed by
        WAIT on the same connection and counts as done only once replicated."""
        script = self._scripts[call.script]
        if not (self._replicas_to_ack and call.script in REPLICATED_SCRIPTS):
            if by_source:
                return await self.client.eval(
                    source(call.script), len(call.keys), *call.keys, *call.args
                )
            return await script(keys=call.keys, args=call.args)
        async with self.client.pipeline(transaction=False) as pipe:
            if by_source:
                pipe.eval(source(call.script), len(call.keys), *call.keys, *call.args)
            else:
                await script(keys=call.keys, args=call.args, client=pipe)
            pipe.execute_command("WAIT", self._replicas_to_ack, REPLICA_ACK_TIMEOUT_MS)
            reply, acknowledged = await pipe.execute()
        self._commands.check_replicated(acknowledged, self._replicas_to_ack, call)
        return reply


class _PubSubWakeups:
    """Wakeups on a subscribed redis-py PubSub: any message on the channel is one."""

    def __init__(self, pubsub: PubSub) -> None:
        self._pubsub = pubsub

    async def wait(self) -> None:
        with translated():
            while await self._pubsub.get_message(timeout=None) is None:
                pass  # a subscribe confirmation, or a wait that ended without a message
