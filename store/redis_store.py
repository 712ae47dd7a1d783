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
  {ns}:rates              hash: task type -> the instant (µs) its start-rate bucket is full
                          again (claim.lua); only types given a rate have a field

Cost of each operation (N tasks stored, B batch size, T task types, R due records):
  put_all        one script, O(B log N)           update       one script, O(log N)
  get_by_task_id one HGET, O(1)                   count        one script, O(T)
  get_all_ready  bounded slices (see get_ready.lua) claim       one script, O(T log N + B)
  settle/extend  one script per batch, O(B log N) stats        one script, O(T log N)
  count_by_type  one script, O(T)                 beat/beats   one script, O(log M) for M workers

Every mutation is one Lua script that validates all of its input before its first write.
What each operation sends and decides is written once, in store/_operations.py; this class only
sends it, on a redis.asyncio client. It never imports the worker.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Collection, Mapping, Sequence
from datetime import datetime
from typing import Any, Self, TypeVar, cast

from redis.asyncio.client import PubSub
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.retry import Retry as AsyncRetry

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
from store.connection import AsyncClient, async_client_from_url
from store.errors import StoreError, StoreUnavailable
from store.lifecycle import Pruned, TaskDetails, TypeCursor
from store.presence import Presence, TypeCounts
from store.protocol import Wakeups
from store.record import Ordering, Record, State
from store.worker_types import Change, Claim, Rate, ServerFacts, Stats

__all__ = ["RedisStore"]

