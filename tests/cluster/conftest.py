"""Fixtures for Redis Cluster and Sentinel tests: real servers started by tests/servers.py.

The cluster is started once per session (about 3 s) and shared: every test works in its own
namespace, which is one hash slot, so tests never see each other's keys.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator, Iterator

import pytest
import redis
import redis.asyncio

from store import RedisStore, Store, SyncRedisStore
from store.connection import sync_client_from_url
from tests.conftest import TEST_MAX_DATA_BYTES, ThreadedSyncStore
from tests.servers import Cluster, redis_cluster


@pytest.fixture(scope="session")
def cluster() -> Iterator[Cluster]:
    """A 3-master Redis Cluster on free loopback ports, state ok, for the whole session."""
    with redis_cluster(masters=3) as started:
        yield started


@pytest.fixture(scope="session")
def cluster_url(cluster: Cluster) -> str:
    """A redis+cluster:// URL (every node as a seed) for stores and workers under test."""
    return cluster.url


@pytest.fixture(scope="session")
def cluster_client(cluster_url: str) -> Iterator[redis.RedisCluster]:
    """A synchronous cluster client for setup, inspection and cleanup."""
    client = sync_client_from_url(cluster_url)
    assert isinstance(client, redis.RedisCluster)
    yield client
    client.close()


@pytest.fixture
def namespace(cluster_client: redis.RedisCluster) -> Iterator[str]:
    """A namespace of this test's own on the cluster; its keys are deleted afterwards.

    The namespace's keys all live in one slot, so one node holds all of them: the cleanup
    scans that node and asserts nothing mentioning the namespace was written anywhere else.
    """
    name = f"c-{uuid.uuid4().hex[:12]}"
    yield name
    stray: list[bytes] = []
    for node in cluster_client.get_primaries():  # type: ignore[no-untyped-call]
        keys = list(cluster_client.scan_iter(match=f"*{name}*", count=1000, target_nodes=node))
        tagged = [k for k in keys if k.startswith(b"{" + name.encode() + b"}:")]
        if tagged:
            cluster_client.delete(*tagged)
        stray += [k for k in keys if k not in tagged]
    assert stray == [], f"keys outside the namespace's hash tag: {stray!r}"


@contextlib.asynccontextmanager
async def cluster_backend(url: str, name: str) -> AsyncIterator[Store]:
    async with RedisStore.from_url(url, namespace=name, max_data_bytes=TEST_MAX_DATA_BYTES) as s:
        assert isinstance(s.client, redis.asyncio.RedisCluster)
        yield s


@contextlib.asynccontextmanager
async def cluster_sync_backend(url: str, name: str) -> AsyncIterator[Store]:
    with SyncRedisStore.from_url(url, namespace=name, max_data_bytes=TEST_MAX_DATA_BYTES) as s:
        assert isinstance(s.client, redis.RedisCluster)
        yield ThreadedSyncStore(s)


CLUSTER_BACKENDS = {"redis-cluster": cluster_backend, "redis-cluster-sync": cluster_sync_backend}


@pytest.fixture(params=list(CLUSTER_BACKENDS))
async def store(
    request: pytest.FixtureRequest, cluster_url: str, namespace: str
) -> AsyncIterator[Store]:
    """The Redis stores on the cluster, in turn (overrides tests/conftest.py's `store` here)."""
    async with CLUSTER_BACKENDS[request.param](cluster_url, namespace) as backend:
        yield backend


@pytest.fixture
def lifecycle_store(store: Store) -> Store:
    """The lifecycle operations' tests run on the cluster's stores too (both have them)."""
    return store


@pytest.fixture
async def cluster_store(cluster_url: str, namespace: str) -> AsyncIterator[RedisStore]:
    """An async RedisStore on the cluster, for the worker-facing operations."""
    async with RedisStore.from_url(cluster_url, namespace=namespace) as s:
        yield s


# The fixtures tests/store/test_redis_store.py's tests use, pointed at the cluster, so the
# worker-facing operations (claim, settle, extend, stats) run there unchanged.
@pytest.fixture
def admin_client(cluster_client: redis.RedisCluster) -> redis.RedisCluster:
    return cluster_client


@pytest.fixture
def redis_url(cluster_url: str) -> str:
    return cluster_url


@pytest.fixture
async def redis_store(cluster_store: RedisStore) -> RedisStore:
    return cluster_store
