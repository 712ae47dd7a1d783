"""Every Redis store operation written once, as a generator of requests (sans-IO).

An operation yields what it needs sent to Redis (a script, an HGET, ...) and is sent back the
reply, or has the client's error thrown into it where it yielded. RedisStore (async) and
SyncRedisStore (blocking) only drive these generators: they send each request and hand back
what came. So every decision is made here, once, for both: the NOSCRIPT fallback, WAIT for
replicas_to_ack, the lost-reply recovery of put_all, the bounded slices of a page. This module
does no I/O and imports no client.
"""

from __future__ import annotations

from collections.abc import Collection, Generator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar, cast

from redis.exceptions import NoScriptError, ResponseError

from store._codec import decode_record
from store._commands import AMBIGUOUS, REPLICATED_SCRIPTS, Call, Commands, server_facts
from store._keys import Keys
from store.errors import ExistsError, NotFoundError, NotReplicatedError
from store.lifecycle import Pruned, TaskDetails, TypeCursor
from store.presence import Presence, TypeCounts
from store.protocol import check_query
from store.record import Ordering, Record, State, check_task_id, from_micros
from store.worker_types import Change, Claim, Rate, ServerFacts, Stats

__all__ = [
    "HashExists",
    "HashGet",
    "HashGetMany",
    "HashScan",
    "Op",
    "Operations",
    "Request",
    "Script",
    "ServerInfo",
]

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Script:
    """Run call's script (by SHA, or by its source); with wait_replicas, WAIT for that many
    replicas on the same connection. Reply: (the script's reply, WAIT's answer or None)."""

    call: Call
    by_source: bool
    wait_replicas: int


@dataclass(frozen=True, slots=True)
class HashGet:
    """HGET key field. Reply: the value or None."""

    key: str
    field: str


@dataclass(frozen=True, slots=True)
class HashGetMany:
    """HMGET key fields. Reply: the values (None where missing)."""

    key: str
    fields: list[str]


@dataclass(frozen=True, slots=True)
class HashExists:
    """HEXISTS key field for each field, in one pipeline. Reply: one truthy value per field."""

    key: str
    fields: list[str]


@dataclass(frozen=True, slots=True)
class HashScan:
    """HSCAN key cursor COUNT count. Reply: (the next cursor, 0 at the end; the page's fields)."""

    key: str
    cursor: int
    count: int


@dataclass(frozen=True, slots=True)
class ServerInfo:
    """INFO. Reply: its fields (per node, for a cluster client)."""


Request = Script | HashGet | HashGetMany | HashExists | HashScan | ServerInfo
Op = Generator[Request, Any, T]


