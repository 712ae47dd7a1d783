"""`retryd delete`, `cancel`, `retry --all`, and the last failure in `get` and `ls`, run as an
operator runs them: real subprocesses on the test's namespace."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from store import Change, Reason, Record, State, SyncRedisStore
from store.postgres import SyncPostgresStore
from store.record import to_micros
from tests.cli.conftest import Retryd, assert_one_error_line
from tests.pg import migrated_namespace


def failed(sync_store: SyncRedisStore, task_id: str, task_type: int = 1) -> None:
    """A FAILED task whose last attempt raised, as a worker leaves one."""
    record = Record(task_id, task_type, b"payload")
    sync_store.put_all(record)
    reason = Reason("ConnectionError", "the payment API timed out")
    [applied] = sync_store.settle([Change(record, State.FAILED, 3, 0.0, reason)])
    assert applied


def test_get_and_ls_show_the_last_failure(retryd: Retryd, sync_store: SyncRedisStore) -> None:
    failed(sync_store, "broken")
    shown = json.loads(retryd("get", "broken", "--json").out)
    assert shown["state"] == "failed"
    assert shown["last_error"]["kind"] == "ConnectionError"
    assert shown["last_error"]["message"] == "the payment API timed out"
    assert shown["last_error"]["failed_attempts"] == 3
    assert shown["last_error"]["at"].endswith("Z")
    text = retryd("get", "broken").out
    assert "last_error:      ConnectionError: the payment API timed out" in text
    listed = json.loads(retryd("ls", "--state", "failed", "--json").out)["tasks"]
    assert listed[0]["last_error"]["message"] == "the payment API timed out"
    table = retryd("ls", "--state", "failed").out.splitlines()
    assert table[0].split()[-1] == "LAST_ERROR"
    assert table[1].endswith("ConnectionError: the payment API timed out")
    sync_store.put_all(Record("fine", 1, b""))
    assert json.loads(retryd("get", "fine", "--json").out)["last_error"] is None


def test_delete_removes_tasks_and_refuses_an_unknown_one_whole(
    retryd: Retryd, sync_store: SyncRedisStore
) -> None:
    sync_store.put_all(Record("a", 1, b""), Record("b", 1, b""), Record("c", 1, b""))
    missing = retryd("delete", "a", "ghost")
    assert (missing.code, missing.out) == (1, "")
    assert_one_error_line(missing, "task 'ghost' not found", "nothing changed")
    assert sync_store.count_by_state(State.PENDING) == 3
    done = retryd("delete", "a", "b")
    assert (done.code, done.out) == (0, "deleted 2 tasks\n")
    assert json.loads(retryd("delete", "c", "--json").out) == {"deleted": 1}
    assert sync_store.count_by_state(State.PENDING) == 0
    assert retryd("get", "a").code == 1
    assert retryd("put", "--type", "1", "--task-id", "a").code == 0  # its id is free again


def test_cancel_fails_pending_tasks_and_refuses_a_finished_one(
    retryd: Retryd, sync_store: SyncRedisStore
) -> None:
    sync_store.put_all(Record("p", 1, b""), Record("done", 1, b"", state=State.CONFIRMED))
    refused = retryd("cancel", "p", "done")
    assert (refused.code, refused.out) == (2, "")
    assert_one_error_line(refused, "task 'done' is confirmed, not pending", "nothing changed")
    assert sync_store.get_by_task_id("p").state is State.PENDING
    assert retryd("cancel", "ghost").code == 1
    done = retryd("cancel", "p")
    assert (done.code, done.out) == (0, "cancelled 1 task\n")
    shown = json.loads(retryd("get", "p", "--json").out)
    assert shown["state"] == "failed"
    assert (shown["last_error"]["kind"], shown["last_error"]["message"]) == (
        "Cancelled",
        "cancelled",
    )


def test_retry_all_retries_every_failed_task_or_one_types_and_prints_the_count(
    retryd: Retryd, sync_store: SyncRedisStore
) -> None:
    for i in range(3):
        failed(sync_store, f"one-{i}", task_type=1)
    failed(sync_store, "two", task_type=2)
    of_type = retryd("retry", "--all", "--type", "2")
    assert (of_type.code, of_type.out) == (0, "retried 1 failed task\n")
    assert sync_store.get_by_task_id("two").state is State.PENDING
    every = retryd("retry", "--all", "--json")
    assert json.loads(every.out) == {"retried": 3}
    assert sync_store.count_by_state(State.FAILED) == 0
    assert retryd("retry", "--all").out == "retried 0 failed tasks\n"


def test_retry_takes_several_ids_all_or_none_and_refuses_mixed_arguments(
    retryd: Retryd, sync_store: SyncRedisStore
) -> None:
    failed(sync_store, "f1")
    failed(sync_store, "f2")
    sync_store.put_all(Record("p", 1, b""))
    refused = retryd("retry", "f1", "p")
    assert refused.code == 2
    assert_one_error_line(refused, "task 'p' is pending, not failed")
    assert sync_store.count_by_state(State.FAILED) == 2
    both = retryd("retry", "f1", "f2", "--json")
    assert both.code == 0, both.err
    assert [json.loads(line)["state"] for line in both.out.splitlines()] == ["pending"] * 2
    for argv in (("retry",), ("retry", "f1", "--all"), ("retry", "f1", "--type", "1")):
        wrong = retryd(*argv)
        assert wrong.code == 2
        assert_one_error_line(wrong)


@pytest.fixture(params=["redis", "postgres"])
def type_store(
    request: pytest.FixtureRequest, sync_store: SyncRedisStore, namespace: str
) -> Iterator[tuple[Any, dict[str, str]]]:
    """The test's namespace on Redis, or migrated on the session's PostgreSQL database; with
    the environment that points `retryd` at it."""
    if request.param == "redis":
        yield sync_store, {}
        return
    url = request.getfixturevalue("postgres_url")
    with (
        migrated_namespace(url, namespace),
        SyncPostgresStore.from_url(url, namespace=namespace) as store,
    ):
        yield store, {"RETRYD_REDIS_URL": url}


def test_ls_of_one_type_pages_by_next_attempt(
    retryd: Retryd, type_store: tuple[Any, dict[str, str]]
) -> None:
    sync_store, env = type_store
    at = [datetime(2031, 1, 1, 0, 0, n, tzinfo=UTC) for n in range(5)]
    sync_store.put_all(*(Record(f"t{n}", 3, b"", next_attempt_at=at[4 - n]) for n in range(5)))
    sync_store.put_all(Record("other", 4, b"", next_attempt_at=at[0]))
    seen, cursor = [], None
    while True:
        argv = ["ls", "--type", "3", "--limit", "2", "--json"]
        page = json.loads(retryd(*argv, *(["--cursor", cursor] if cursor else []), env=env).out)
        seen += [task["task_id"] for task in page["tasks"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == ["t4", "t3", "t2", "t1", "t0"]
    text = retryd("ls", "--type", "3", "--limit", "2", env=env).out
    assert text.splitlines()[-1] == f"more: --type 3 --cursor {to_micros('at', at[1])}:t3"
    for argv, message in [
        (["--type", "0"], "--type must be in 1..4294967295, got 0"),
        (["--type", "3", "--cursor", "t3"], "--cursor with --type is MICROS:TASK_ID"),
        (["--type", "3", "--ready"], "--ready cannot be combined with --type"),
        (["--cursor", "abc"], "--cursor must be a task's numeric id"),
    ]:
        refused = retryd("ls", *argv, env=env)
        assert (refused.code, refused.out) == (2, "")
        assert_one_error_line(refused, message)
