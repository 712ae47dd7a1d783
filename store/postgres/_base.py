"""What PostgresStore and SyncPostgresStore share: the pool, the schema, the plans, from_url.

The two differ only in how they wait (await or block); what they hold, how they are built from
a URL, and every operation's plan (store/postgres/_plans.py) are written once.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any, ClassVar, Generic, Self, TypeVar

from store.errors import SchemaVersionError, StoreError, StoreUnavailable
from store.postgres._connection import pool_options, probe_target
from store.postgres._plans import Plans
from store.postgres._schema import Schema
from store.protocol import DEFAULT_MAX_DATA_BYTES

__all__ = ["PostgresStoreBase"]


PoolT = TypeVar("PoolT")


class PostgresStoreBase(Generic[PoolT]):
    """A store's pool, its namespace's schema and the plans of its operations."""

    # The psycopg_pool class a subclass makes from a URL, and that pool's reconnect_failed.
    _pool_class: ClassVar[Any]
    _reconnect_failed: ClassVar[Any]

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
        # Whether the server is in doubt: not reached yet by this store, or its last call failed
        # to reach it (_reaching). Then a call that finds no idle connection in the pool
        # connects by itself (_probe_target) instead of queueing for the pool's timeout.
        self._in_doubt = True
        self._closed = False  # close() or aclose() was called

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        namespace: str = "retryd",
        max_data_bytes: int = DEFAULT_MAX_DATA_BYTES,
        **options: Any,
    ) -> Self:
        """A store on a pool of its own for url (postgresql://...), opened once a call reaches
        the server; closing the store closes the pool. options go to the pool (min_size,
        max_size, ...)."""
        pool = cls._pool_class(url, **pool_options(options, cls._reconnect_failed))
        return cls(pool, namespace=namespace, max_data_bytes=max_data_bytes, owns_pool=True)

    def _probe_target(self) -> tuple[str, dict[str, Any]] | None:
        """How to connect past the pool for this call, or None to take the pool's connection.

        A pool holding no idle connection is either busy, and its connection worth the wait
        (POOL_TIMEOUT_SECONDS), or without a server to connect to, when the whole wait is lost:
        the pool cannot tell which. While the server is in doubt, one connection of the call's
        own tells at once (a refused connection fails it in milliseconds, a server that does
        not answer within the pool's connect timeout), and serves the call if the server is
        back; a pool whose server answered lately is only busy, and is waited for. (from_url's
        pool opens once the server is reached: a server never reached leaves it unopened, with
        no attempt of its own for close to wait for.)
        """
        pool: Any = self.pool
        if not self._in_doubt or self._closed or (pool.closed and not self._owns_pool):
            return None  # a closed pool's error is the one to raise
        if pool.get_stats().get("pool_available", 0):
            return None
        return probe_target(pool)

    @property
    def _pool_to_open(self) -> bool:
        """from_url's pool, not opened yet, on a store still open: the first call that reaches
        the server opens it."""
        pool: Any = self.pool
        return bool(pool.closed and self._owns_pool and not self._closed)

    @contextlib.contextmanager
    def _reaching(self) -> Iterator[None]:
        """Note whether the call inside reached the server: StoreUnavailable (no connection, one
        lost) puts it in doubt; an answer, even a refusal (any other StoreError), clears it."""
        try:
            yield
        except StoreUnavailable:
            self._in_doubt = True
            raise
        except StoreError:
            self._in_doubt = False
            raise
        self._in_doubt = False

    def _refuse_unknown(self, version: int | None) -> None:
        """Raise SchemaVersionError, saying what to run, unless version is this code's."""
        problem = self.schema.version_problem(version)
        if problem is not None:
            raise SchemaVersionError(problem)
