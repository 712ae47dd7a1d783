"""What PostgresStore and SyncPostgresStore share: the pool, the schema, the plans, from_url.

The two differ only in how they wait (await or block); what they hold, how they are built from
a URL, and every operation's plan (store/postgres/_plans.py) are written once.
"""

from __future__ import annotations

from typing import Any, ClassVar, Generic, Self, TypeVar

from store.errors import SchemaVersionError
from store.postgres._connection import pool_options
from store.postgres._plans import Plans
from store.postgres._schema import Schema
from store.protocol import DEFAULT_MAX_DATA_BYTES

__all__ = ["PostgresStoreBase"]


PoolT = TypeVar("PoolT")


class PostgresStoreBase(Generic[PoolT]):
    """A store's pool, its namespace's schema and the plans of its operations."""

    # The psycopg_pool class a subclass makes from a URL.
    _pool_class: ClassVar[Any]

    def __init__(
        self,
        pool: PoolT,
        *,
        namespace: str = "retryd",
        max_data_bytes: int = DEFAULT_MAX_DATA_BYTES,
        owns_pool: bool = False,
    ) -> None:
        self.pool = pool
        self.schema = Schema.for_namespace(namespace)
        self._plans = Plans(self.schema, max_data_bytes)
        self._owns_pool = owns_pool
        # The types whose rate bucket row this store knows exists (claim makes it once).
        self._rate_buckets: set[int] = set()

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        namespace: str = "retryd",
        max_data_bytes: int = DEFAULT_MAX_DATA_BYTES,
        **options: Any,
    ) -> Self:
        """A store on a pool of its own for url (postgresql://...), opened on first use;
        closing the store closes the pool. options go to the pool (min_size, max_size, ...)."""
        pool = cls._pool_class(url, **pool_options(options))
        return cls(pool, namespace=namespace, max_data_bytes=max_data_bytes, owns_pool=True)

    def _refuse_unknown(self, version: int | None) -> None:
        """Raise SchemaVersionError, saying what to run, unless version is this code's."""
        problem = self.schema.version_problem(version)
        if problem is not None:
            raise SchemaVersionError(problem)
