"""The whole Store contract suite (tests/store/test_contract.py), on a real Redis Cluster.

The tests are imported, not copied: tests/cluster/conftest.py overrides the `store` fixture so
that each runs against RedisStore and SyncRedisStore on a 3-master cluster.
"""

from __future__ import annotations

import pytest

from tests.store.test_contract import *  # noqa: F403  (the contract's tests, collected here too)

pytestmark = pytest.mark.cluster
