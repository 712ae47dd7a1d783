"""Issue 12: no handler and no Redis reply may silently stop a worker.

Each test runs real `retryd run` processes on a real redis-server with handlers that misbehave
(tests/reliability/chaos_handlers.py: HOSTILE, HOSTILE_SYNC) or a Redis that answers errors, and
asserts the outcome: states, runs in the ledger, log lines, exit codes, metrics.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import redis

from store import State
from store._codec import decode_record
from store._keys import Keys
from tests.reliability.chaos_handlers import HOSTILE, HOSTILE_SYNC, NORMAL
from tests.reliability.conftest import PoolFactory
from tests.reliability.harness import (
    REPO,
    REPORT,
    RETRYD,
    Ledger,
    ReportRow,
    WorkerProc,
    put_tasks,
    wait_until_settled,
)
from tests.servers import RedisServer, free_port, redis_server, wait_for
from worker.errors import RETRY_LATER_MAX_SECONDS
from worker.runs import ABANDON_SECONDS


def stored(client: redis.Redis, ns: str, task_id: str) -> Any:
    packed = client.hget("{" + ns + "}:tasks", task_id)
    assert isinstance(packed, bytes), task_id
    return decode_record(task_id, packed)


def states(client: redis.Redis, ns: str, ids: list[str]) -> dict[str, State]:
    return {task_id: stored(client, ns, task_id).state for task_id in ids}


def http_get(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def failures(worker: WorkerProc) -> dict[str, list[str]]:
    """The error of each 'handler failed' line, by task id."""
    found: dict[str, list[str]] = {}
    for event in worker.events():
        if event.get("event") == "handler failed":
            found.setdefault(event["task_id"], []).append(event["error"])
    return found


def observed_env(port: int) -> dict[str, str]:
    return {"RETRYD_METRICS_HOST": "127.0.0.1", "RETRYD_METRICS_PORT": str(port)}


def test_retry_later_out_of_range_is_a_failed_attempt_and_the_writer_goes_on(
    store_server: RedisServer, store_client: redis.Redis, ns: str, make_pool: PoolFactory
) -> None:
    """Case 1: RetryLater(inf), (nan) are failed attempts naming the value; RetryLater(1e11) is
    capped at RETRY_LATER_MAX_SECONDS; outcomes after them are still written."""
    pool = make_pool(store_server.url, types={HOSTILE: {"max_attempts": 2}})
    port = free_port()
    worker = pool.start(env=observed_env(port))
    bad: dict[str, dict[str, Any]] = {
        "inf": {"raise": "RetryLater", "seconds": "inf"},
        "nan": {"raise": "RetryLater", "seconds": "nan"},
        "huge": {"raise": "RetryLater", "seconds": 1e11},
    }
    started = time.monotonic()
    put_tasks(store_server.url, ns, bad, task_type=HOSTILE)
    normal: dict[str, dict[str, Any]] = {f"after-{i}": {} for i in range(20)}
    time.sleep(0.5)
    put_tasks(store_server.url, ns, normal)
    wait_for(
        lambda: (
            set(states(store_client, ns, [*normal, "inf", "nan"]).values())
            <= {State.CONFIRMED, State.FAILED}
            and stored(store_client, ns, "huge").version >= 3
        ),
        "every outcome written",
        15,
    )
    elapsed = time.monotonic() - started
    assert states(store_client, ns, list(normal)) == dict.fromkeys(normal, State.CONFIRMED)
    for task_id in ("inf", "nan"):
        record = stored(store_client, ns, task_id)
        assert (record.state, record.failed_attempts) == (State.FAILED, 2)
        assert all("finite number of seconds >= 0" in e for e in failures(worker)[task_id])
    huge = stored(store_client, ns, "huge")
    wait = (huge.next_attempt_at - datetime.now(UTC)).total_seconds()
    assert (huge.state, huge.failed_attempts) == (State.PENDING, 0)
    assert RETRY_LATER_MAX_SECONDS - 60 < wait <= RETRY_LATER_MAX_SECONDS
    assert http_get(port, "/healthz")[0] == 200
    assert worker.alive()
    REPORT.append(
        ReportRow(
            "13 i12.1 RetryLater inf/nan/1e11",
            len(bad) + len(normal),
            0,
            0,
            f"all written in {elapsed:.2f} s",
            "inf, nan FAILED after 2 attempts; 1e11 capped to 7 days; 20 after CONFIRMED",
        )
    )


def test_an_oom_reply_to_lease_extension_does_not_end_the_lease_keeper(
    store_server: RedisServer,
    store_client: redis.Redis,
    ns: str,
    ledger: Ledger,
    make_pool: PoolFactory,
) -> None:
    """Case 2: OOM replies (maxmemory reached) to the extend script for 1.5 s, longer than the
    keeper's round (lease / 3 = 1 s), shorter than the lease: OOM passes, so it is ridden out as
    an outage (logged once, counted in retryd_redis_errors_total, no error line) and the leases
    of the 8 s runs are extended again afterwards: each runs once (version 3), CONFIRMED."""
    pool = make_pool(store_server.url, worker={"concurrency": 4, "lease": 3.0})
    port = free_port()
    worker = pool.start(env=observed_env(port))
    plans = {f"long-{i}": {"sleep": 8.0} for i in range(3)}
    put_tasks(store_server.url, ns, plans)
    wait_for(lambda: ledger.started() == 3, "the three runs to start", 10)
    store_client.config_set("maxmemory", 1)
    try:
        time.sleep(1.5)
    finally:
        store_client.config_set("maxmemory", 0)
    wait_for(
        lambda: states(store_client, ns, list(plans)) == dict.fromkeys(plans, State.CONFIRMED),
        "the long tasks to be confirmed",
        15,
    )
    for task_id in plans:
        record = stored(store_client, ns, task_id)
        assert (record.version, record.failed_attempts) == (3, 0)  # put, claim, outcome: once
    outages = [
        e for e in worker.events() if e.get("event") == "store unavailable; retrying with backoff"
    ]
    assert outages, worker.stderr()
    assert all("OutOfMemoryError" in e["error"] for e in outages), outages
    assert [e for e in worker.events() if e.get("level") == "error"] == []
    metrics = {
        line.split()[0]: float(line.split()[1])
        for line in http_get(port, "/metrics")[1].splitlines()
        if line.startswith("retryd_")
    }
    assert metrics["retryd_redis_errors_total"] >= 1
    assert metrics['retryd_worker_errors_total{loop="leases"}'] == 0
    assert worker.alive()
    REPORT.append(
        ReportRow(
            "13 i12.2 OOM reply to extend",
            len(plans),
            0,
            0,
            "leases extended again",
            f"1.5 s of OOM ridden out ({metrics['retryd_redis_errors_total']:.0f} refused calls); "
            "3 x 8 s runs once",
        )
    )


def test_a_task_claimed_again_while_it_runs_here_is_not_run_twice(
    store_server: RedisServer,
    store_client: redis.Redis,
    ns: str,
    ledger: Ledger,
    make_pool: PoolFactory,
) -> None:
    """Case 3: four running tasks' leases are made to lapse (their index entries put in the
    past); the same worker claims them again; the runs in progress keep the new claims, no
    second run starts, every outcome is written."""
    pool = make_pool(store_server.url, worker={"concurrency": 8, "lease": 30.0})
    worker = pool.start()
    plans = {f"lapsed-{i}": {"sleep": 2.0} for i in range(4)}
    put_tasks(store_server.url, ns, plans)
    wait_for(lambda: ledger.started() == 4, "the four runs to start", 10)
    index = Keys.for_namespace(ns).index(State.PENDING, NORMAL)
    assert store_client.zadd(index, dict.fromkeys(plans, 0), xx=True, ch=True) == 4
    adopted = "claimed again while still running here (its lease had lapsed); "
    adopted += "the run in progress keeps the new claim"
    wait_for(lambda: worker.count(adopted) == 4, "the four claims to be adopted", 5)
    wait_for(
        lambda: states(store_client, ns, list(plans)) == dict.fromkeys(plans, State.CONFIRMED),
        "every outcome written",
        10,
    )
    runs = ledger.runs()
    assert {task_id: len(runs[task_id]) for task_id in plans} == dict.fromkeys(plans, 1)
    for task_id in plans:
        # put 1, claim 2, claim again 3 (the lapsed lease counted as a failed attempt), done 4
        record = stored(store_client, ns, task_id)
        assert (record.version, record.failed_attempts) == (4, 1)
    assert "KeyError" not in worker.stderr()
    REPORT.append(
        ReportRow(
            "13 i12.3 claimed while running",
            len(plans),
            0,
            0,
            "-",
            "4 claims adopted by the runs in progress; 1 run each, all CONFIRMED",
        )
    )


def test_any_exception_class_from_a_handler_is_a_failed_attempt(
    store_server: RedisServer,
    store_client: redis.Redis,
    ns: str,
    ledger: Ledger,
    make_pool: PoolFactory,
) -> None:
    """Case 5: SystemExit, KeyboardInterrupt, GeneratorExit and CancelledError raised by a
    handler (async, and SystemExit from a plain def) are failed attempts, logged; the worker
    keeps running and still exits 0 on SIGTERM."""
    pool = make_pool(
        store_server.url,
        types={HOSTILE: {"max_attempts": 2}, HOSTILE_SYNC: {"max_attempts": 2}},
    )
    worker = pool.start()
    kinds = ["SystemExit", "KeyboardInterrupt", "GeneratorExit", "CancelledError"]
    put_tasks(store_server.url, ns, {k: {"raise": k} for k in kinds}, task_type=HOSTILE)
    put_tasks(store_server.url, ns, {"sync-exit": {"raise": "SystemExit"}}, task_type=HOSTILE_SYNC)
    ids = [*kinds, "sync-exit"]
    wait_for(
        lambda: set(states(store_client, ns, ids).values()) == {State.FAILED}, "all FAILED", 15
    )
    put_tasks(store_server.url, ns, {"after": {}})
    wait_for(lambda: stored(store_client, ns, "after").state is State.CONFIRMED, "after", 10)
    assert worker.alive()
    seen = failures(worker)
    for kind in kinds:
        assert stored(store_client, ns, kind).failed_attempts == 2
        assert len(seen[kind]) == 2, seen
        assert all(e.startswith(f"{kind}:") for e in seen[kind]), seen
    assert all(e.startswith("SystemExit:") for e in seen["sync-exit"])
    worker.process.send_signal(signal.SIGTERM)
    assert worker.process.wait(timeout=10) == 0
    REPORT.append(
        ReportRow(
            "13 i12.5 SystemExit & co. raised",
            len(ids) + 1,
            0,
            0,
            "-",
            "5 FAILED after 2 logged attempts each; the worker ran on, exit 0 on SIGTERM",
        )
    )


def test_a_handler_that_ignores_cancellation_is_abandoned_at_its_timeout_and_at_shutdown(
    store_server: RedisServer,
    store_client: redis.Redis,
    ns: str,
    make_pool: PoolFactory,
) -> None:
    """Case 6: a handler that swallows cancellation is given up ABANDON_SECONDS after its
    timeout (a timeout failure, a warning naming the handler, its slot held); SIGTERM then ends
    the process within shutdown_grace + ABANDON_SECONDS + 1 s, whatever the handlers do."""
    grace = 1.0
    pool = make_pool(
        store_server.url,
        worker={"concurrency": 4, "shutdown_grace": grace},
        types={HOSTILE: {"max_attempts": 1, "timeout": 0.5}},
    )
    worker = pool.start()
    put_tasks(store_server.url, ns, {"stubborn": {"swallow": 60.0}}, task_type=HOSTILE)
    wait_for(lambda: stored(store_client, ns, "stubborn").state is State.FAILED, "the timeout", 10)
    (error,) = failures(worker)["stubborn"]
    assert (
        error
        == "TimeoutError: the handler ran past its timeout (0.5s); it ignored its cancellation"
    )
    abandoned = "handler ignored its cancellation; abandoned, its slot stays taken until it returns"
    assert worker.count(abandoned) == 1
    put_tasks(store_server.url, ns, {"after": {}})
    wait_for(lambda: stored(store_client, ns, "after").state is State.CONFIRMED, "after", 10)
    stopped = time.monotonic()
    worker.process.send_signal(signal.SIGTERM)
    assert worker.process.wait(timeout=grace + ABANDON_SECONDS + 5) == 0
    exit_seconds = time.monotonic() - stopped
    assert exit_seconds < grace + ABANDON_SECONDS + 1.0
    REPORT.append(
        ReportRow(
            "13 i12.6 handler swallows cancel",
            2,
            0,
            0,
            f"exit {exit_seconds:.2f} s after SIGTERM",
            f"FAILED by its 0.5 s timeout, abandoned; grace {grace} s",
        )
    )


def test_a_handler_blocking_the_event_loop_is_named_and_its_neighbours_end_confirmed(
    store_server: RedisServer,
    store_client: redis.Redis,
    ns: str,
    ledger: Ledger,
    make_pool: PoolFactory,
) -> None:
    """Case 4: an async handler blocks the event loop (time.sleep 2.5 s, lease 1 s) while three
    healthy tasks run beside it: the stall is measured (retryd_event_loop_lag_seconds), a warning
    names the blocking handler's type, and the healthy tasks run once and end CONFIRMED."""
    pool = make_pool(store_server.url, worker={"concurrency": 4, "lease": 1.0})
    port = free_port()
    worker = pool.start(env=observed_env(port))
    healthy = {f"healthy-{i}": {"sleep": 0.5} for i in range(3)}
    put_tasks(store_server.url, ns, healthy)
    put_tasks(store_server.url, ns, {"blocker": {"block": 2.5}}, task_type=HOSTILE)
    ids = [*healthy, "blocker"]
    wait_for(
        lambda: set(states(store_client, ns, ids).values()) == {State.CONFIRMED}, "confirmed", 15
    )
    runs = ledger.runs()
    assert {task_id: len(runs[task_id]) for task_id in healthy} == dict.fromkeys(healthy, 1)
    stalls = [e for e in worker.events() if e.get("event", "").startswith("event loop blocked")]
    assert stalls, worker.stderr()
    assert all(f"(type {HOSTILE})" in " ".join(e["handlers"]) for e in stalls), stalls
    assert max(e["blocked_seconds"] for e in stalls) >= 2.0
    lag = [
        line
        for line in http_get(port, "/metrics")[1].splitlines()
        if line.startswith("retryd_event_loop_lag_seconds ")
    ]
    assert len(lag) == 1, lag
    REPORT.append(
        ReportRow(
            "13 i12.4 handler blocks the loop",
            len(ids),
            0,
            0,
            f"stall {max(e['blocked_seconds'] for e in stalls):.2f} s seen",
            "warning names the blocking type; 3 healthy tasks 1 run each, CONFIRMED",
        )
    )


