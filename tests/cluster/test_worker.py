"""The worker on a real 3-master Redis Cluster: in-process, and as `retryd run` processes.

The worker knows nothing of clusters: it gets a RedisStore from a redis+cluster:// URL, and its
claims, outcomes, lease extensions and wake-ups must work there unchanged.
"""

from __future__ import annotations

import collections
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from store import Record, RedisStore, State, SyncRedisStore
from tests.servers import RedisServer, redis_server, wait_for
from tests.worker.test_e2e import Retryd, assert_clean_exit, runs
from worker import Config, Registry, Worker, handler

pytestmark = pytest.mark.cluster


async def test_a_worker_confirms_retries_and_fails_tasks_on_a_cluster(
    cluster_url: str, namespace: str
) -> None:
    registry = Registry()
    starts: collections.Counter[str] = collections.Counter()

    @handler(type=5, registry=registry)
    async def note(record: Record) -> None:
        starts[record.task_id] += 1
        if record.data == b"fail once" and record.failed_attempts == 0:
            raise RuntimeError("first attempt fails")

    @handler(type=6, registry=registry, max_attempts=2)
    async def always_fails(record: Record) -> None:
        raise RuntimeError("never works")

    config = Config.from_mapping(
        {
            "worker": {"concurrency": 16, "batch": 50, "lease": 5.0},
            "retry": {"initial_delay": 0, "max_delay": 0},
        }
    )
    async with RedisStore.from_url(cluster_url, namespace=namespace) as store:
        await store.put_all(*(Record(f"ok-{i}", 5, b"ok") for i in range(300)))
        await store.put_all(*(Record(f"flaky-{i}", 5, b"fail once") for i in range(20)))
        await store.put_all(*(Record(f"bad-{i}", 6, b"") for i in range(10)))
        await Worker(store, registry, config).run(burst=True)

        assert await store.count_by_state(State.CONFIRMED) == 320
        assert await store.count_by_state(State.FAILED) == 10
        assert await store.count_by_state(State.PENDING) == 0
        assert all(starts[f"ok-{i}"] == 1 for i in range(300))
        assert all(starts[f"flaky-{i}"] == 2 for i in range(20))
        failed = await store.get_all_ready_by_state(State.FAILED, (await store.stats()).now)
        assert {r.failed_attempts for r in failed} == {2}


@pytest.fixture
def retryd_on_cluster(tmp_path: Path, cluster_url: str, namespace: str) -> Iterator[Retryd]:
    runner = Retryd(tmp_path, cluster_url, namespace)
    yield runner
    runner.stop_all()


@pytest.fixture
def ledger() -> Iterator[RedisServer]:
    """Where the handlers note their starts: a plain server of its own beside the cluster."""
    with redis_server() as server:
        yield server


def test_two_retryd_processes_share_a_cluster_and_wake_on_put(
    retryd_on_cluster: Retryd, cluster_url: str, namespace: str, ledger: RedisServer
) -> None:
    env = {"E2E_REDIS_URL": ledger.url}
    workers = [retryd_on_cluster.start(env=env), retryd_on_cluster.start(env=env)]
    with SyncRedisStore.from_url(cluster_url, namespace=namespace) as tasks:
        channel = tasks.keys.wake_channel
        wait_for(lambda: _subscribers(tasks.client, channel) == 2, "both workers to subscribe", 20)
        ids = [f"task-{i}" for i in range(400)]
        for start in range(0, len(ids), 100):
            tasks.put_all(*(Record(t, 1, b"ok") for t in ids[start : start + 100]))
        wait_for(lambda: tasks.count_by_state(State.CONFIRMED) == 400, "400 confirmed", 30)

        with ledger.client() as client:
            noted = runs(client, retryd_on_cluster.runs_key)
        assert sorted(task_id for task_id, _ in noted) == sorted(ids)  # each ran exactly once
        assert len({pid for _, pid in noted}) == 2  # both workers took a share
        for process in workers:
            process.send_signal(signal.SIGTERM)
        for process in workers:
            assert_clean_exit(retryd_on_cluster, process, timeout=15)


def _subscribers(client: redis.Redis | redis.RedisCluster, channel: str) -> int:
    """Subscribers of channel on every node: cluster PUBLISH reaches them wherever they are."""
    if isinstance(client, redis.RedisCluster):
        nodes = client.get_nodes()  # type: ignore[no-untyped-call]
        return sum(int(client.pubsub_numsub(channel, target_nodes=node)[0][1]) for node in nodes)
    return int(client.pubsub_numsub(channel)[0][1])
