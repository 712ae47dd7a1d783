"""RedisStore's own tests (tests/store/test_redis_store.py, test_worker_contract.py) on a real
Redis Cluster.

Imported, not copied; tests/cluster/conftest.py points their fixtures (redis_store,
admin_client, redis_url, namespace) at the cluster. Left out: the tests of client
construction and SCRIPT FLUSH, which are about one server's client, not about the data.
"""

from __future__ import annotations

import pytest

from store import RedisStore
from tests.store.test_redis_store import (  # (collected here against the cluster)
    other_namespace,
    sync_store,
    test_a_claim_without_rates_leaves_the_buckets_alone,
    test_claim_script_refuses_bad_limits_and_rates_before_any_write,
    test_claim_sets_aside_index_entries_without_a_sound_record,
    test_every_key_of_a_namespace_carries_its_hash_tag,
    test_namespaces_on_one_redis_do_not_see_each_other,
    test_sync_settle_sees_the_same_records,
)
from tests.store.test_worker_contract import (  # (collected here against the cluster)
    flow_store,
    test_a_bucket_emptied_at_a_slower_rate_refills_at_the_rate_of_the_claim,
    test_a_lease_that_ran_out_counts_as_a_failed_attempt,
    test_a_rate_leases_the_burst_then_holds_the_type_until_its_next_token,
    test_a_retry_settled_due_now_wakes_and_a_later_one_does_not,
    test_a_second_claim_does_not_get_leased_tasks,
    test_a_task_put_due_now_wakes_subscribers,
    test_a_type_held_by_its_rate_does_not_hold_back_another_type,
    test_an_abandoned_task_fails_when_attempts_reach_max,
    test_claim_leases_only_due_pending_tasks_of_the_asked_types,
    test_claim_pushes_next_attempt_at_by_the_lease_and_bumps_version,
    test_claim_refuses_bad_arguments,
    test_claim_refuses_bad_limits_and_rates_and_writes_nothing,
    test_claim_reports_next_due,
    test_claim_takes_the_oldest_due_first_up_to_limit,
    test_concurrent_claimers_share_one_bucket_per_type,
    test_concurrent_claims_never_lease_a_task_twice,
    test_extend_keeps_the_lease_without_changing_the_version,
    test_extend_reports_lost_leases,
    test_server_facts_name_the_server,
    test_settle_bumps_the_version_and_clears_the_lease,
    test_settle_delay_is_relative_to_server_time,
    test_settle_fences_each_change_by_its_version,
    test_settle_with_no_changes_is_refused,
    test_stats_counts_and_ready_excludes_leased_and_not_due,
    test_stats_of_an_empty_namespace,
    test_type_limits_cap_a_type_and_leave_the_limit_to_the_others,
    test_which_exist_names_the_stored_task_ids,
)

pytestmark = pytest.mark.cluster

__all__ = [
    "flow_store",
    "other_namespace",
    "sync_store",
    "test_a_bucket_emptied_at_a_slower_rate_refills_at_the_rate_of_the_claim",
    "test_a_claim_without_rates_leaves_the_buckets_alone",
    "test_a_lease_that_ran_out_counts_as_a_failed_attempt",
    "test_a_rate_leases_the_burst_then_holds_the_type_until_its_next_token",
    "test_a_retry_settled_due_now_wakes_and_a_later_one_does_not",
    "test_a_second_claim_does_not_get_leased_tasks",
    "test_a_task_put_due_now_wakes_subscribers",
    "test_a_type_held_by_its_rate_does_not_hold_back_another_type",
    "test_an_abandoned_task_fails_when_attempts_reach_max",
    "test_claim_leases_only_due_pending_tasks_of_the_asked_types",
    "test_claim_pushes_next_attempt_at_by_the_lease_and_bumps_version",
    "test_claim_refuses_bad_arguments",
    "test_claim_refuses_bad_limits_and_rates_and_writes_nothing",
    "test_claim_reports_next_due",
    "test_claim_script_refuses_bad_limits_and_rates_before_any_write",
    "test_claim_sets_aside_index_entries_without_a_sound_record",
    "test_claim_takes_the_oldest_due_first_up_to_limit",
    "test_concurrent_claimers_share_one_bucket_per_type",
    "test_concurrent_claims_never_lease_a_task_twice",
    "test_every_key_of_a_namespace_carries_its_hash_tag",
    "test_extend_keeps_the_lease_without_changing_the_version",
    "test_extend_reports_lost_leases",
    "test_namespaces_on_one_redis_do_not_see_each_other",
    "test_server_facts_name_the_server",
    "test_settle_bumps_the_version_and_clears_the_lease",
    "test_settle_delay_is_relative_to_server_time",
    "test_settle_fences_each_change_by_its_version",
    "test_settle_with_no_changes_is_refused",
    "test_stats_counts_and_ready_excludes_leased_and_not_due",
    "test_stats_of_an_empty_namespace",
    "test_sync_settle_sees_the_same_records",
    "test_type_limits_cap_a_type_and_leave_the_limit_to_the_others",
    "test_which_exist_names_the_stored_task_ids",
    "worker_store",
]


@pytest.fixture
async def worker_store(redis_store: RedisStore) -> RedisStore:
    """The WorkerStore contract's tests on the cluster only (MemoryStore runs them elsewhere)."""
    return redis_store