T = TypeVar("T")


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
        await self._drive(self._ops.put_all(records))

    async def update(self, record: Record) -> None:
        await self._drive(self._ops.update(record))

    async def get_by_task_id(self, task_id: str) -> Record:
        return await self._drive(self._ops.get_by_task_id(task_id))

    async def get_all_ready_by_state(
        self,
        state: State,
        as_of: datetime,
        cursor: int | None = None,
        limit: int = 100,
        direction: Ordering = Ordering.ASC,
    ) -> list[Record]:
        op = self._ops.get_all_ready_by_state(state, as_of, cursor, limit, direction)
        return await self._drive(op)

    async def list_tasks(
        self,
        state: State,
        as_of: datetime,
        cursor: int | None = None,
        limit: int = 100,
        direction: Ordering = Ordering.ASC,
    ) -> list[TaskDetails]:
        """get_all_ready_by_state's page, each record with its last failure; [] when empty."""
        return await self._drive(self._ops.list_tasks(state, as_of, cursor, limit, direction))

    async def list_by_type(
        self,
        state: State,
        task_type: int,
        after: TypeCursor | None = None,
        limit: int = 100,
        direction: Ordering = Ordering.ASC,
    ) -> list[TaskDetails]:
        """A page of one state and type by next_attempt_at (Lifecycle.list_by_type)."""
        return await self._drive(self._ops.list_by_type(state, task_type, after, limit, direction))

    async def inspect(self, task_id: str) -> TaskDetails:
        """The task's record and its last failure; NotFoundError if there is no such task."""
        return await self._drive(self._ops.inspect(task_id))

    async def delete(self, *task_ids: str) -> int:
        """Delete every task and all kept for it, or none (NotFoundError); returns the count."""
        return await self._drive(self._ops.delete(task_ids))

    async def cancel(self, *task_ids: str) -> int:
        """Make every PENDING task FAILED now (reason 'cancelled'), or none; a run in
        progress has its outcome refused. NotFoundError / StateError; returns the count."""
        return await self._drive(self._ops.cancel(task_ids))

    async def retry(self, *task_ids: str) -> int:
        """Send every FAILED task back to PENDING, due now, attempts 0, or none."""
        return await self._drive(self._ops.retry(task_ids))

    async def retry_failed(self, task_type: int | None = None, *, limit: int = 1000) -> int:
        """One bounded batch: up to limit FAILED tasks (of task_type, or any) back to PENDING,
        due now; returns how many (fewer than limit: none was left)."""
        return await self._drive(self._ops.retry_failed(task_type, limit))

    async def prune(
        self, *, confirmed_seconds: float, failed_seconds: float, limit: int = 100
    ) -> Pruned:
        """Delete up to limit CONFIRMED / FAILED tasks finished longer ago than their retention
        (0 keeps that state forever); one atomic slice, safe to run from many workers."""
        return await self._drive(self._ops.prune(confirmed_seconds, failed_seconds, limit))

    async def relist_all(self, *, batch: int = 500) -> int:
        """Put every record stored before the listing existed into it (see relist.lua), one
        HSCAN page at a time; safe beside live workers and to repeat. How many it listed."""
        return await self._drive(self._ops.relist_all(batch))

    async def count_by_state(self, state: State) -> int:
        return await self._drive(self._ops.count_by_state(state))

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
        type_limits and rates (WorkerStore.claim); one script call."""
        op = self._ops.claim(max_attempts, limit, lease_seconds, type_limits, rates)
        return await self._drive(op)

    async def settle(self, changes: Sequence[Change]) -> list[bool]:
        """Apply each change whose record still holds its version; False for the others."""
        return await self._drive(self._ops.settle(changes))

    async def extend(self, records: Sequence[Record], *, lease_seconds: float) -> list[bool]:
        """Push forward the leases still held at each record's version; False where lost."""
        return await self._drive(self._ops.extend(records, lease_seconds))

    async def stats(self) -> Stats:
        """Counts per state, due-now count and oldest due instant, in one snapshot."""
        return await self._drive(self._ops.stats())

    async def count_by_type(self) -> list[TypeCounts]:
        """Tasks per state of every type ever stored, by type, in one snapshot (O(types))."""
        return await self._drive(self._ops.count_by_type())

    async def beat(self, member: str, payload: bytes, *, forget_after_seconds: float) -> datetime:
        """Say member is alive with payload (at most 8 KiB); forget members silent for longer
        than forget_after_seconds. Returns the store's now."""
        return await self._drive(self._ops.beat(member, payload, forget_after_seconds))

    async def beats(self, *, within_seconds: float, limit: int = 1000) -> Presence:
        """The members that beat within the last within_seconds, latest first."""
        return await self._drive(self._ops.beats(within_seconds, limit))

    async def which_exist(self, task_ids: Collection[str]) -> set[str]:
        """The given task ids that are stored: one pipeline of HEXISTS."""
        return await self._drive(self._ops.which_exist(task_ids))

    async def server_facts(self) -> ServerFacts:
        """From INFO: the server's version, appendonly and maxmemory-policy."""
        return await self._drive(self._ops.server_facts())

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

    async def _drive(self, op: Op[T]) -> T:
        """Run an operation: send what it asks for, give it the reply or the client's error."""
        async with self._guarded():
            try:
                request = next(op)
                while True:
                    try:
                        reply = await self._send(request)
                    except Exception as error:  # the operation decides; unhandled, it re-raises
                        request = op.throw(error)
                    else:
                        request = op.send(reply)
            except StopIteration as done:
                return cast(T, done.value)

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

    async def _send(self, request: Request) -> Any:
        """One request of an operation, sent as is (store/_operations.py)."""
        match request:
            case Script():
                return await self._script(request)
            case HashGet(key, field):
                return await self.client.hget(key, field)
            case HashGetMany(key, fields):
                return await self.client.hmget(key, fields)
            case HashExists(key, fields):
                async with self.client.pipeline(transaction=False) as pipe:
                    for field in fields:
                        pipe.hexists(key, field)
                    return await pipe.execute()
            case HashScan(key, cursor, count):
                cursor, page = await self.client.hscan(key, cursor, count=count)
                return cursor, list(page)  # the fields; the values are not needed
            case ServerInfo():
                return await self.client.info()

    async def _script(self, request: Script) -> tuple[Any, Any]:
        """Run a script by SHA (or by source); with wait_replicas, WAIT on the same connection."""
        call = request.call
        script = self._scripts[call.script]
        if not request.wait_replicas:
            if request.by_source:
                reply = await self.client.eval(
                    source(call.script), len(call.keys), *call.keys, *call.args
                )
                return reply, None
            return await script(keys=call.keys, args=call.args), None
        async with self.client.pipeline(transaction=False) as pipe:
            if request.by_source:
                pipe.eval(source(call.script), len(call.keys), *call.keys, *call.args)
            else:
                await script(keys=call.keys, args=call.args, client=pipe)
            pipe.execute_command("WAIT", request.wait_replicas, REPLICA_ACK_TIMEOUT_MS)
            reply, acknowledged = await pipe.execute()
        return reply, acknowledged


class _PubSubWakeups:
    """Wakeups on a subscribed redis-py PubSub: any message on the channel is one."""

    def __init__(self, pubsub: PubSub) -> None:
        self._pubsub = pubsub

    async def wait(self) -> None:
        with translated():
            while await self._pubsub.get_message(timeout=None) is None:
                pass  # a subscribe confirmation, or a wait that ended without a message
