"""What `retryd check` reports about a PostgreSQL store: the server, its durability settings,
and the namespace's schema version against this code's.

Unlike server_facts (which `retryd run` asks first, and which refuses a schema it cannot use),
these facts report a schema that is missing or at another version, so that a deploy gate can say
what to run before it fails.
"""

from __future__ import annotations

from dataclasses import dataclass

from store.postgres._schema import SCHEMA_VERSION, Schema

__all__ = ["DatabaseFacts", "durable"]


def durable(fsync: str, synchronous_commit: str) -> bool:
    """Whether the server keeps what it acknowledged through a crash: fsync on, and commits
    acknowledged only once on disk (synchronous_commit not off)."""
    return fsync == "on" and synchronous_commit != "off"


@dataclass(frozen=True, slots=True)
class DatabaseFacts:
    """One namespace's database, as `retryd check` shows it."""

    server_version: str  # "15.20"
    fsync: str  # "on" / "off"
    synchronous_commit: str  # "on", "off", "local", "remote_write", "remote_apply"
    schema_version: int | None  # the namespace's; None: never migrated
    code_schema_version: int  # the version this code runs on (SCHEMA_VERSION)
    # Why a worker cannot run on this schema, saying what to run; None when it can.
    schema_problem: str | None

    @classmethod
    def read(
        cls, schema: Schema, settings: tuple[str, str, str], schema_version: int | None
    ) -> DatabaseFacts:
        version, fsync, synchronous_commit = settings
        return cls(
            server_version=version,
            fsync=fsync,
            synchronous_commit=synchronous_commit,
            schema_version=schema_version,
            code_schema_version=SCHEMA_VERSION,
            schema_problem=schema.version_problem(schema_version),
        )

    @property
    def durable(self) -> bool:
        return durable(self.fsync, self.synchronous_commit)

    @property
    def migrations_pending(self) -> bool:
        """The schema is missing or older than this code: `retryd migrate` would bring it."""
        return self.schema_version is None or self.schema_version < self.code_schema_version

    def warnings(self) -> list[str]:
        """The settings under which the database may lose what it acknowledged."""
        found = []
        if self.fsync != "on":
            found.append(
                "fsync is off: a crash of the database's host can lose or corrupt tasks it "
                "acknowledged"
            )
        if self.synchronous_commit == "off":
            found.append(
                "synchronous_commit is off: a database crash loses the puts and outcomes of "
                "its last moments, acknowledged or not"
            )
        return found
