"""Fixtures for the CLI tests: `retryd` run as a real subprocess on the test's namespace.

Each call starts a Python process (~0.3 s), so tests share calls where they can. The child gets
no RETRYD_* variable from the caller's environment but the Redis URL and namespace given here,
and runs in a temporary directory so no ./config.toml of the checkout is picked up.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from store import SyncRedisStore

REPO_ROOT = Path(__file__).resolve().parents[2]

# Small, so "data larger than max_data_bytes" costs nothing to produce.
MAX_DATA_BYTES = 64


@dataclass(frozen=True, slots=True)
class Result:
    """What one `retryd ...` run left: its exit status and both outputs as text."""

    code: int
    out: str
    err: str


Retryd = Callable[..., Result]


@pytest.fixture
def cli_env(redis_url: str, namespace: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RETRYD_")}
    env |= {
        # `python -m worker.cli` runs in a temporary folder: import this checkout's code, not
        # whatever checkout the venv was installed from.
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")])),
        "RETRYD_REDIS_URL": redis_url,
        "RETRYD_REDIS_NAMESPACE": namespace,
        "RETRYD_STORE_MAX_DATA_BYTES": str(MAX_DATA_BYTES),
    }
    return env


@pytest.fixture
def retryd(cli_env: dict[str, str], tmp_path: Path) -> Retryd:
    """run(*argv, stdin=b"", env={...}) -> Result: `python -m worker.cli argv` in tmp_path."""

    def run(*argv: str, stdin: bytes = b"", env: dict[str, str] | None = None) -> Result:
        done = subprocess.run(
            [sys.executable, "-m", "worker.cli", *argv],
            input=stdin,
            capture_output=True,
            cwd=tmp_path,
            env={**cli_env, **(env or {})},
            timeout=60,
            check=False,
        )
        return Result(done.returncode, done.stdout.decode(), done.stderr.decode())

    return run


@pytest.fixture
def sync_store(redis_url: str, namespace: str) -> Iterator[SyncRedisStore]:
    """The test's namespace, for setting up tasks and checking what the CLI wrote."""
    with SyncRedisStore.from_url(
        redis_url, namespace=namespace, max_data_bytes=MAX_DATA_BYTES
    ) as sync_store:
        yield sync_store


def assert_one_error_line(result: Result, *fragments: str) -> None:
    """stderr is one `retryd: ...` line holding every fragment; no traceback."""
    lines = result.err.strip().splitlines()
    assert len(lines) == 1, result.err
    assert lines[0].startswith("retryd: "), result.err
    for fragment in fragments:
        assert fragment in lines[0], result.err
