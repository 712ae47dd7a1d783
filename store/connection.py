"""Redis clients from one URL: a single server, a Redis Cluster, or a Sentinel-managed master.

The URL alone decides the kind of client, so the store, the worker and the CLI never know which
one they hold:

  redis://[[user]:password@]host[:port][/db]          one server (rediss:// for TLS)
  unix://[[user]:password@]/path/to/socket[?db=N]      one server on a unix socket
  redis+cluster://[[user]:password@]host:port[,host:port...]
                                                       Redis Cluster, seed nodes (rediss+cluster://)
  redis+sentinel://[[user]:password@]host:port[,host:port...]/service_name[?db=N]
                                                       the master Sentinel names (rediss+sentinel://)

Cluster and Sentinel URLs accept the query options redis-py reads from a redis:// URL
(socket_timeout=..., ssl_check_hostname=...). The password authenticates to the data nodes;
a Sentinel's own password, if any, goes in the sentinel_kwargs option.

This module must never put a password in an error message or a repr: use redact() for anything
that shows a URL.
"""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import SplitResult, unquote, urlsplit

import redis
import redis.asyncio
import redis.asyncio.cluster
import redis.asyncio.sentinel
import redis.cluster
import redis.exceptions
import redis.sentinel
from redis.asyncio.connection import URL_QUERY_ARGUMENT_PARSERS

__all__ = [
    "REDIS_SCHEMES",
    "AsyncClient",
    "SyncClient",
    "Target",
    "answers",
    "async_client_from_url",
    "parse_url",
    "redact",
    "shut_down",
    "sync_client_from_url",
]

AsyncClient = redis.asyncio.Redis | redis.asyncio.RedisCluster
SyncClient = redis.Redis | redis.RedisCluster

_STANDALONE = frozenset({"redis", "rediss", "unix"})
_MULTI = {
    "redis+cluster": ("cluster", False),
    "rediss+cluster": ("cluster", True),
    "redis+sentinel": ("sentinel", False),
    "rediss+sentinel": ("sentinel", True),
}
# Every URL scheme this module opens, in the order error messages list them.
REDIS_SCHEMES = ("redis", "rediss", "unix", *_MULTI)
_QUERY_PASSWORD = re.compile(r"([?&]password=)[^&#]*", re.IGNORECASE)
_DEFAULT_PORT = {"cluster": 6379, "sentinel": 26379}


def answers(url: str, *, timeout_seconds: float) -> bool:
    """Whether a Redis server answers PING at url within timeout_seconds (never raises)."""
    options = {"socket_timeout": timeout_seconds, "socket_connect_timeout": timeout_seconds}
    try:
        with redis.Redis.from_url(url, **options) as client:
            client.ping()
    except (redis.RedisError, OSError, ValueError):
        return False
    return True


def shut_down(url: str) -> None:
    """SHUTDOWN the server at url (it flushes its append-only file first); for the embedded
    server that `retryd run` started and a killed run left behind."""
    client = redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=1)
    # The server closes the connection as it goes down: that error is the answer asked for.
    with client, contextlib.suppress(redis.ConnectionError):
        client.shutdown()


def redact(url: str) -> str:
    """The url with its password, if any, replaced by '***' (safe for logs and errors)."""
    # redis-py also reads a password from the query string (?password=...).
    url = _QUERY_PASSWORD.sub(r"\1***", url)
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    authority, slash, tail = rest.partition("/")
    userinfo, at, hosts = authority.rpartition("@")
    if not at:
        return url
    user, colon, _ = userinfo.partition(":")
    safe = f"{user}:***" if colon else user
    return f"{scheme}://{safe}@{hosts}{slash}{tail}"


@dataclass(frozen=True)
class Target:
    """What a cluster or Sentinel URL names (a single-server URL is left to redis-py)."""

    kind: str  # "cluster" or "sentinel"
    tls: bool
    nodes: list[tuple[str, int]]
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    service_name: str | None = None
    options: dict[str, Any] = field(default_factory=dict)


