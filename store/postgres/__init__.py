"""retryd's task store on PostgreSQL (psycopg 3): the same contract as the Redis stores.

A namespace is a schema of the database, created and upgraded by `retryd migrate` (migrate());
producers can put tasks inside their own transaction (put_all(..., connection=conn)). See
docs/postgres.md.
"""

from store.errors import SchemaVersionError
from store.postgres._facts import DatabaseFacts
from store.postgres._migrate import MigrationReport, migrate
from store.postgres._schema import SCHEMA_VERSION
from store.postgres.store import PostgresStore
from store.postgres.sync_store import SyncPostgresStore

__all__ = [
    "SCHEMA_VERSION",
    "DatabaseFacts",
    "MigrationReport",
    "PostgresStore",
    "SchemaVersionError",
    "SyncPostgresStore",
    "migrate",
]
