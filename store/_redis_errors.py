"""redis-py's exceptions turned into the store's, at the edge of every Redis store method.

Nothing above store/ imports redis-py: the worker, the CLI and the HTTP listener catch
StoreUnavailable (and its kin) instead. The script error codes (EXISTS, STALE, INVALID) are
mapped by Commands.translate, which first asks refusal() here whether the reply is the server
refusing the call (OOM, READONLY, BUSY, NOPERM); everything else that reaches translated() is the
server or the network.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager

from redis.exceptions import (
    AuthenticationError,
    AuthenticationWrongNumberOfArgsError,
    NoPermissionError,
    OutOfMemoryError,
    ReadOnlyError,
    RedisClusterException,
    RedisError,
    ResponseError,
)

from store.errors import StoreAccessDenied, StoreError, StoreUnavailable

__all__ = ["refusal", "reply_text", "translated"]

# The server refused who we are or what we asked: an ACL or a password to mend.
_REFUSALS = (AuthenticationError, AuthenticationWrongNumberOfArgsError, NoPermissionError)
# The server refused a call for a state that passes, before or at its first write (so nothing of
# it was written): OOM, maxmemory reached until memory is freed; READONLY, a replica answering
# writes, as during a failover until the clients follow the new master. The same call succeeds
# later, so these are retried as an outage is (TransientError), never taken as an answer.
_PASSING = (OutOfMemoryError, ReadOnlyError)
# Replies that say the call was not run at all, for a state that passes: BUSY, another script
# runs past busy-reply-threshold (until it ends or is killed); LOADING, the dataset is loading;
# MASTERDOWN, a replica lost its master; TRYAGAIN and CLUSTERDOWN, a cluster in resharding or
# failover. redis-py raises most of them as a plain ResponseError from a script call.
_PASSING_REPLY = re.compile(r"^(BUSY|LOADING|MASTERDOWN|TRYAGAIN|CLUSTERDOWN) ")
# A command a script called refused by the ACL. Redis 7.0 answers it as a plain ERR with this
# text ("... can't run this command or subcommand", "... can't access at least one of the
# keys"); later versions may answer NOPERM, which redis-py raises as NoPermissionError.
_SCRIPT_NOPERM = re.compile(r"^(NOPERM |The user executing the script can't )")
# The script's SHA and line that Redis appends to an error raised inside a script.
_SCRIPT_SUFFIX = re.compile(r"\.?\s*script: (\w+, )?on @user_script:\d+\.?$")


def refusal(error: ResponseError, doing: str) -> StoreError | None:
    """The store's error for a reply that refuses the call itself (not its arguments or data):
    StoreUnavailable for OOM, READONLY, BUSY and the like, StoreAccessDenied for NOPERM; None
    for any other.

    doing names the call for the message ("the settle script"); Redis's own text follows, without
    the script's SHA and line.
    """
    detail = f"{doing} was refused: {reply_text(error)}"
    if isinstance(error, _PASSING):
        return StoreUnavailable(type(error).__name__, detail)
    passing = _PASSING_REPLY.match(str(error))
    if passing:
        return StoreUnavailable(passing.group(1), detail)
    if isinstance(error, NoPermissionError) or _SCRIPT_NOPERM.match(str(error)):
        return StoreAccessDenied(NoPermissionError.__name__, detail)
    return None


def reply_text(error: ResponseError) -> str:
    """An error reply's text without the SHA and line of the script it came from."""
    return _SCRIPT_SUFFIX.sub("", str(error)).rstrip(".")


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
