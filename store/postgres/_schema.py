"""A namespace's schema on PostgreSQL: its name, its SQL statements, and its migrations.

A namespace is a schema of its own (`tasks`, `task_ids`, `schema_version` inside it), so several
deployments share one database without seeing each other; its NOTIFY channel is named after it.
Statements live in sql/*.sql and migrations in migrations/NNNN_name.sql, each with a header;
`{schema}` in them stands for the quoted schema name. This module does no I/O.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from importlib.resources import files
from typing import Literal

from store.errors import ValidationError

__all__ = [
    "SCHEMA_VERSION",
    "Migration",
    "QueryName",
    "Schema",
    "migrations",
]

QueryName = Literal[
    "put_all",
    "update",
    "get",
    "get_batch",
    "get_ready_asc",
    "get_ready_desc",
    "list_type_asc",
    "list_type_desc",
    "count",
    "claim",
    "rate_buckets",
    "settle",
    "extend",
    "stats",
    "delete",
    "transition",
    "retry_failed",
    "prune",
    "count_by_type",
    "beat",
    "beats",
    "which_exist",
    "server_facts",
    "schema_version",
]

# Letters, digits and _.:- as on Redis; 63 bytes is PostgreSQL's limit on a schema's (and a
# NOTIFY channel's) name, and names starting with pg_ are reserved for the system.
_NAMESPACE = re.compile(r"(?!pg_)[A-Za-z0-9_.:\-]{1,63}")


@dataclass(frozen=True, slots=True)
class Migration:
    """One step of the schema: version N is migrations/NNNN_*.sql."""

    version: int
    name: str
    text: str


@functools.cache
def migrations() -> tuple[Migration, ...]:
    """Every migration, in version order (checked to be 1, 2, 3, ...)."""
    folder = files("store.postgres") / "migrations"
    found = sorted(p.name for p in folder.iterdir() if p.name.endswith(".sql"))
    steps = tuple(
        Migration(int(name[:4]), name, (folder / name).read_text(encoding="utf-8"))
        for name in found
    )
    assert [m.version for m in steps] == list(range(1, len(steps) + 1)), found
    return steps


SCHEMA_VERSION = len(migrations())


@dataclass(frozen=True, slots=True)
class Schema:
    """The names one namespace uses in the database."""

    namespace: str
    quoted: str  # the schema name as an SQL identifier
    channel: str  # LISTEN/NOTIFY channel, published to when a task becomes due now

    @classmethod
    def for_namespace(cls, namespace: str) -> Schema:
        if not isinstance(namespace, str) or not _NAMESPACE.fullmatch(namespace):
            raise ValidationError(
                "namespace",
                "on PostgreSQL must be 1-63 characters of letters, digits and _.:- , not "
                f"starting with pg_, got {namespace!r}",
            )
        # The pattern admits no double quote, so quoting cannot be escaped from.
        return cls(namespace=namespace, quoted=f'"{namespace}"', channel=namespace)

    def sql(self, name: QueryName) -> bytes:
        """The text of one statement for this schema (bytes: psycopg takes them as they are)."""
        return _formatted(name, self.quoted)

    def migration_sql(self, migration: Migration) -> bytes:
        return migration.text.replace("{schema}", self.quoted).encode("utf-8")

    def version_problem(self, version: int | None) -> str | None:
        """Why a worker cannot run on a schema at version (None: not created), or None."""
        where = f"namespace {self.namespace!r}"
        if version is None:
            return f"{where} has no retryd schema in this database: run `retryd migrate`"
        if version < SCHEMA_VERSION:
            return (
                f"{where} is at schema version {version}, this retryd needs {SCHEMA_VERSION}: "
                "run `retryd migrate`"
            )
        if version > SCHEMA_VERSION:
            return (
                f"{where} is at schema version {version}, newer than this retryd knows "
                f"({SCHEMA_VERSION}): upgrade retryd"
            )
        return None


@functools.cache
def _formatted(name: QueryName, quoted: str) -> bytes:
    text = (files("store.postgres") / "sql" / f"{name}.sql").read_text(encoding="utf-8")
    return text.replace("{schema}", quoted).encode("utf-8")
