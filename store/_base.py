"""What RedisStore and SyncRedisStore share: client checks and options, keys, scripts.

The two differ only in how they wait (await or block); everything they hold, and how a store
is built from a URL, is written once here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar, Generic, Self, TypeVar

from redis.backoff import NoBackoff

from store._commands import Commands
from store._keys import Keys
from store._operations import Operations
from store._scripts import SCRIPT_NAMES, source
from store.connection import parse_url
from store.protocol import DEFAULT_MAX_DATA_BYTES

__all__ = ["DEFAULT_CLIENT_OPTIONS", "RedisStoreBase"]

ClientT = TypeVar("ClientT")

# Bounded waits on every call: a black-holed connection fails instead of hanging a worker.
DEFAULT_CLIENT_OPTIONS: dict[str, Any] = {
    "socket_timeout": 10.0,
    "socket_connect_timeout": 5.0,
    "health_check_interval": 30,
}


def no_blind_retry(url: str, retry_class: Any) -> dict[str, Any]:
    """The client option that stops redis-py from sending a command again after a connection
    error or a timeout: a re-sent script may run twice (a put_all would then answer EXISTS for
    the batch it stored). The store re-sends only what it can check (put_all), and the worker
    retries its own calls. redis-py's from_url already builds connections without retries, but a
    client built by hand retries ten times: this makes the choice explicit, not an accident.

    A cluster client keeps its own retry: it re-reads the slot map and re-sends on the new
    owner, which a failover needs; the option would turn that off too (see docs/reliability.md).
    """
    target = parse_url(url)
    if target is not None and target.kind == "cluster":
        return {}
    return {"retry": retry_class(NoBackoff(), 0)}


def check_replicas_to_ack(client: Any, replicas_to_ack: int) -> int:
    """replicas_to_ack, when this kind of client can WAIT on the connection that wrote."""
    if isinstance(replicas_to_ack, bool) or not isinstance(replicas_to_ack, int):
        raise TypeError(f"replicas_to_ack must be an int, got {replicas_to_ack!r}")
    if replicas_to_ack < 0:
        raise ValueError(f"replicas_to_ack must be >= 0, got {replicas_to_ack}")
    if replicas_to_ack and "Cluster" in type(client).__name__:
        # A cluster pipeline sends a keyless WAIT to any node, not the one that wrote.
        raise ValueError("replicas_to_ack is not supported on Redis Cluster")
    return replicas_to_ack


def check_binary_client(client: Any) -> None:
    """Refuse a client that decodes replies: records are binary and would be mangled."""
    options = client.get_connection_kwargs() if hasattr(client, "get_connection_kwargs") else {}
    if options.get("decode_responses"):
        raise ValueError("RedisStore needs a client with decode_responses=False (data is binary)")


class RedisStoreBase(Generic[ClientT]):
    """A store's client, key schema, commands and registered scripts."""

    # How a subclass makes its client from a URL, and the Retry class that client takes.
    _connect: ClassVar[Callable[..., Any]]
    _retry_class: ClassVar[Any]

    def __init__(
        self,
        client: ClientT,
        *,
        namespace: str = "retryd",
        max_data_bytes: int = DEFAULT_MAX_DATA_BYTES,
        replicas_to_ack: int = 0,
        owns_client: bool = False,
    ) -> None:
        check_binary_client(client)
        self._replicas_to_ack = check_replicas_to_ack(client, replicas_to_ack)
        self.client = client
        self.keys = Keys.for_namespace(namespace)
        self._commands = Commands(self.keys, max_data_bytes)
        self._ops = Operations(self._commands, self.keys, self._replicas_to_ack)
        register = client.register_script  # type: ignore[attr-defined]
        self._scripts = {name: register(source(name)) for name in SCRIPT_NAMES}
        self._owns_client = owns_client

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        namespace: str = "retryd",
        max_data_bytes: int = DEFAULT_MAX_DATA_BYTES,
        replicas_to_ack: int = 0,
        **client_options: Any,
    ) -> Self:
        """A store on its own client for url (see store/connection.py); closing the store
        closes that client."""
        options = {**DEFAULT_CLIENT_OPTIONS, **no_blind_retry(url, cls._retry_class)}
        client = cls._connect(url, **(options | client_options))
        return cls(
            client,
            namespace=namespace,
            max_data_bytes=max_data_bytes,
            replicas_to_ack=replicas_to_ack,
            owns_client=True,
        )