def test_a_stalled_event_loop_keeps_its_neighbours_leases_against_another_worker(
    store_server: RedisServer,
    store_client: redis.Redis,
    ns: str,
    ledger: Ledger,
    make_pool: PoolFactory,
) -> None:
    """Case 4 with a second worker on the namespace: an async handler blocks worker A's event
    loop for longer than two leases while six healthy tasks run beside it in A. A's lease keeper
    runs in a thread of its own, so their leases never lapse and worker B, polling all along,
    never takes them: each runs once (ledger), CONFIRMED with failed_attempts 0. The stall is
    logged naming the blocking type, and retryd_event_loop_lag_seconds shows it afterwards."""
    lease, block = 2.0, 5.0
    pool = make_pool(store_server.url, worker={"concurrency": 8, "lease": lease})
    port = free_port()
    first = pool.start(env=observed_env(port))
    second = pool.start()
    # B is held still while A claims everything, so that every task runs in A; from then on B
    # polls every 0.2 s and claims any lease that lapses.
    second.process.send_signal(signal.SIGSTOP)
    try:
        healthy = {f"healthy-{i}": {"sleep": 1.0} for i in range(6)}
        put_tasks(store_server.url, ns, healthy)
        put_tasks(store_server.url, ns, {"blocker": {"block": block}}, task_type=HOSTILE)
        ids = [*healthy, "blocker"]
        wait_for(
            lambda: all(stored(store_client, ns, t).version == 2 for t in ids),
            "worker A to claim every task",
            10,
        )
        blocked_at = time.monotonic()
    finally:
        second.process.send_signal(signal.SIGCONT)
    wait_for(
        lambda: set(states(store_client, ns, ids).values()) == {State.CONFIRMED},
        "every task confirmed",
        block + 20,
    )
    settled = time.monotonic() - blocked_at
    runs = ledger.runs()
    assert {t: len(runs[t]) for t in ids} == dict.fromkeys(ids, 1), runs
    assert {r.pid for t in ids for r in runs[t]} == {first.pid}
    for task_id in ids:
        record = stored(store_client, ns, task_id)
        assert (record.version, record.failed_attempts) == (3, 0), (task_id, record)
    assert second.alive()
    assert first.alive()
    assert second.count("lease lost; the outcome of this run will be refused") == 0
    assert first.count("lease lost; the outcome of this run will be refused") == 0
    stalls = [e for e in first.events() if e.get("event", "").startswith("event loop blocked")]
    assert stalls, first.stderr()
    assert all(f"(type {HOSTILE})" in " ".join(e["handlers"]) for e in stalls), stalls
    longest = max(e["blocked_seconds"] for e in stalls)
    assert longest >= 2 * lease
    (lag,) = [
        float(line.split()[1])
        for line in http_get(port, "/metrics")[1].splitlines()
        if line.startswith("retryd_event_loop_lag_seconds ")
    ]
    assert lag >= 2 * lease, lag  # the longest lag of the last minute, not the last probe's
    REPORT.append(
        ReportRow(
            "13 i12.4b loop stall, two workers",
            len(ids),
            0,
            0,
            f"all CONFIRMED {settled:.2f} s after the claim",
            f"stall {longest:.2f} s (lease {lease} s); 7 tasks 1 run each in A, B took none; "
            f"lag gauge {lag:.2f} s",
        )
    )


