"""How the PostgreSQL stores connect: their pools' options, and the checks on a caller's
connection that put_all joins.

The stores' own connections run in autocommit, each statement its own transaction: a statement
is all or nothing by itself, and no BEGIN/COMMIT round trips are spent on it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg.pq import TransactionStatus
from psycopg_pool import AsyncConnectionPool, ConnectionPool

from store.errors import ValidationError

__all__ = [
    "SAVEPOINT",
    "async_keep_trying",
    "check_callers_connection",
    "keep_trying",
    "pool_options",
    "probe_target",
]

# Bounded waits: a call waits this long for a busy pool's connection, then fails (a pool merely
# busy is worth the wait); a connection attempt gives up after 5 s, the smaller bound, which is
# all a call waits while the server is in doubt and the pool has no idle connection (then the
# call makes that attempt itself: PostgresStoreBase._probe_target; a refused connection fails it
# at once).
POOL_TIMEOUT_SECONDS = 10.0
CONNECT_TIMEOUT_SECONDS = 5
# The pool's own reconnection attempts back off (1 s, 2 s, 4 s ...) for this long, then give up
# (and start again at 1 s while callers wait for a connection: keep_trying): left at
# psycopg_pool's 5 minutes, a pool whose attempts had backed off to half a minute would go on
# refusing calls that long after the server returned.
RECONNECT_TIMEOUT_SECONDS = 2.0


def pool_options(options: dict[str, Any], reconnect_failed: Any) -> dict[str, Any]:
    """Keyword arguments for a psycopg pool of a store: ours, overridden by the caller's.
    reconnect_failed is keep_trying or async_keep_trying, as the pool is."""
    connection = {
        "autocommit": True,
        "connect_timeout": CONNECT_TIMEOUT_SECONDS,
        "application_name": "retryd",
        # Each statement is a long CTE that takes about a millisecond to plan, longer than most
        # take to run: prepare it on first use, so that the server can settle on a generic
        # plan after its first few runs (a page query keeps custom plans while they pay).
        "prepare_threshold": 0,
    }
    connection |= options.pop("kwargs", None) or {}
    defaults = {
        "min_size": 1,
        "max_size": 10,
        "timeout": POOL_TIMEOUT_SECONDS,
        "reconnect_timeout": RECONNECT_TIMEOUT_SECONDS,
        "reconnect_failed": reconnect_failed,
        "open": False,
    }
    return defaults | options | {"kwargs": connection}


def keep_trying(pool: ConnectionPool[Any]) -> None:
    """The pool's reconnect_failed: it gave up reconnecting (RECONNECT_TIMEOUT_SECONDS). While
    callers still wait for a connection, start again (check() grows the pool by an attempt):
    they queued before the outage was known, and no one else would ask for it."""
    if pool.get_stats().get("requests_waiting"):
        pool.check()


async def async_keep_trying(pool: AsyncConnectionPool[Any]) -> None:
    """keep_trying for an AsyncConnectionPool."""
    if pool.get_stats().get("requests_waiting"):
        await pool.check()


def probe_target(pool: Any) -> tuple[str, dict[str, Any]] | None:
    """The conninfo and connection options pool connects with, for an attempt of a call's own:
    the pool's connect timeout, if it is set, but no longer than the pool's own timeout (psycopg
    waits at least 2 s, as libpq does). None when the pool computes them per connection (a
    callable), which only the pool knows how to call."""
    conninfo, kwargs = pool.conninfo, pool.kwargs or {}
    if not isinstance(conninfo, str) or not isinstance(kwargs, dict):
        return None
    timeout = float(kwargs.get("connect_timeout") or pool.timeout)
    return conninfo, kwargs | {"connect_timeout": max(2, math.ceil(min(timeout, pool.timeout)))}


@dataclass(frozen=True, slots=True)
class Savepoint:
    """The statements around put_all in a caller's transaction."""

    create: bytes
    roll_back: bytes
    release: bytes


SAVEPOINT = Savepoint(
    create=b"SAVEPOINT retryd_put_all",
    roll_back=b"ROLLBACK TO SAVEPOINT retryd_put_all",
    release=b"RELEASE SAVEPOINT retryd_put_all",
)


def check_callers_connection(conn: psycopg.Connection[Any] | psycopg.AsyncConnection[Any]) -> None:
    """Refuse a connection whose transaction put_all cannot join, before anything is sent.

    A connection outside autocommit with no transaction yet is fine: the savepoint's statement
    opens the caller's transaction, which the caller commits (Django's atomic() and
    SQLAlchemy's Session leave psycopg connections in that state until their first query).
    """
    if not isinstance(conn, psycopg.Connection | psycopg.AsyncConnection):
        raise ValidationError(
            "connection",
            f"must be a psycopg connection, got {type(conn).__name__} (docs/postgres.md shows "
            "how to get it from SQLAlchemy and Django)",
        )
    status = conn.info.transaction_status
    if status == TransactionStatus.INERROR:
        raise ValidationError("connection", "its transaction has failed: roll it back first")
    if status == TransactionStatus.IDLE and conn.autocommit:
        raise ValidationError(
            "connection",
            "is in autocommit with no transaction open: the tasks would commit on their own; "
            "open one (with conn.transaction():) or call put_all without connection",
        )
    if status not in (TransactionStatus.IDLE, TransactionStatus.INTRANS):
        raise ValidationError("connection", f"is busy or broken ({status.name})")
