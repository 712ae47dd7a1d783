"""The processes the benchmark starts itself: its own redis-server and one worker at a time.

Every process is started in its own session and stopped by its pid (its process group, so a
worker's children go too); nothing here ever signals a process it did not start.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

__all__ = ["free_port", "redis_server", "started", "stop"]

_STOP_GRACE_SECONDS = 10.0


def free_port() -> int:
    """A loopback port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def start(
    argv: list[str], log: Path, env: Mapping[str, str] | None = None
) -> subprocess.Popen[bytes]:
    """Start argv in a new session, its output to log (a file, so a chatty worker never blocks)."""
    with log.open("ab") as out:
        return subprocess.Popen(
            argv,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=dict(env) if env is not None else None,
            start_new_session=True,
        )


def stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM the process group we started, then SIGKILL it if it outlives the grace period."""
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=_STOP_GRACE_SECONDS)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=_STOP_GRACE_SECONDS)


@contextlib.contextmanager
def started(
    argv: list[str], log: Path, env: Mapping[str, str] | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    """A process that is stopped on the way out, whatever happened inside."""
    proc = start(argv, log, env)
    try:
        yield proc
    finally:
        stop(proc)


@contextlib.contextmanager
def redis_server(
    workdir: Path, timeout: float = 10.0, *, extra_args: Sequence[str] = ()
) -> Iterator[str]:
    """Our own redis-server on a free loopback port, persistence off unless extra_args (given
    last, so they win) turn it on; yields its URL."""
    port = free_port()
    argv = [
        "redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
        "--appendonly", "no", "--dir", str(workdir), *extra_args,
    ]  # fmt: skip
    with started(argv, workdir / "redis-server.log") as proc:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"redis-server exited; see {workdir / 'redis-server.log'}")
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
                break
            if time.monotonic() > deadline:
                raise TimeoutError(f"redis-server did not listen on {port} in {timeout} s")
            time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0"