def test_a_hung_event_loop_lets_its_leases_go_after_the_longest_handler_timeout(
    store_server: RedisServer,
    store_client: redis.Redis,
    ns: str,
    ledger: Ledger,
    make_pool: PoolFactory,
) -> None:
    """The keeper's bound: a loop silent for longer than any handler may run (timeout 1 s +
    ABANDON_SECONDS + lease 1 s = 3 s here) is taken for hung, and its leases are no longer
    extended: the other worker takes the healthy tasks and runs them. When the loop answers
    again, the keeper says so and the runs it lost are told so (their outcomes are refused)."""
    pool = make_pool(
        store_server.url, worker={"concurrency": 4, "lease": 1.0}, retry={"timeout": 1.0}
    )
    first = pool.start()
    second = pool.start()
    second.process.send_signal(signal.SIGSTOP)
    try:
        healthy = {f"healthy-{i}": {"sleep": 0.5} for i in range(2)}
        put_tasks(store_server.url, ns, healthy)
        put_tasks(store_server.url, ns, {"blocker": {"block_first": 8.0}}, task_type=HOSTILE)
        ids = [*healthy, "blocker"]
        wait_for(
            lambda: all(stored(store_client, ns, t).version == 2 for t in ids),
            "worker A to claim every task",
            10,
        )
    finally:
        second.process.send_signal(signal.SIGCONT)
    gave_up = (
        "event loop stalled longer than any handler may run; leases no longer extended, "
        "other workers may take these tasks"
    )
    answers = "event loop answers again; leases extended again"
    wait_for(lambda: first.count(answers) == 1, "the loop to answer again", 20)
    wait_for(
        lambda: set(states(store_client, ns, list(healthy)).values()) == {State.CONFIRMED},
        "the healthy tasks confirmed",
        15,
    )
    assert first.count(gave_up) == 1
    runs = ledger.runs()
    for task_id in healthy:  # A's run (its outcome refused) and B's (written)
        assert second.pid in {r.pid for r in runs[task_id]}, runs
        assert stored(store_client, ns, task_id).failed_attempts == 1  # the lapsed lease
    (event,) = [e for e in first.events() if e.get("event") == gave_up]
    assert event["stalled_seconds"] > 3.0
    REPORT.append(
        ReportRow(
            "13 i12.4c hung loop lets go",
            len(ids),
            0,
            len(healthy),
            f"gave up after {event['stalled_seconds']:.2f} s of silence",
            "leases let go past timeout + 1 s + lease; B ran both healthy tasks, CONFIRMED",
        )
    )


