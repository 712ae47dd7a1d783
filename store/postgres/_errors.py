"""psycopg's exceptions turned into the store's, at the edge of every PostgreSQL store method.

Nothing above store/ imports psycopg: the worker, the CLI and the HTTP listener catch
StoreUnavailable (and its kin), exactly as for Redis. libpq's messages name hosts and ports,
never a password; they run over several lines, which become one.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
from psycopg import errors

from store.errors import (
    ExistsError,
    SchemaVersionError,
    StoreAccessDenied,
    StoreError,
    StoreUnavailable,
)
from store.postgres._schema import Schema

__all__ = ["LostReply", "lost_reply", "translated"]

# The server refused who we are or what we asked: a password or a grant to mend.
_REFUSALS = (
    errors.InsufficientPrivilege,
    errors.InvalidPassword,
    errors.InvalidAuthorizationSpecification,
)
# What passes: the server away, restarting, failing over or shedding load; a connection lost;
# a deadlock or serialization failure (the statement rolled back, and may simply run again).
_PASSING = (
    psycopg.OperationalError,
    psycopg.InterfaceError,
    errors.TransactionRollback,
    OSError,
)


class LostReply(StoreUnavailable):
    """A statement was sent, then its connection failed: it may have run and committed, only its
    reply lost. put_all checks which (store.postgres.store); to every other caller it is the
    StoreUnavailable it derives from."""


def lost_reply(error: BaseException) -> LostReply | None:
    """The LostReply for error, raised while a sent statement ran or answered, when it says the
    connection failed (no SQLSTATE: libpq's own; class 08, connection exception; 57P, the server
    shutting down or crashed) rather than that the server refused the statement (which then
    rolled back); None otherwise."""
    if isinstance(error, psycopg.OperationalError):
        state = error.sqlstate
        if state is not None and not state.startswith(("08", "57P")):
            return None
    elif not isinstance(error, psycopg.InterfaceError | OSError):
        return None
    return LostReply(type(error).__name__, one_line(error))


# A unique violation's detail names the key as PostgreSQL prints bytea: \x then hex.
_DUPLICATE_KEY = re.compile(r"\(task_id\)=\(\\x([0-9a-fA-F]*)\)")


@contextmanager
def translated(schema: Schema) -> Iterator[None]:
    """Raise the store's error for any error psycopg (or a socket) raises; the original stays
    chained as __cause__."""
    try:
        yield
    except errors.UniqueViolation as error:  # a concurrent put_all stored the task id first
        raise duplicate(error.diag.message_detail) from error
    except (errors.UndefinedTable, errors.InvalidSchemaName) as error:
        raise SchemaVersionError(str(schema.version_problem(None))) from error
    except _REFUSALS as error:
        raise StoreAccessDenied(type(error).__name__, one_line(error)) from error
    except _PASSING as error:
        raise StoreUnavailable(type(error).__name__, one_line(error)) from error
    except psycopg.Error as error:
        kind = type(error).__name__
        raise StoreError(f"PostgreSQL refused a statement: {kind}: {one_line(error)}") from error


def duplicate(detail: str | None) -> ExistsError:
    """The ExistsError naming the task id a unique violation's detail names."""
    found = _DUPLICATE_KEY.search(detail or "")
    if found is None:
        return ExistsError("a task of the batch already exists")
    task_id = bytes.fromhex(found.group(1)).decode("utf-8", "backslashreplace")
    return ExistsError(f"task {task_id!r} already exists")


def one_line(error: BaseException) -> str:
    """libpq's message, its lines joined."""
    return "; ".join(line.strip() for line in str(error).splitlines() if line.strip())