def parse_url(url: str) -> Target | None:
    """The Target of a cluster or Sentinel URL; None for redis://, rediss://, unix://."""
    if not isinstance(url, str):
        raise TypeError(f"a Redis URL must be a string, got {type(url).__name__}")
    scheme = url.partition("://")[0].lower() if "://" in url else ""
    if scheme in _STANDALONE:
        return None
    if scheme not in _MULTI:
        raise ValueError(
            f"unsupported Redis URL scheme {scheme!r} in {redact(url)!r}: use redis://, "
            "rediss://, unix://, redis+cluster://, rediss+cluster://, redis+sentinel:// or "
            "rediss+sentinel://"
        )
    kind, tls = _MULTI[scheme]
    parts = urlsplit(url)
    authority = parts.netloc
    userinfo, _, hosts = authority.rpartition("@")
    username, password = _credentials(userinfo)
    nodes = [_node(item, kind, url) for item in hosts.split(",")]
    return Target(
        kind=kind,
        tls=tls,
        nodes=nodes,
        username=username,
        password=password,
        service_name=_service_name(kind, parts, url),
        options=_query_options(kind, parts, url),
    )


def async_client_from_url(url: str, **options: Any) -> AsyncClient:
    """An asyncio client for url; options are redis-py client keyword arguments."""
    target = parse_url(url)
    if target is None:
        client: redis.asyncio.Redis = _standalone(redis.asyncio.Redis, url, options)
        return client
    kwargs = _client_kwargs(target, options)
    if target.kind == "cluster":
        nodes = [redis.asyncio.cluster.ClusterNode(h, p) for h, p in target.nodes]
        return redis.asyncio.RedisCluster(startup_nodes=nodes, **kwargs)
    sentinel_kwargs = kwargs.pop("sentinel_kwargs", None) or _sentinel_kwargs(target, kwargs)
    sentinel = redis.asyncio.sentinel.Sentinel(  # type: ignore[no-untyped-call]
        target.nodes, sentinel_kwargs=sentinel_kwargs, **kwargs
    )
    master: redis.asyncio.Redis = sentinel.master_for(
        str(target.service_name),
        redis_class=_AsyncSentinelMaster,
        connection_pool_class=_AsyncMasterFollowingPool,
    )
    return master


def sync_client_from_url(url: str, **options: Any) -> SyncClient:
    """A blocking client for url; options are redis-py client keyword arguments."""
    target = parse_url(url)
    if target is None:
        sync_client: redis.Redis = _standalone(redis.Redis, url, options)
        return sync_client
    kwargs = _client_kwargs(target, options)
    if target.kind == "cluster":
        nodes = [redis.cluster.ClusterNode(h, p) for h, p in target.nodes]  # type: ignore[no-untyped-call]
        return redis.RedisCluster(startup_nodes=nodes, **kwargs)
    sentinel_kwargs = kwargs.pop("sentinel_kwargs", None) or _sentinel_kwargs(target, kwargs)
    sentinel = redis.sentinel.Sentinel(  # type: ignore[no-untyped-call]
        target.nodes, sentinel_kwargs=sentinel_kwargs, **kwargs
    )
    master: redis.Redis = sentinel.master_for(  # type: ignore[no-untyped-call]
        str(target.service_name), connection_pool_class=_SyncMasterFollowingPool
    )
    return master


# How often a Sentinel pool asks which server is the master. redis-py asks only when it opens a
# connection, so after a failover pooled connections kept writing to the old master until it was
# demoted (~10 s of acknowledged writes that replication then discarded).
MASTER_CHECK_SECONDS = 0.5


class _AsyncMasterFollowingPool(redis.asyncio.sentinel.SentinelConnectionPool):
    """Re-asks the Sentinels for the master at most every MASTER_CHECK_SECONDS, and never hands
    out a connection still open to a server that is no longer the master."""

    _checked_at = 0.0

    async def get_connection(self, *args: Any, **kwargs: Any) -> Any:
        now = time.monotonic()
        if now - self._checked_at >= MASTER_CHECK_SECONDS:
            self._checked_at = now
            with contextlib.suppress(redis.exceptions.ConnectionError):
                # Closes the idle connections when the master moved.
                await self.get_master_address()  # type: ignore[no-untyped-call]
        connection = await super().get_connection(*args, **kwargs)  # type: ignore[no-untyped-call]
        if _left_behind(connection, self.master_address):
            # Reconnect here, through the Sentinel: a connection merely closed reconnects on
            # first use to the host it last knew (redis-py's send_packed_command skips the
            # Sentinel lookup), so after a failover it went straight back to the old master.
            try:
                await connection.disconnect()
                await connection.connect()
            except BaseException:
                await self.release(connection)
                raise
        return connection


