"""Every PostgreSQL store operation, written once: the statement it sends and how it reads the
rows that come back (a Plan), for the async and the blocking store alike.

PostgresStore and SyncPostgresStore only run a plan's statement and hand its rows to plan.done:
they hold no decision of their own, so a fix to an operation lands once, here or in
_statements.py (the statements' parameters and row formats).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Generic, TypeVar

from store.lifecycle import Pruned, TaskDetails, TypeCursor
from store.postgres._schema import Schema
from store.postgres._statements import ByIds, Query, Row, Statements
from store.presence import Presence, TypeCounts
from store.record import Ordering, Record, State, to_utc
from store.worker_types import Change, Claim, Rate, ServerFacts, Stats

__all__ = ["Plan", "Plans"]

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Plan(Generic[T]):
    """One statement to run, and what its rows mean."""

    query: Query
    done: Callable[[list[Row]], T]


def _first(rows: list[Row]) -> Row:
    assert rows, "the statement returns a row"
    return rows[0]


class Plans:
    """The plan of each operation of one namespace's store."""

    def __init__(self, schema: Schema, max_data_bytes: int) -> None:
        self.statements = Statements(schema, max_data_bytes)

    # --- the seed's contract ---------------------------------------------------------------

    def put_all(self, records: Sequence[Record]) -> Plan[None]:
        query = self.statements.put_all(records)
        return Plan(query, lambda rows: self.statements.put_all_done(records, _first(rows)))

    def put_all_recovered(self, records: Sequence[Record]) -> Plan[bool]:
        """After a lost reply: whether the batch is stored as this put_all stores it (then
        records are filled from the store)."""
        query = self.statements.get_batch(records)
        return Plan(query, lambda rows: self.statements.put_all_recovered(records, rows))

    def update(self, record: Record) -> Plan[None]:
        query = self.statements.update(record)
        return Plan(query, lambda rows: self.statements.update_done(record, _one(rows)))

    def get_by_task_id(self, task_id: str) -> Plan[Record]:
        query = self.statements.get(task_id)
        return Plan(query, lambda rows: self.statements.get_done(task_id, _one(rows)))

    def get_all_ready_by_state(
        self, state: State, as_of: datetime, cursor: int | None, limit: int, direction: Ordering
    ) -> Plan[list[Record]]:
        query = self.statements.get_ready(state, as_of, cursor, limit, direction)
        return Plan(query, lambda rows: self.statements.get_ready_done(rows, state, as_of))

    def count_by_state(self, state: State) -> Plan[int]:
        return Plan(self.statements.count(state), lambda rows: int(_first(rows)[0]))

    # --- the lifecycle operations ------------------------------------------------------------

    def list_tasks(
        self, state: State, as_of: datetime, cursor: int | None, limit: int, direction: Ordering
    ) -> Plan[list[TaskDetails]]:
        query = self.statements.get_ready(state, as_of, cursor, limit, direction)
        return Plan(query, self.statements.details_done)

    def list_by_type(
        self,
        state: State,
        task_type: int,
        after: TypeCursor | None,
        limit: int,
        direction: Ordering,
    ) -> Plan[list[TaskDetails]]:
        query = self.statements.list_by_type(state, task_type, after, limit, direction)
        return Plan(query, self.statements.details_done)

    def inspect(self, task_id: str) -> Plan[TaskDetails]:
        query = self.statements.get(task_id)
        return Plan(query, lambda rows: self.statements.inspect_done(task_id, _one(rows)))

    def by_ids(self, operation: ByIds, task_ids: Sequence[str]) -> Plan[int]:
        """delete, cancel or retry: all of the tasks or none."""
        query, ids = self.statements.by_ids(operation, task_ids)
        return Plan(query, lambda rows: self.statements.by_ids_done(operation, ids, _first(rows)))

    def retry_failed(self, task_type: int | None, limit: int) -> Plan[int]:
        query = self.statements.retry_failed(task_type, limit)
        return Plan(query, lambda rows: int(_first(rows)[0]))

    def prune(self, confirmed_seconds: float, failed_seconds: float, limit: int) -> Plan[Pruned]:
        query = self.statements.prune(confirmed_seconds, failed_seconds, limit)
        return Plan(query, lambda rows: self.statements.prune_done(_first(rows)))

    # --- the worker's side ------------------------------------------------------------------

    def claim(
        self,
        max_attempts: Mapping[int, int],
        limit: int,
        lease_seconds: float,
        type_limits: Mapping[int, int] | None = None,
        rates: Mapping[int, Rate] | None = None,
    ) -> Plan[Claim]:
        query = self.statements.claim(max_attempts, limit, lease_seconds, type_limits, rates)
        return Plan(query, lambda rows: self.statements.claim_done(rows, type_limits, rates))

    def rate_buckets(self, task_types: Collection[int]) -> Plan[None]:
        """Make the bucket rows of these types where there are none (before a rated claim)."""
        return Plan(self.statements.rate_buckets(task_types), lambda rows: None)

    def settle(self, changes: Sequence[Change]) -> Plan[list[bool]]:
        query = self.statements.settle(changes)
        return Plan(query, lambda rows: self.statements.flags_done(rows, len(changes)))

    def extend(self, records: Sequence[Record], lease_seconds: float) -> Plan[list[bool]]:
        query = self.statements.extend(records, lease_seconds)
        return Plan(query, lambda rows: self.statements.flags_done(rows, len(records)))

    def stats(self) -> Plan[Stats]:
        return Plan(self.statements.stats(), lambda rows: self.statements.stats_done(_first(rows)))

    def count_by_type(self) -> Plan[list[TypeCounts]]:
        return Plan(self.statements.count_by_type(), self.statements.count_by_type_done)

    def beat(self, member: str, payload: bytes, forget_after_seconds: float) -> Plan[datetime]:
        query = self.statements.beat(member, payload, forget_after_seconds)
        return Plan(query, lambda rows: to_utc(_first(rows)[0]))

    def beats(self, within_seconds: float, limit: int) -> Plan[Presence]:
        return Plan(self.statements.beats(within_seconds, limit), self.statements.beats_done)

    def which_exist(self, task_ids: Collection[str]) -> Plan[set[str]]:
        return Plan(self.statements.which_exist(task_ids), self.statements.which_exist_done)

    def server_facts(self) -> Plan[ServerFacts]:
        query = self.statements.server_facts()
        return Plan(query, lambda rows: self.statements.server_facts_done(_first(rows)))

    def server_settings(self) -> Plan[tuple[str, str, str]]:
        """server_version, fsync and synchronous_commit (server_facts' statement, unread)."""
        query = self.statements.server_facts()
        return Plan(query, lambda rows: self.statements.settings_done(_first(rows)))

    def schema_version(self) -> Plan[int | None]:
        """The namespace's schema version; None when it was never migrated."""
        return Plan(self.statements.schema_version(), lambda rows: _version(rows))


def _one(rows: list[Row]) -> Row | None:
    return rows[0] if rows else None


def _version(rows: list[Row]) -> int | None:
    return int(rows[0][0]) if rows else None
