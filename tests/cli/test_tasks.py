"""`retryd get`, `ls`, `count` and `retry` on tasks set up through the store API."""

from __future__ import annotations

import json
import socket
from datetime import UTC, datetime, timedelta

import pytest

from store import Change, Record, State, SyncRedisStore
from tests.cli.conftest import Retryd, assert_one_error_line


def put(sync_store: SyncRedisStore, *records: Record) -> list[Record]:
    sync_store.put_all(*records)
    return list(records)


def make_failed(sync_store: SyncRedisStore, task_id: str, attempts: int = 5) -> Record:
    """A FAILED task due an hour from now, as a worker leaves one that ran out of attempts."""
    [record] = put(sync_store, Record(task_id, 1, b"payload"))
    [applied] = sync_store.settle([Change(record, State.FAILED, attempts, 3600.0)])
    assert applied
    return sync_store.get_by_task_id(task_id)


def ids(output: str) -> list[str]:
    return [task["task_id"] for task in json.loads(output)["tasks"]]


def test_ls_pages_by_cursor_without_gaps_or_repeats(
    retryd: Retryd, sync_store: SyncRedisStore
) -> None:
    later = datetime.now(UTC) + timedelta(hours=1)
    put(sync_store, *(Record(f"t{i}", 1 + i % 2, b"d") for i in range(4)))
    put(sync_store, Record("t4", 1, b"later", next_attempt_at=later))

    seen, cursor, cursors = [], None, []
    for expected_next in (True, True, False):
        argv = ["ls", "--state", "pending", "--limit", "2", "--json"]
        page = retryd(*argv, *(["--cursor", str(cursor)] if cursor else []))
        assert page.code == 0, page.err
        seen += ids(page.out)
        cursor = json.loads(page.out)["next_cursor"]
        cursors.append(cursor)
        assert (cursor is not None) == expected_next
    assert seen == ["t0", "t1", "t2", "t3", "t4"]

    ready = retryd("ls", "--state", "PENDING", "--ready", "--json")
    assert ids(ready.out) == ["t0", "t1", "t2", "t3"]  # t4 is not due for an hour
    newest = retryd("ls", "--state", "pending", "--desc", "--limit", "2", "--json")
    assert ids(newest.out) == ["t4", "t3"]

    table = retryd("ls", "--state", "pending", "--limit", "2")
    assert table.code == 0
    lines = table.out.splitlines()
    assert lines[0].split() == [
        "ID", "TASK_ID", "TYPE", "ATTEMPTS", "NEXT_ATTEMPT_AT", "REFERENCE", "DATA", "LAST_ERROR"
    ]  # fmt: skip
    assert [line.split()[1] for line in lines[1:3]] == ["t0", "t1"]
    assert lines[3] == f"more: --cursor {cursors[0]}"


def test_ls_refuses_an_unknown_state_and_a_bad_limit_and_lists_an_empty_state(
    retryd: Retryd,
) -> None:
    unknown = retryd("ls", "--state", "lost")
    assert unknown.code == 2
    assert_one_error_line(unknown, "unknown state 'lost'", "pending, confirmed, failed")
    zero = retryd("ls", "--state", "failed", "--limit", "0")
    assert zero.code == 2
    assert_one_error_line(zero, "--limit must be at least 1")
    empty = retryd("ls", "--state", "failed")
    assert (empty.code, empty.out, empty.err) == (0, "no failed tasks\n", "")


def test_count_reports_every_state_and_the_due_ones(
    retryd: Retryd, sync_store: SyncRedisStore
) -> None:
    later = datetime.now(UTC) + timedelta(hours=1)
    put(sync_store, Record("a", 1, b""), Record("b", 2, b"", next_attempt_at=later))
    [done] = put(sync_store, Record("c", 1, b""))
    sync_store.settle([Change(done, State.CONFIRMED, 0, 0.0)])
    make_failed(sync_store, "d")

    counted = retryd("count", "--json")
    assert counted.code == 0, counted.err
    numbers = json.loads(counted.out)
    assert {k: numbers[k] for k in ("pending", "confirmed", "failed", "ready")} == {
        "pending": 1 + 1,
        "confirmed": 1,
        "failed": 1,
        "ready": 1,
    }
    table = retryd("count")
    rows = dict(line.rsplit(None, 1) for line in table.out.splitlines()[1:5])
    assert rows == {"pending": "2", "  due now": "1", "confirmed": "1", "failed": "1"}


def test_retry_sends_a_failed_task_back_to_pending_due_now(
    retryd: Retryd, sync_store: SyncRedisStore
) -> None:
    failed = make_failed(sync_store, "broken", attempts=7)
    before = datetime.now(UTC)

    retried = retryd("retry", "broken", "--json")
    assert retried.code == 0, retried.err
    shown = json.loads(retried.out)
    assert (shown["state"], shown["failed_attempts"]) == ("pending", 0)

    stored = sync_store.get_by_task_id("broken")
    assert (stored.state, stored.failed_attempts) == (State.PENDING, 0)
    assert stored.version == failed.version + 1
    assert stored.next_attempt_at is not None
    # Due now by the server's clock, where it had been an hour away (allowing clock skew).
    assert stored.next_attempt_at <= before + timedelta(seconds=5)
    assert sync_store.count_by_state(State.FAILED) == 0


def test_retry_refuses_a_task_that_is_not_failed_and_reports_a_missing_one(
    retryd: Retryd, sync_store: SyncRedisStore
) -> None:
    [pending] = put(sync_store, Record("fine", 1, b""))
    not_failed = retryd("retry", "fine")
    assert (not_failed.code, not_failed.out) == (2, "")
    assert_one_error_line(not_failed, "task 'fine' is pending, not failed")
    assert sync_store.get_by_task_id("fine").version == pending.version

    missing = retryd("retry", "ghost")
    assert missing.code == 1
    assert_one_error_line(missing, "task 'ghost' not found")
    missing_get = retryd("get", "ghost", "--json")
    assert (missing_get.code, missing_get.out) == (1, "")
    assert_one_error_line(missing_get, "task 'ghost' not found")


@pytest.fixture
def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def test_an_unreachable_redis_is_exit_1_with_the_password_masked(
    retryd: Retryd, closed_port: int
) -> None:
    url = f"redis://operator:canary-pw-9f3@127.0.0.1:{closed_port}/0"
    for argv in (("count",), ("check",)):
        result = retryd(*argv, env={"RETRYD_REDIS_URL": url})
        assert result.code == 1, argv
        assert "canary-pw-9f3" not in result.out + result.err
        assert "Traceback" not in result.err
        assert_one_error_line(result, "cannot use Redis at redis://operator:***@127.0.0.1")