class _SyncMasterFollowingPool(redis.sentinel.SentinelConnectionPool):
    """The blocking twin of _AsyncMasterFollowingPool."""

    _checked_at = 0.0

    def get_connection(self, *args: Any, **kwargs: Any) -> Any:
        now = time.monotonic()
        if now - self._checked_at >= MASTER_CHECK_SECONDS:
            self._checked_at = now
            with contextlib.suppress(redis.exceptions.ConnectionError):
                self.get_master_address()  # type: ignore[no-untyped-call]
        connection = super().get_connection(*args, **kwargs)
        if _left_behind(connection, self.master_address):
            try:  # through the Sentinel, as in _AsyncMasterFollowingPool.get_connection
                connection.disconnect()  # type: ignore[no-untyped-call]
                connection.connect()  # type: ignore[no-untyped-call]
            except BaseException:
                self.release(connection)
                raise
        return connection


def _left_behind(connection: Any, master_address: Any) -> bool:
    """Whether a pooled connection is open to a server that is no longer the master."""
    return bool(
        connection.is_connected
        and master_address is not None
        and (connection.host, connection.port) != tuple(master_address)
    )


class _AsyncSentinelMaster(redis.asyncio.Redis):
    """A Sentinel-managed master client that also closes its connections to the Sentinels."""

    async def aclose(self, close_connection_pool: bool | None = None) -> None:
        await super().aclose(close_connection_pool)
        manager = getattr(self.connection_pool, "sentinel_manager", None)
        for sentinel in getattr(manager, "sentinels", []):
            await sentinel.aclose()


def _standalone(client_class: Any, url: str, options: Mapping[str, Any]) -> Any:
    try:
        return client_class.from_url(url, **options)
    except ValueError as error:
        # redis-py's messages name the option, not the URL; redact anyway in case one ever does.
        raise ValueError(f"bad Redis URL {redact(url)!r}: {_scrub(str(error), url)}") from None


def _client_kwargs(target: Target, options: Mapping[str, Any]) -> dict[str, Any]:
    kwargs: dict[str, Any] = {**target.options, **options}
    if target.username is not None:
        kwargs.setdefault("username", target.username)
    if target.password is not None:
        kwargs.setdefault("password", target.password)
    if target.tls:
        kwargs.setdefault("ssl", True)
    return kwargs


def _sentinel_kwargs(target: Target, kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """Sentinels get the socket and TLS options of the data nodes, never their password."""
    shared = {k: v for k, v in kwargs.items() if k.startswith(("socket_", "ssl"))}
    if target.tls:
        shared["ssl"] = True
    return shared


def _credentials(userinfo: str) -> tuple[str | None, str | None]:
    if not userinfo:
        return None, None
    user, colon, password = userinfo.partition(":")
    return (unquote(user) or None), (unquote(password) if colon else None)


def _node(item: str, kind: str, url: str) -> tuple[str, int]:
    host, port_text = item, ""
    if item.startswith("["):  # [IPv6]:port
        host, _, rest = item[1:].partition("]")
        port_text = rest.removeprefix(":")
    elif ":" in item:
        host, _, port_text = item.rpartition(":")
    if not host:
        raise ValueError(f"a host is missing in {redact(url)!r}")
    if not port_text:
        return host, _DEFAULT_PORT[kind]
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ValueError(f"bad port {port_text!r} for host {host!r} in {redact(url)!r}")
    return host, int(port_text)


def _service_name(kind: str, parts: SplitResult, url: str) -> str | None:
    path = unquote(parts.path).strip("/")
    if kind == "cluster":
        if path not in ("", "0"):
            raise ValueError(f"a cluster URL has no database number: {redact(url)!r}")
        return None
    if not path or "/" in path:
        raise ValueError(f"a sentinel URL ends in /service_name: {redact(url)!r}")
    return path


def _query_options(kind: str, parts: SplitResult, url: str) -> dict[str, Any]:
    options: dict[str, Any] = {}
    for pair in filter(None, parts.query.split("&")):
        name, _, raw = pair.partition("=")
        name, value = unquote(name), unquote(raw)
        parser = URL_QUERY_ARGUMENT_PARSERS.get(name)
        if parser is None or (name == "db" and kind == "cluster"):
            raise ValueError(f"unsupported option {name!r} in {redact(url)!r}")
        try:
            options[name] = parser(value)
        except (TypeError, ValueError):
            raise ValueError(f"bad value for option {name!r} in {redact(url)!r}") from None
    return options


def _scrub(text: str, url: str) -> str:
    """text with the URL's password, if it appears, replaced by '***'."""
    userinfo = url.partition("://")[2].partition("/")[0].rpartition("@")[0]
    password = userinfo.partition(":")[2]
    for secret in {password, unquote(password)} - {""}:
        text = text.replace(secret, "***")
    return text