class Operations:
    """The operations of one namespace's store, as generators (see the module docstring)."""

    def __init__(self, commands: Commands, keys: Keys, replicas_to_ack: int) -> None:
        self._commands = commands
        self._keys = keys
        self._replicas_to_ack = replicas_to_ack

    def script(self, call: Call) -> Op[Any]:
        """Run call's script: by source if the server lost it, checked for replication, its
        error reply mapped to the store's exception."""
        wait = self._replicas_to_ack if call.script in REPLICATED_SCRIPTS else 0
        try:
            try:
                reply, acknowledged = yield Script(call, by_source=False, wait_replicas=wait)
            except NoScriptError:
                # redis-py loads a flushed script again and retries once; a second SCRIPT FLUSH
                # (or a restart) in between would still escape. NOSCRIPT means nothing ran, and
                # EVAL sends the source itself, so it cannot miss the cache.
                reply, acknowledged = yield Script(call, by_source=True, wait_replicas=wait)
        except ResponseError as error:
            raise self._commands.translate(error, call) from None
        if wait:
            self._commands.check_replicated(acknowledged, wait, call)
        return reply

    def put_all(self, records: Sequence[Record]) -> Op[None]:
        call = self._commands.put_all(records)
        try:
            reply = yield from self.script(call)
        except AMBIGUOUS:
            # The script may have run and only its reply been lost: send it once more (on a new
            # connection), and if that finds the batch stored, check it is this very batch.
            try:
                reply = yield from self.script(call)
            except ExistsError:
                stored = yield HashGetMany(self._keys.tasks, list(call.subjects))
                if not self._commands.put_all_recovered(records, stored):
                    raise
                if self._replicas_to_ack:  # the first send's WAIT answer was lost with it
                    raise NotReplicatedError(
                        "the batch is stored; its replication could not be confirmed"
                    ) from None
                return
        self._commands.put_all_done(records, reply)

    def update(self, record: Record) -> Op[None]:
        packed = yield from self.script(self._commands.update(record))
        decode_record(record.task_id, packed).copy_to(record)

    def get_by_task_id(self, task_id: str) -> Op[Record]:
        packed = yield HashGet(self._keys.tasks, check_task_id(task_id))
        if packed is None:
            raise NotFoundError(f"task {task_id!r} not found")
        return decode_record(task_id, cast(bytes, packed))

    def get_all_ready_by_state(
        self, state: State, as_of: datetime, cursor: int | None, limit: int, direction: Ordering
    ) -> Op[list[Record]]:
        rows = yield from self._page(state, as_of, cursor, limit, direction, with_errors=False)
        return self._commands.get_ready_done(rows, state, as_of)

    def list_tasks(
        self, state: State, as_of: datetime, cursor: int | None, limit: int, direction: Ordering
    ) -> Op[list[TaskDetails]]:
        return (yield from self._page(state, as_of, cursor, limit, direction, with_errors=True))

    def list_by_type(
        self,
        state: State,
        task_type: int,
        after: TypeCursor | None,
        limit: int,
        direction: Ordering,
    ) -> Op[list[TaskDetails]]:
        call = self._commands.list_type(state, task_type, after, limit, direction)
        return self._commands.list_type_done((yield from self.script(call)))

    def _page(
        self,
        state: State,
        as_of: datetime,
        cursor: int | None,
        limit: int,
        direction: Ordering,
        *,
        with_errors: bool,
    ) -> Op[list[Any]]:
        """A page in bounded slices: each script call reads at most PAGE_BUDGET entries."""
        check_query(state, as_of, cursor, limit, direction)  # before limit is counted down
        rows: list[Any] = []
        while True:
            left = limit - len(rows)
            call = self._commands.get_ready(
                state, as_of, cursor, left, direction, with_errors=with_errors
            )
            reply = yield from self.script(call)
            cursor, found = self._commands.get_ready_slice(reply, with_errors=with_errors)
            rows += found
            if cursor is None:
                return rows

    def inspect(self, task_id: str) -> Op[TaskDetails]:
        call = self._commands.inspect(task_id)
        return self._commands.inspect_done((yield from self.script(call)), call)

    def delete(self, task_ids: Sequence[str]) -> Op[int]:
        return int((yield from self.script(self._commands.delete(task_ids))))

    def cancel(self, task_ids: Sequence[str]) -> Op[int]:
        return int((yield from self.script(self._commands.cancel(task_ids)))[1])

    def retry(self, task_ids: Sequence[str]) -> Op[int]:
        return int((yield from self.script(self._commands.retry(task_ids))))

    def retry_failed(self, task_type: int | None, limit: int) -> Op[int]:
        return int((yield from self.script(self._commands.retry_failed(task_type, limit))))

    def prune(self, confirmed_seconds: float, failed_seconds: float, limit: int) -> Op[Pruned]:
        call = self._commands.prune(confirmed_seconds, failed_seconds, limit)
        return self._commands.prune_done((yield from self.script(call)))

    def relist_all(self, batch: int) -> Op[int]:
        """List every record stored before the listing existed (relist.lua), one HSCAN page at
        a time; how many it listed."""
        cursor, added = 0, 0
        while True:
            cursor, fields = yield HashScan(self._keys.tasks, cursor, batch)
            if fields:
                added += int((yield from self.script(self._commands.relist(fields))))
            if cursor == 0:
                return added

    def count_by_state(self, state: State) -> Op[int]:
        return int((yield from self.script(self._commands.count(state))))

    def claim(
        self,
        max_attempts: Mapping[int, int],
        limit: int,
        lease_seconds: float,
        type_limits: Mapping[int, int] | None = None,
        rates: Mapping[int, Rate] | None = None,
    ) -> Op[Claim]:
        call = self._commands.claim(max_attempts, limit, lease_seconds, type_limits, rates)
        return self._commands.claim_done((yield from self.script(call)))

    def settle(self, changes: Sequence[Change]) -> Op[list[bool]]:
        return self._commands.flags_done((yield from self.script(self._commands.settle(changes))))

    def extend(self, records: Sequence[Record], lease_seconds: float) -> Op[list[bool]]:
        if not records:
            return []
        call = self._commands.extend(records, lease_seconds)
        return self._commands.flags_done((yield from self.script(call)))

    def stats(self) -> Op[Stats]:
        return self._commands.stats_done((yield from self.script(self._commands.stats())))

    def count_by_type(self) -> Op[list[TypeCounts]]:
        call = self._commands.count_by_type()
        return self._commands.count_by_type_done((yield from self.script(call)))

    def beat(self, member: str, payload: bytes, forget_after_seconds: float) -> Op[datetime]:
        call = self._commands.beat(member, payload, forget_after_seconds)
        return from_micros(int((yield from self.script(call))))

    def beats(self, within_seconds: float, limit: int) -> Op[Presence]:
        call = self._commands.beats(within_seconds, limit)
        return self._commands.beats_done((yield from self.script(call)))

    def which_exist(self, task_ids: Collection[str]) -> Op[set[str]]:
        ids = [check_task_id(task_id) for task_id in task_ids]
        if not ids:
            return set()
        stored = yield HashExists(self._keys.tasks, ids)
        return {task_id for task_id, found in zip(ids, stored, strict=True) if found}

    def server_facts(self) -> Op[ServerFacts]:
        return server_facts((yield ServerInfo()))
