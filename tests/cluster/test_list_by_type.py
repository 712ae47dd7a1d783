"""list_by_type (tests/store/test_list_by_type.py), on a real 3-master Redis Cluster.

The tests are imported, not copied: tests/cluster/conftest.py overrides the `store` fixture.
"""

from __future__ import annotations

import pytest

from store import Store
from tests.store.test_list_by_type import *  # noqa: F403  (the tests, collected here too)

pytestmark = pytest.mark.cluster


@pytest.fixture  # type: ignore[no-redef]  # overriding the imported fixture is the point
def listing_store(store: Store) -> Store:
    """The cluster's Redis stores (tests/cluster/conftest.py's `store`), in turn."""
    return store
