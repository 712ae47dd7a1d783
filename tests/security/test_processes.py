"""The security rules on real `retryd` processes: a worker runs as the least-privilege ACL user,
and a password in the Redis URL never shows in logs, stderr, /metrics or health bodies.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from store import Record, State, SyncRedisStore
from tests.security.test_acl import NAMESPACE, app_url
from tests.security.test_acl import server as acl_server  # noqa: F401 - a fixture
from tests.security.test_tls_and_secrets import SECRET
from tests.servers import RedisServer, free_port, redis_server

ROOT = Path(__file__).resolve().parents[2]
# How long a `retryd` process may take to start, answer or exit: a second or two on a quiet
# machine; these tests assert what it prints and serves, not how fast, so the ceiling is for a
# machine at a load average of 8 on 2 cores.
PROCESS_SECONDS = 60.0


def retryd(*args: str, env: dict[str, str], **popen: object) -> subprocess.Popen[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("RETRYD_")}
    return subprocess.Popen(  # type: ignore[call-overload, no-any-return]
        [sys.executable, "-m", "worker.cli", *args, "--config", os.devnull],
        cwd=ROOT,
        env=clean | {"PYTHONPATH": str(ROOT)} | env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **popen,
    )


def test_a_worker_runs_as_the_least_privilege_acl_user(acl_server: RedisServer) -> None:  # noqa: F811
    """`retryd run` with only the README's ACL rules: starts, warns, claims, settles."""
    url = app_url(acl_server)
    with SyncRedisStore.from_url(url, namespace=NAMESPACE) as store:
        store.put_all(*(Record(f"acl-{i}", 1, b"hello") for i in range(20)))
        process = retryd(
            "run",
            "--burst",
            env={
                "RETRYD_REDIS_URL": url,
                "RETRYD_REDIS_NAMESPACE": NAMESPACE,
                "RETRYD_METRICS_PORT": "0",
                "RETRYD_LOG_FORMAT": "json",
            },
        )
        _, stderr = process.communicate(timeout=PROCESS_SECONDS)
        assert process.returncode == 0, stderr
        assert "NOPERM" not in stderr
        assert all(store.get_by_task_id(f"acl-{i}").state is State.CONFIRMED for i in range(20))


@pytest.fixture(scope="module")
def guarded() -> Iterator[RedisServer]:
    """A server whose password is not the canary: every connection is refused at AUTH."""
    with redis_server(password="the-real-password") as server:
        yield server


def test_the_password_never_shows_in_a_worker_s_output_or_endpoints() -> None:
    """Redis away (a closed port): the worker rides it out, and says so without the password.
    (A refused password makes `retryd run` exit 1 instead: see the next test.)"""
    url = f"redis://:{SECRET}@127.0.0.1:{free_port()}/0"
    metrics_port = free_port()
    process = retryd(
        "run",
        env={
            "RETRYD_REDIS_URL": url,
            "RETRYD_METRICS_HOST": "127.0.0.1",
            "RETRYD_METRICS_PORT": str(metrics_port),
            "RETRYD_LOG_FORMAT": "json",
            "RETRYD_LOG_LEVEL": "debug",
        },
    )
    try:
        bodies = [_get(f"http://127.0.0.1:{metrics_port}{path}") for path in _paths()]
    finally:
        process.send_signal(signal.SIGTERM)
        stdout, stderr = process.communicate(timeout=PROCESS_SECONDS)
    assert process.returncode == 0, stderr
    assert any(
        json.loads(line).get("event", "").startswith("store unavailable")
        for line in stderr.splitlines()
        if line.startswith("{")
    )
    for text in (stdout, stderr, *bodies):
        assert SECRET not in text


@pytest.mark.parametrize(
    "command", [["put", "--type", "1", "--data", "x"], ["count"], ["check"], ["run"]]
)
def test_the_password_never_shows_in_a_failing_command(
    guarded: RedisServer, command: list[str]
) -> None:
    process = retryd(
        *command, env={"RETRYD_REDIS_URL": f"redis://:{SECRET}@127.0.0.1:{guarded.port}/0"}
    )
    stdout, stderr = process.communicate(timeout=PROCESS_SECONDS)
    assert process.returncode == 1, stderr
    assert "Traceback" not in stderr
    assert SECRET not in stdout + stderr


def _paths() -> list[str]:
    return ["/metrics", "/healthz", "/readyz"]


def _get(url: str, within: float = PROCESS_SECONDS) -> str:
    """The body of url once the listener is up, whatever the status (503 included)."""
    deadline = time.monotonic() + within
    while True:
        try:
            with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310 - loopback
                return str(response.read().decode())
        except urllib.error.HTTPError as error:
            return str(error.read().decode())
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
