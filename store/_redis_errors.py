"""redis-py's exceptions turned into the store's, at the edge of every Redis store method.

Nothing above store/ imports redis-py: the worker, the CLI and the HTTP listener catch
StoreUnavailable (and its kin) instead. The script error codes (EXISTS, STALE, INVALID) are
mapped one step earlier, by Commands.translate; what reaches here is the server or the network.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from redis.exceptions import (
    AuthenticationError,
    AuthenticationWrongNumberOfArgsError,
    NoPermissionError,
    RedisClusterException,
    RedisError,
)

from store.errors import StoreAccessDenied, StoreUnavailable

__all__ = ["translated"]

# The server refused who we are or what we asked: an ACL or a password to mend.
_REFUSALS = (AuthenticationError, AuthenticationWrongNumberOfArgsError, NoPermissionError)


@contextmanager
def translated() -> Iterator[None]:
    """Raise StoreAccessDenied or StoreUnavailable for any error redis-py (or a socket) raises.

    Every one of them was retried by the worker before this seam existed, and still is:
    connection and timeout errors, a server loading or failing over, a cluster none of whose
    nodes answers (RedisClusterException is not a RedisError), OSError below redis-py.
    The original stays chained as __cause__; its text names hosts and ports, never a password.
    """
    try:
        yield
    except _REFUSALS as error:
        raise StoreAccessDenied(type(error).__name__, str(error)) from error
    except (RedisError, RedisClusterException, OSError) as error:
        raise StoreUnavailable(type(error).__name__, str(error)) from error
