"""`retryd migrate`: create or upgrade a namespace's schema, safely from many processes at once.

Everything runs in one transaction under a transaction-scoped advisory lock keyed by the
namespace: containers that start together queue on the lock, the first applies the missing
migrations, the others then find nothing to do. DDL is transactional in PostgreSQL, so a failed
step leaves the schema as it was.
"""

from __future__ import annotations

from dataclasses import dataclass

import psycopg

from store.errors import SchemaVersionError
from store.postgres._schema import SCHEMA_VERSION, Schema, migrations

__all__ = ["MigrationReport", "migrate"]

_LOCK = "SELECT pg_advisory_xact_lock(hashtextextended(%(key)s, 0))"
_CREATE_SCHEMA = "CREATE SCHEMA IF NOT EXISTS {schema}"
# One row at most (the `single` key): the version of the last migration applied.
_CREATE_VERSION_TABLE = """
CREATE TABLE IF NOT EXISTS {schema}.schema_version (
    single  boolean PRIMARY KEY DEFAULT true CHECK (single),
    version integer NOT NULL
)"""
_READ_VERSION = "SELECT version FROM {schema}.schema_version"
_WRITE_VERSION = """
INSERT INTO {schema}.schema_version (version) VALUES (%(version)s)
ON CONFLICT (single) DO UPDATE SET version = excluded.version"""


@dataclass(frozen=True, slots=True)
class MigrationReport:
    """What one migrate call found and left."""

    namespace: str
    before: int  # 0: the schema did not exist
    after: int

    @property
    def applied(self) -> int:
        return self.after - self.before


def migrate(conn: psycopg.Connection[tuple[object, ...]], namespace: str) -> MigrationReport:
    """Bring namespace's schema to SCHEMA_VERSION on conn; a no-op when it is there already.

    Refuses (SchemaVersionError) a schema newer than this code, rather than touch it.
    """
    schema = Schema.for_namespace(namespace)
    with conn.transaction(), conn.cursor() as cursor:
        cursor.execute(_LOCK, {"key": f"retryd migrate {namespace}"})
        cursor.execute(_sql(_CREATE_SCHEMA, schema))
        cursor.execute(_sql(_CREATE_VERSION_TABLE, schema))
        cursor.execute(_sql(_READ_VERSION, schema))
        row = cursor.fetchone()
        before = 0 if row is None else int(row[0])  # type: ignore[call-overload]
        if before > SCHEMA_VERSION:
            raise SchemaVersionError(str(schema.version_problem(before)))
        for step in migrations()[before:]:
            cursor.execute(schema.migration_sql(step), prepare=False)  # several statements
        cursor.execute(_sql(_WRITE_VERSION, schema), {"version": SCHEMA_VERSION})
    return MigrationReport(namespace, before, SCHEMA_VERSION)


def _sql(template: str, schema: Schema) -> bytes:
    return template.replace("{schema}", schema.quoted).encode("utf-8")
