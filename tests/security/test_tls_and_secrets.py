"""TLS with verification on, and no password in any error: both against real servers.

The certificates are made by the test (openssl CLI): a CA that signed the server's certificate,
and an unrelated CA that must be refused.
"""

from __future__ import annotations

import traceback
from collections.abc import Iterator
from pathlib import Path

import pytest

from store import Record, RedisStore, State, StoreUnavailable, SyncRedisStore
from tests.servers import RedisServer, TlsFiles, free_port, make_tls_files, redis_server

SECRET = "canary-9f2c1e7a-not-a-real-password"


@pytest.fixture(scope="module")
def tls_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("tls")


@pytest.fixture(scope="module")
def tls(tls_dir: Path) -> TlsFiles:
    return make_tls_files(tls_dir, "right")


@pytest.fixture(scope="module")
def tls_server(tls: TlsFiles) -> Iterator[RedisServer]:
    with redis_server(tls=tls) as server:
        yield server


async def test_rediss_with_the_servers_ca_works(tls_server: RedisServer, tls: TlsFiles) -> None:
    url = f"rediss://127.0.0.1:{tls_server.port}"
    async with RedisStore.from_url(url, namespace="tls", ssl_ca_certs=str(tls.ca_cert)) as store:
        await store.put_all(Record(task_id="a", type=1, data=b"over tls"))
        assert (await store.get_by_task_id("a")).data == b"over tls"


def test_the_wrong_ca_fails_closed_with_a_clear_error(
    tls_server: RedisServer, tls_dir: Path
) -> None:
    wrong = make_tls_files(tls_dir, "wrong")
    url = f"rediss://127.0.0.1:{tls_server.port}"
    refused = pytest.raises(StoreUnavailable, match="certificate verify failed")
    with (
        SyncRedisStore.from_url(url, namespace="tls", ssl_ca_certs=str(wrong.ca_cert)) as s,
        refused,
    ):
        s.count_by_state(State.PENDING)


def test_plain_redis_to_a_tls_port_fails(tls_server: RedisServer) -> None:
    with (
        SyncRedisStore.from_url(
            f"redis://127.0.0.1:{tls_server.port}", namespace="tls", socket_timeout=2
        ) as store,
        pytest.raises(StoreUnavailable),
    ):
        store.get_by_task_id("a")


def every_text(error: BaseException) -> str:
    """str, repr and the formatted traceback of an exception and everything chained to it."""
    texts, seen = [], set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        texts += [str(current), repr(current), *map(repr, current.args)]
        current = current.__cause__ or current.__context__
    texts += traceback.format_exception(error)
    return "\n".join(texts)


@pytest.fixture(scope="module")
def guarded() -> Iterator[RedisServer]:
    """A server whose password is not the canary."""
    with redis_server(password="the-real-password") as server:
        yield server


# How each URL fails: a refused password, an unknown user, nothing listening (one server,
# cluster seeds, Sentinel) and URLs redis-py or store/connection.py refuse to parse.
FAILING_URLS = {
    "refused-password": "redis://:{secret}@127.0.0.1:{guarded}/0",
    "unknown-user": "redis://app:{secret}@127.0.0.1:{guarded}/0",
    "closed-port": "redis://:{secret}@127.0.0.1:{closed}/0",
    "cluster-closed": "redis+cluster://:{secret}@127.0.0.1:{closed}",
    "sentinel-closed": "redis+sentinel://:{secret}@127.0.0.1:{closed}/svc",
    "bad-db": "redis://:{secret}@127.0.0.1:{closed}/?db=x",
    "cluster-db": "redis+cluster://:{secret}@127.0.0.1:{closed}/7",
}


@pytest.mark.parametrize("sync", [False, True], ids=["async", "sync"])
@pytest.mark.parametrize("case", list(FAILING_URLS))
async def test_no_error_shows_the_password_from_the_url(
    guarded: RedisServer, case: str, sync: bool
) -> None:
    """The canary password never appears in the exception text, its causes or its traceback."""
    url = FAILING_URLS[case].format(secret=SECRET, guarded=guarded.port, closed=free_port())
    # Any kind of exception: RedisClusterException, for one, is not a RedisError.
    with pytest.raises(Exception) as caught:  # noqa: PT011
        await (_sync_put(url) if sync else _async_put(url))
    assert SECRET not in every_text(caught.value)


async def _async_put(url: str) -> None:
    async with RedisStore.from_url(url, socket_connect_timeout=1, socket_timeout=1) as store:
        await store.put_all(Record(task_id="a", type=1, data=b"x"))


async def _sync_put(url: str) -> None:
    with SyncRedisStore.from_url(url, socket_connect_timeout=1, socket_timeout=1) as store:
        store.put_all(Record(task_id="a", type=1, data=b"x"))
