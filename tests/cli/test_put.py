"""`retryd put`: one task from flags, many from JSON lines; bad input is refused whole."""

from __future__ import annotations

import base64
import json
import os
import pty
import re
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
import redis

from store import Record, State, SyncRedisStore
from tests.cli.conftest import MAX_DATA_BYTES, Retryd, assert_one_error_line
from tests.conftest import namespace_keys


def keys_of(admin_client: redis.Redis, namespace: str) -> list[bytes]:
    return namespace_keys(admin_client, "{" + namespace + "}:*")


def test_put_from_flags_round_trips_binary_data_through_get_json(
    retryd: Retryd, tmp_path: Path
) -> None:
    """--data-file bytes, --ref and --at come back unchanged from `get --json`."""
    payload = bytes(range(MAX_DATA_BYTES))  # every byte value up to the cap, NULs included
    (tmp_path / "payload.bin").write_bytes(payload)
    put = retryd(
        "put", "--type", "7", "--task-id", "order:42", "--data-file", "payload.bin",
        "--ref", "ref-1", "--at", "2099-05-01T14:00:00+02:00",
    )  # fmt: skip
    assert (put.code, put.out, put.err) == (0, "order:42\n", "")

    got = retryd("get", "order:42", "--json")
    assert got.code == 0, got.err
    record = json.loads(got.out)
    assert base64.b64decode(record["data"]) == payload
    assert record["type"] == 7
    assert record["state"] == "pending"
    assert record["reference_id"] == "ref-1"
    assert record["next_attempt_at"] == "2099-05-01T12:00:00.000000Z"
    assert record["failed_attempts"] == 0


def test_put_without_task_id_prints_a_new_one_and_get_shows_the_text(retryd: Retryd) -> None:
    put = retryd("put", "--type", "1", "--data", "héllo")
    assert put.code == 0, put.err
    task_id = put.out.strip()
    assert re.fullmatch(r"[0-9a-f]{32}", task_id)

    got = retryd("get", task_id)
    assert got.code == 0, got.err
    assert re.search(r"^data:\s+héllo$", got.out, re.MULTILINE)
    assert re.search(r"^state:\s+pending$", got.out, re.MULTILINE)


def test_json_lines_are_put_in_batches_quietly_when_stderr_is_piped(
    retryd: Retryd, sync_store: SyncRedisStore
) -> None:
    lines = [json.dumps({"type": 3, "task_id": f"t{i}", "data": f"d{i}"}) for i in range(2500)]
    lines.append(json.dumps({"type": 4, "task_id": "bin", "data_b64": "AP8=", "reference_id": "r"}))
    lines.append("")  # a blank line carries no task
    put = retryd("put", "--batch", "1000", stdin="\n".join(lines).encode())
    assert (put.code, put.out, put.err) == (0, "put 2501 tasks\n", "")

    assert sync_store.count_by_state(State.PENDING) == 2501
    assert sync_store.get_by_task_id("t2499").data == b"d2499"
    binary = sync_store.get_by_task_id("bin")
    assert (binary.data, binary.type, binary.reference_id) == (b"\x00\xff", 4, "r")


GOOD = '{"type": 1, "task_id": "ok1"}\n{"type": 1, "task_id": "ok2", "data": "x"}\n'


@pytest.mark.parametrize(
    ("line", "fragment"),
    [
        ('{"type": 1, "task_id": ', "malformed JSON"),
        ('{"task_id": "t"}', "type: is missing"),
        ('{"type": 1, "colour": "red"}', "colour: unknown key"),
        ('{"type": 1, "data": "' + "x" * (MAX_DATA_BYTES + 1) + '"}', "more than max_data_bytes"),
        ('{"type": 1, "data_b64": "not base64!"}', "data_b64: is not valid base64"),
        ('{"type": 1, "next_attempt_at": "2030-01-01T00:00:00"}', "needs a timezone"),
        ('{"type": 0}', "type: must be in 1..4294967295"),
        ('{"type": 1, "task_id": "ok1"}', "repeats line 1"),
        ("[1, 2]", "must be an object"),
    ],
)
def test_a_bad_line_is_named_and_nothing_is_written(
    retryd: Retryd, admin_client: redis.Redis, namespace: str, line: str, fragment: str
) -> None:
    """Line 3 is bad; lines 1 and 2 (each its own batch) are not written either."""
    put = retryd("put", "-", "--batch", "1", stdin=(GOOD + line + "\n").encode())
    assert (put.code, put.out) == (2, "")
    assert_one_error_line(put, "line 3:", fragment, "nothing was written")
    assert keys_of(admin_client, namespace) == []


def test_a_task_id_already_stored_in_a_later_batch_writes_nothing(
    retryd: Retryd, sync_store: SyncRedisStore
) -> None:
    sync_store.put_all(Record("taken", 1, b"first"))
    lines = [json.dumps({"type": 1, "task_id": f"new{i}"}) for i in range(4)]
    lines.append(json.dumps({"type": 1, "task_id": "taken", "data": "second"}))
    put = retryd("put", "--batch", "2", stdin="\n".join(lines).encode())
    assert put.code == 2
    assert_one_error_line(put, "line 5:", "'taken' already exists", "nothing was written")
    assert sync_store.count_by_state(State.PENDING) == 1
    assert sync_store.get_by_task_id("taken").data == b"first"


