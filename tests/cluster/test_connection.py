"""store/connection.py: which client a URL makes, and that no password leaks from it."""

from __future__ import annotations

import pytest
import redis
import redis.asyncio

from store.connection import async_client_from_url, parse_url, redact, sync_client_from_url

SECRET = "s3cr3t-canary"


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (f"redis://:{SECRET}@127.0.0.1:6379/0", "redis://:***@127.0.0.1:6379/0"),
        (f"rediss://app:{SECRET}@host:6380", "rediss://app:***@host:6380"),
        (f"redis+cluster://u:{SECRET}@a:1,b:2", "redis+cluster://u:***@a:1,b:2"),
        (f"redis+sentinel://:{SECRET}@s:26379/svc?db=2", "redis+sentinel://:***@s:26379/svc?db=2"),
        (f"unix://:{SECRET}@/run/redis.sock?db=1", "unix://:***@/run/redis.sock?db=1"),
        (f"redis://h:1/0?password={SECRET}&db=1", "redis://h:1/0?password=***&db=1"),
        (f"redis://:p@ss{SECRET}@h:1", "redis://:***@h:1"),  # an '@' inside the password
        ("redis://user@h:1", "redis://user@h:1"),
        ("redis://h:1", "redis://h:1"),
    ],
)
def test_redact_replaces_the_password(url: str, expected: str) -> None:
    assert redact(url) == expected


def test_a_cluster_url_names_its_seed_nodes_and_credentials() -> None:
    target = parse_url(
        f"rediss+cluster://app:{SECRET}@10.0.0.1:7000,[::1]:7001,node?socket_timeout=2"
    )
    assert target is not None
    assert (target.kind, target.tls) == ("cluster", True)
    assert target.nodes == [("10.0.0.1", 7000), ("::1", 7001), ("node", 6379)]
    assert (target.username, target.password) == ("app", SECRET)
    assert target.options == {"socket_timeout": 2.0}
    assert SECRET not in repr(target)


def test_a_sentinel_url_names_its_service_and_db() -> None:
    target = parse_url("redis+sentinel://s1:26379,s2/mymaster?db=3")
    assert target is not None
    assert (target.kind, target.service_name) == ("sentinel", "mymaster")
    assert target.nodes == [("s1", 26379), ("s2", 26379)]
    assert target.options == {"db": 3}


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        (f"http://:{SECRET}@h:1", "unsupported Redis URL scheme 'http'"),
        (f"redis+cluster://:{SECRET}@h:notaport", "bad port 'notaport'"),
        (f"redis+cluster://:{SECRET}@h:1/3", "no database number"),
        (f"redis+cluster://:{SECRET}@h:1?db=1", "unsupported option 'db'"),
        (f"redis+cluster://:{SECRET}@h:1?bogus=1", "unsupported option 'bogus'"),
        (f"redis+sentinel://:{SECRET}@h:1", "ends in /service_name"),
        (f"redis+sentinel://:{SECRET}@h:1/svc?db=x", "bad value for option 'db'"),
        (f"redis+sentinel://:{SECRET}@:1/svc", "a host is missing"),
        (f"redis://:{SECRET}@h:1/?db=notanumber", "bad Redis URL"),
    ],
)
def test_a_bad_url_is_a_value_error_naming_the_problem_without_the_password(
    url: str, problem: str
) -> None:
    for factory in (async_client_from_url, sync_client_from_url):
        with pytest.raises(ValueError, match="^.*" + problem) as caught:
            factory(url)
        assert SECRET not in str(caught.value)
        assert SECRET not in repr(caught.value)
        assert caught.value.__cause__ is None


async def test_each_scheme_makes_its_kind_of_client() -> None:
    """No connection is opened: the clients are only built."""
    plain = async_client_from_url("redis://127.0.0.1:1/2")
    assert isinstance(plain, redis.asyncio.Redis)
    assert plain.connection_pool.connection_kwargs["db"] == 2
    cluster = async_client_from_url("redis+cluster://127.0.0.1:1,127.0.0.1:2")
    assert isinstance(cluster, redis.asyncio.RedisCluster)
    master = async_client_from_url(f"rediss+sentinel://:{SECRET}@127.0.0.1:1/svc?db=4")
    assert isinstance(master, redis.asyncio.Redis)
    assert master.connection_pool.connection_kwargs["db"] == 4
    assert master.connection_pool.connection_kwargs["password"] == SECRET
    for client in (plain, cluster, master):
        assert SECRET not in repr(client)
        await client.aclose()