def test_lease_lost_is_logged_only_when_the_outcome_is_refused(
    store_server: RedisServer,
    store_client: redis.Redis,
    ns: str,
    ledger: Ledger,
    make_pool: PoolFactory,
) -> None:
    """Case 7, "lease lost": under a burst of short runs, with the keeper extending every
    0.1 s, runs end and have their outcomes written while extensions are in flight (their
    versions move, and the extension answers 0). None of those is a lost lease: every outcome
    is accepted (each task CONFIRMED at version 3: put, claim, outcome), so the line must not
    appear, nor any refusal."""
    lease = 0.3
    pool = make_pool(store_server.url, worker={"concurrency": 32, "batch": 64, "lease": lease})
    port = free_port()
    worker = pool.start(env=observed_env(port))
    plans = {f"burst-{i}": {"sleep": 0.02} for i in range(3000)}
    started = time.monotonic()
    put_tasks(store_server.url, ns, plans)
    wait_until_settled(store_client, ns, 120)
    elapsed = time.monotonic() - started
    records = [stored(store_client, ns, task_id) for task_id in plans]
    assert {(r.state, r.version, r.failed_attempts) for r in records} == {(State.CONFIRMED, 3, 0)}
    runs = ledger.runs()
    assert {len(runs[task_id]) for task_id in plans} == {1}
    assert worker.count("lease lost; the outcome of this run will be refused") == 0
    assert not [e for e in worker.events() if e.get("event", "").startswith("outcome refused")]
    counted = {
        line.split()[0]: float(line.split()[1])
        for line in http_get(port, "/metrics")[1].splitlines()
        if line.startswith("retryd_task_runs_total{")
    }
    assert counted[f'retryd_task_runs_total{{outcome="confirmed",type="{NORMAL}"}}'] == len(plans)
    assert counted[f'retryd_task_runs_total{{outcome="conflict",type="{NORMAL}"}}'] == 0
    REPORT.append(
        ReportRow(
            "13 i12.7 lease lost only if true",
            len(plans),
            0,
            0,
            f"all CONFIRMED in {elapsed:.2f} s",
            f"lease {lease} s (extended every 0.1 s): 0 'lease lost', 0 refused, all version 3",
        )
    )