def used_memory(client: redis.Redis) -> int:
    return int(client.info("memory")["used_memory"])


def test_a_full_redis_during_a_bulk_put_is_one_line_with_what_was_written(
    retryd: Retryd, private_redis_url: str
) -> None:
    """An OOM reply (maxmemory reached) is status 1 and one line naming it and what was
    written, no traceback: first before any batch, then after some of five batches."""
    client = redis.Redis.from_url(private_redis_url)
    lines = [json.dumps({"type": 1, "task_id": f"t{i}", "data": "x" * 64}) for i in range(5000)]
    tasks = "\n".join(lines).encode()
    env = {"RETRYD_REDIS_URL": private_redis_url}
    try:
        client.config_set("maxmemory", 1)
        full = retryd("put", "-", "--batch", "1000", stdin=tasks, env=env | ns_env("full"))
        assert (full.code, full.out) == (1, "")
        assert_one_error_line(full, "OutOfMemoryError", "'maxmemory';", "nothing was written")
        client.config_set("maxmemory", 0)
        before = used_memory(client)  # what one batch of 1000 costs, measured
        retryd("put", "-", stdin="\n".join(lines[:1000]).encode(), env=env | ns_env("one"))
        batch_bytes = used_memory(client) - before
        # Room for about two batches: the check runs before each script, counting its arguments.
        client.config_set("maxmemory", used_memory(client) + 2 * batch_bytes)
        part = retryd("put", "-", "--batch", "1000", stdin=tasks, env=env | ns_env("part"))
    finally:
        client.config_set("maxmemory", 0)
    written = client.hlen("{part}:tasks")
    assert written in (1000, 2000, 3000, 4000)
    assert (part.code, part.out) == (1, "")
    line = written + 1
    resume = f"the {written} tasks before line {line} were written (resume: tail -n +{line})"
    refused = "OutOfMemoryError: the put_all script was refused: command not allowed"
    assert_one_error_line(part, refused, resume)
    assert client.hlen("{full}:tasks") == 0
    client.close()


def ns_env(namespace: str) -> dict[str, str]:
    return {"RETRYD_REDIS_NAMESPACE": namespace}


def test_bad_single_puts_exit_2_and_write_nothing(
    retryd: Retryd, sync_store: SyncRedisStore, admin_client: redis.Redis, namespace: str
) -> None:
    cases = [
        (("--type", "1", "--at", "2030-01-01T00:00:00"), "--at: '2030-01-01T00:00:00' needs a"),
        (("--type", "1", "--at", "soon"), "is not an ISO 8601"),
        (("--type", "1", "--data", "x" * (MAX_DATA_BYTES + 1)), "more than max_data_bytes (64)"),
        (("--type", "1", "--data-file", "missing.bin"), "--data-file: cannot read"),
        (("--data", "no type"), "--data need --type"),
    ]
    for argv, fragment in cases:
        put = retryd("put", *argv, stdin=b"")
        assert (put.code, put.out) == (2, ""), argv
        assert_one_error_line(put, fragment)
    assert keys_of(admin_client, namespace) == []

    sync_store.put_all(Record("dup", 1, b"original"))
    again = retryd("put", "--type", "2", "--task-id", "dup", "--data", "other")
    assert again.code == 2
    assert_one_error_line(again, "'dup' already exists")
    assert sync_store.get_by_task_id("dup").data == b"original"


def test_empty_stdin_is_an_error_not_a_silent_success(retryd: Retryd) -> None:
    put = retryd("put", stdin=b"\n")
    assert put.code == 2
    assert_one_error_line(put, "no tasks on stdin")


def test_bulk_put_shows_progress_on_a_terminal(
    cli_env: dict[str, str], tmp_path: Path, sync_store: SyncRedisStore
) -> None:
    """stderr on a pseudo-terminal gets 'put done/total tasks' after each batch."""
    lines = "".join(json.dumps({"type": 1, "task_id": f"p{i}"}) + "\n" for i in range(3))
    controller, terminal = pty.openpty()
    try:
        done = subprocess.run(
            [sys.executable, "-m", "worker.cli", "put", "--batch", "2"],
            input=lines.encode(),
            stdout=subprocess.PIPE,
            stderr=terminal,
            cwd=tmp_path,
            env=cli_env,
            timeout=60,
            check=False,
        )
        os.close(terminal)
        shown = _read_all(controller)
    finally:
        os.close(controller)
    assert done.returncode == 0
    assert "put 2/3 tasks" in shown
    assert "put 3/3 tasks" in shown
    assert sync_store.count_by_state(State.PENDING) == 3


def _read_all(fd: int) -> str:
    chunks = []
    while True:
        try:
            chunk = os.read(fd, 4096)
        except OSError:  # EIO: the terminal's other end is closed and drained
            break
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks).decode()


def test_next_attempt_at_in_json_lines_is_kept_in_utc(
    retryd: Retryd, sync_store: SyncRedisStore
) -> None:
    line = {"type": 1, "task_id": "later", "next_attempt_at": "2099-01-01T00:00:00-05:00"}
    put = retryd("put", "-", stdin=json.dumps(line).encode())
    assert put.code == 0, put.err
    stored = sync_store.get_by_task_id("later").next_attempt_at
    assert stored == datetime(2099, 1, 1, 5, tzinfo=UTC)
