"""How the PostgreSQL stores connect: their pools' options, and the checks on a caller's
connection that put_all joins.

The stores' own connections run in autocommit, each statement its own transaction: a statement
is all or nothing by itself, and no BEGIN/COMMIT round trips are spent on it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg.pq import TransactionStatus

from store.errors import ValidationError

__all__ = ["SAVEPOINT", "check_callers_connection", "pool_options"]

# Bounded waits: a pool with no connection to give (the database away) fails a call after this
# many seconds instead of hanging a worker; a connection attempt gives up after 10 s.
POOL_TIMEOUT_SECONDS = 10.0
CONNECT_TIMEOUT_SECONDS = 10


def pool_options(options: dict[str, Any]) -> dict[str, Any]:
    """Keyword arguments for a psycopg pool of a store: ours, overridden by the caller's."""
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
    defaults = {"min_size": 1, "max_size": 10, "timeout": POOL_TIMEOUT_SECONDS, "open": False}
    return defaults | options | {"kwargs": connection}


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
