"""Failure reasons and the listing index (tests/store/test_failures_and_listing.py), on a real
3-master Redis Cluster: the cluster conftest points redis_store and admin_client there."""

from __future__ import annotations

import pytest

from tests.store.test_failures_and_listing import *  # noqa: F403  (collected here too)

pytestmark = pytest.mark.cluster
