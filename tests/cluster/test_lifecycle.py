"""The lifecycle contract (tests/store/test_lifecycle.py), on a real 3-master Redis Cluster.

The tests are imported, not copied: tests/cluster/conftest.py overrides the `store` fixture.
"""

from __future__ import annotations

import pytest

from tests.store.test_lifecycle import *  # noqa: F403  (the lifecycle tests, collected here too)

pytestmark = pytest.mark.cluster
