"""open_store: the one place that picks a store for a URL, by its scheme.

The worker, `retryd run` and every CLI command open their store here and then know it only as a
WorkerStore: a new backend is a new row in OPENERS (and its module), nothing above store/.
"""

from __future__ import annotations

from collections.abc import Callable

from store.connection import REDIS_SCHEMES, redact
from store.protocol import DEFAULT_MAX_DATA_BYTES, WorkerStore
from store.redis_store import RedisStore

__all__ = ["SCHEMES", "open_store"]

# How a store is made from (url, namespace, max_data_bytes, replicas_to_ack).
Opener = Callable[[str, str, int, int], WorkerStore]


def _open_redis(url: str, namespace: str, max_data_bytes: int, replicas_to_ack: int) -> WorkerStore:
    return RedisStore.from_url(
        url, namespace=namespace, max_data_bytes=max_data_bytes, replicas_to_ack=replicas_to_ack
    )


def _open_postgres(
    url: str, namespace: str, max_data_bytes: int, replicas_to_ack: int
) -> WorkerStore:
    if replicas_to_ack:
        raise ValueError(
            "redis.replicas_to_ack is a Redis setting; on PostgreSQL, synchronous replication "
            "is the server's (synchronous_standby_names)"
        )
    try:  # psycopg comes with the `postgres` extra: a Redis deployment never imports it
        from store.postgres import PostgresStore
    except ImportError as missing:
        raise ValueError(
            f"{redact(url)!r} needs the PostgreSQL store: pip install 'retryd[postgres]' "
            f"({missing})"
        ) from None
    return PostgresStore.from_url(url, namespace=namespace, max_data_bytes=max_data_bytes)


# Scheme -> opener. Redis: one server, TLS, a Unix socket, Cluster and Sentinel (the URL forms
# are in store/connection.py). PostgreSQL: store/postgres/ (docs/postgres.md).
OPENERS: dict[str, Opener] = dict.fromkeys(REDIS_SCHEMES, _open_redis)
OPENERS |= dict.fromkeys(("postgresql", "postgres"), _open_postgres)
SCHEMES = tuple(OPENERS)


def open_store(
    url: str,
    *,
    namespace: str = "retryd",
    max_data_bytes: int = DEFAULT_MAX_DATA_BYTES,
    replicas_to_ack: int = 0,
) -> WorkerStore:
    """A store on its own connections for url; closing it (aclose) closes them.

    ValueError names what is wrong with the URL, with any password in it masked.
    """
    scheme = url.partition("://")[0].lower() if "://" in url else ""
    opener = OPENERS.get(scheme)
    if opener is None:
        known = ", ".join(f"{s}://" for s in SCHEMES)
        raise ValueError(f"unsupported store URL scheme {scheme!r} in {redact(url)!r}: use {known}")
    return opener(url, namespace, max_data_bytes, replicas_to_ack)