def test_a_task_cancelled_or_deleted_while_it_runs_is_called_so(
    store_server: RedisServer,
    store_client: redis.Redis,
    ns: str,
    ledger: Ledger,
    make_pool: PoolFactory,
) -> None:
    """Case 7, a vanished task called vanished: `retryd cancel` and `retryd delete` while the
    worker runs the tasks. Each refused outcome is logged once with what happened to its task
    (cancelled; vanished, deleted), never "another worker holds the task now"; a third task
    that nobody touched is CONFIRMED as usual."""
    pool = make_pool(store_server.url, worker={"concurrency": 4, "lease": 2.0})
    worker = pool.start()
    plans = {task_id: {"sleep": 2.0} for task_id in ("to-cancel", "to-delete", "untouched")}
    put_tasks(store_server.url, ns, plans)
    wait_for(lambda: ledger.started() == 3, "the three runs to start", 10)
    for command in ("cancel", "delete"):
        done = subprocess.run(
            [str(RETRYD), command, "--config", str(pool.config_path), f"to-{command}"],
            env={**os.environ, "PYTHONPATH": str(REPO)},
            capture_output=True,
            timeout=30,
            check=False,
        )
        assert done.returncode == 0, done.stderr
    cancelled = "outcome refused: the task was cancelled while it ran"
    vanished = "outcome refused: the task vanished (deleted while it ran)"
    wait_for(
        lambda: worker.count(cancelled) == 1 and worker.count(vanished) == 1,
        "both refusals to be logged",
        10,
    )
    untouched = "the untouched task to be confirmed"
    wait_for(lambda: stored(store_client, ns, "untouched").state is State.CONFIRMED, untouched, 10)
    refusals = {
        e["task_id"]: e["event"]
        for e in worker.events()
        if e.get("event", "").startswith("outcome refused")
    }
    assert refusals == {"to-cancel": cancelled, "to-delete": vanished}
    record = stored(store_client, ns, "to-cancel")
    assert (record.state, record.version) == (State.FAILED, 3)  # put, claim, cancel
    assert store_client.hget("{" + ns + "}:tasks", "to-delete") is None
    REPORT.append(
        ReportRow(
            "13 i12.7 cancelled/deleted mid-run",
            len(plans),
            0,
            0,
            "-",
            "refusals say 'cancelled while it ran' and 'vanished (deleted)'; the third CONFIRMED",
        )
    )


def test_retryd_run_with_a_wrong_password_exits_1_with_one_redacted_line(
    tmp_path: Path, ns: str, make_pool: PoolFactory
) -> None:
    """Case 7: credentials refused before any claim are a configuration fault, not an outage:
    `retryd run` exits 1 at once with one line naming the refusal, never the password."""
    with redis_server(password="right-secret", directory=tmp_path / "auth") as server:
        wrong = server.url.replace(":right-secret@", ":wrong-secret@", 1)
        assert wrong != server.url
        pool = make_pool(wrong)
        started = time.monotonic()
        worker = pool.start(wait=False)
        assert worker.process.wait(timeout=20) == 1
        elapsed = time.monotonic() - started
    stderr = worker.stderr()
    assert "wrong-secret" not in stderr
    assert "Traceback" not in stderr
    (line,) = [x for x in stderr.splitlines() if x.startswith("retryd: ")]
    assert line.startswith("retryd: cannot use the store: AuthenticationError"), line
    REPORT.append(
        ReportRow(
            "13 i12.7 wrong password",
            0,
            0,
            0,
            f"exit 1 after {elapsed:.2f} s",
            "one line, password redacted (it retried forever before)",
        )
    )
