"""Real redis-server processes for tests: a standalone server, a 3-master cluster, Sentinel.

Each server runs on free 127.0.0.1 ports in its own temporary directory and is stopped by the
pid this module started, never by name. A standalone server can be killed (SIGKILL) and started
again on the same port with the same directory, so fault tests can restart Redis under load.

Nothing here mocks Redis. When redis-server is not installed, require_redis_server() skips the
test with that reason; any other failure to start is an error, with the server's log attached.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import redis
from redis.exceptions import BusyLoadingError
from redis.exceptions import ConnectionError as RedisConnectionError

__all__ = [
    "Cluster",
    "RedisServer",
    "SentinelSetup",
    "TlsFiles",
    "free_port",
    "make_tls_files",
    "redis_cluster",
    "redis_server",
    "require_redis_server",
    "sentinel_setup",
    "stop_process",
    "wait_for",
]

HOST = "127.0.0.1"
START_TIMEOUT_SECONDS = 10.0


def require_redis_server() -> str:
    """The path of redis-server; skip the calling test when it is not installed."""
    path = shutil.which("redis-server")
    if path is None:
        pytest.skip("redis-server is not installed (apt-get install redis-server)")
    return path


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class TlsFiles:
    """A CA and a server certificate for 127.0.0.1 signed by it, as PEM files."""

    ca_cert: Path
    server_cert: Path
    server_key: Path


def make_tls_files(directory: Path, name: str = "test") -> TlsFiles:
    """Make a fresh CA and a server certificate for 127.0.0.1 with the openssl CLI."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    directory.mkdir(parents=True, exist_ok=True)
    ca_key, ca_cert = directory / f"{name}-ca.key", directory / f"{name}-ca.crt"
    key, csr, cert = (directory / f"{name}-server.{ext}" for ext in ("key", "csr", "crt"))
    ext = directory / f"{name}-server.ext"
    ext.write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n", encoding="utf-8")
    ca_subject, server_subject = f"/CN={name} test CA", "/CN=127.0.0.1"
    for argv in (
        [
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-keyout",
            str(ca_key),
            "-out",
            str(ca_cert),
            "-subj",
            ca_subject,
        ],
        [
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            str(key),
            "-out",
            str(csr),
            "-subj",
            server_subject,
        ],
        [
            "x509",
            "-req",
            "-in",
            str(csr),
            "-CA",
            str(ca_cert),
            "-CAkey",
            str(ca_key),
            "-CAcreateserial",
            "-days",
            "2",
            "-out",
            str(cert),
            "-extfile",
            str(ext),
        ],
    ):
        subprocess.run(["openssl", *argv], check=True, capture_output=True)
    return TlsFiles(ca_cert=ca_cert, server_cert=cert, server_key=key)


@dataclass
class RedisServer:
    """One redis-server process on a fixed port and directory; restartable after a kill."""

    directory: Path
    args: Sequence[str] = ()
    password: str | None = None
    tls: TlsFiles | None = None
    port: int = field(default_factory=free_port)
    config_file: Path | None = None  # redis-server reads it first, before any --option
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """A redis:// (or rediss:// with TLS) URL for this server, with its password."""
        scheme = "rediss" if self.tls else "redis"
        auth = f":{self.password}@" if self.password else ""
        return f"{scheme}://{auth}{HOST}:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.directory / "redis.log"

    def command(self) -> list[str]:
        argv = [require_redis_server()] + ([str(self.config_file)] if self.config_file else [])
        argv += ["--bind", HOST, "--dir", str(self.directory)]
        argv += ["--logfile", str(self.log_path), "--save", "", "--daemonize", "no"]
        if self.tls:
            # TLS only: the plain port is closed, so nothing can bypass verification.
            argv += ["--port", "0", "--tls-port", str(self.port)]
            argv += ["--tls-cert-file", str(self.tls.server_cert)]
            argv += ["--tls-key-file", str(self.tls.server_key)]
            argv += ["--tls-ca-cert-file", str(self.tls.ca_cert), "--tls-auth-clients", "no"]
        else:
            argv += ["--port", str(self.port)]
        if self.password:
            argv += ["--requirepass", self.password]
        return argv + list(self.args)

    def client_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for redis.Redis that reach this server."""
        kwargs: dict[str, Any] = {"host": HOST, "port": self.port, "password": self.password}
        if self.tls:
            kwargs |= {"ssl": True, "ssl_ca_certs": str(self.tls.ca_cert)}
        return kwargs

    def client(self, **overrides: Any) -> redis.Redis:
        """A new synchronous client to this server (the caller closes it)."""
        return redis.Redis(**(self.client_kwargs() | {"socket_timeout": 5.0} | overrides))

    def start(self) -> None:
        """Start the server (again, after a kill: same port, same directory) and wait for it."""
        self.directory.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(self.command(), stdin=subprocess.DEVNULL)
        self.wait_ready()

    def wait_ready(self, timeout: float = START_TIMEOUT_SECONDS) -> None:
        """Wait until the server answers PING (it may be loading its AOF first)."""
        deadline = time.monotonic() + timeout
        with self.client(socket_timeout=1.0, socket_connect_timeout=1.0) as client:
            while True:
                self._check_alive()
                with contextlib.suppress(RedisConnectionError, BusyLoadingError):
                    client.ping()
                    return
                if time.monotonic() > deadline:
                    raise RuntimeError(f"redis-server did not start:\n{self.log()}")
                time.sleep(0.02)

    def kill(self, sig: signal.Signals = signal.SIGKILL) -> None:
        """Send sig to the server's pid and, unless it is SIGSTOP/SIGCONT, reap it."""
        if self.process is None:
            return
        os.kill(self.process.pid, sig)
        if sig not in (signal.SIGSTOP, signal.SIGCONT):
            self.process.wait(timeout=START_TIMEOUT_SECONDS)
            self.process = None

    def stop(self) -> None:
        """SIGTERM, then SIGKILL if it is still there after a few seconds."""
        if self.process is not None:
            stop_process(self.process, signal.SIGTERM, timeout=5)
        self.process = None

    def log(self) -> str:
        return log_tail(self.log_path)

    def _check_alive(self) -> None:
        if self.process is not None and self.process.poll() is not None:
            raise RuntimeError(f"redis-server exited with {self.process.returncode}:\n{self.log()}")


@contextlib.contextmanager
def _tempdir(prefix: str) -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix=prefix) as name:
        yield Path(name)


@contextlib.contextmanager
def redis_server(
    *args: str,
    password: str | None = None,
    tls: TlsFiles | None = None,
    directory: Path | None = None,
) -> Iterator[RedisServer]:
    """A started standalone server with extra redis-server args; stopped at exit."""
    with contextlib.ExitStack() as stack:
        where = directory or stack.enter_context(_tempdir("retryd-redis-"))
        server = RedisServer(where, args=args, password=password, tls=tls)
        stack.callback(server.stop)
        server.start()
        yield server


@dataclass
class Cluster:
    """A started Redis Cluster of master nodes (no replicas)."""

    nodes: list[RedisServer]

    @property
    def url(self) -> str:
        """A redis+cluster:// URL naming every node as a seed."""
        return "redis+cluster://" + ",".join(f"{HOST}:{n.port}" for n in self.nodes)

    def cluster_info(self, node: RedisServer) -> dict[str, str]:
        with node.client(decode_responses=True) as client:
            info = client.execute_command("CLUSTER INFO")  # redis-py parses it into a dict
        return {str(k): str(v) for k, v in info.items()}


@contextlib.contextmanager
def redis_cluster(masters: int = 3) -> Iterator[Cluster]:
    """A Redis Cluster of `masters` nodes on free ports, every slot assigned, state ok."""
    redis_cli = shutil.which("redis-cli")
    if redis_cli is None:
        pytest.skip("redis-cli is not installed (apt-get install redis-tools)")
    with contextlib.ExitStack() as stack:
        root = stack.enter_context(_tempdir("retryd-cluster-"))
        nodes = []
        for i in range(masters):
            args = ["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf"]
            # The bus port is set explicitly: port + 10000 may be taken or past 65535.
            args += ["--cluster-port", str(free_port()), "--cluster-node-timeout", "2000"]
            node = RedisServer(root / f"node{i}", args=args)
            stack.callback(node.stop)
            node.start()
            nodes.append(node)
        addresses = [f"{HOST}:{n.port}" for n in nodes]
        subprocess.run(
            [redis_cli, "--cluster", "create", *addresses, "--cluster-yes"],
            check=True,
            capture_output=True,
            timeout=30,
        )
        cluster = Cluster(nodes)
        wait_for(
            lambda: all(cluster.cluster_info(n)["cluster_state"] == "ok" for n in nodes),
            "cluster_state:ok on every node",
        )
        yield cluster


@dataclass
class SentinelSetup:
    """One master, one replica and one Sentinel watching them as SERVICE."""

    master: RedisServer
    replica: RedisServer
    sentinel: RedisServer
    service: str = "retryd-master"

    @property
    def url(self) -> str:
        auth = f":{self.master.password}@" if self.master.password else ""
        return f"redis+sentinel://{auth}{HOST}:{self.sentinel.port}/{self.service}"

    def master_address(self) -> tuple[str, int]:
        """Where the Sentinel says the master is now."""
        with self.sentinel.client(password=None, decode_responses=True) as client:
            host, port = client.execute_command("SENTINEL GET-MASTER-ADDR-BY-NAME", self.service)
        return str(host), int(port)

    def known_replicas(self) -> int:
        with self.sentinel.client(password=None) as client:
            return len(client.execute_command("SENTINEL REPLICAS", self.service))


@contextlib.contextmanager
def sentinel_setup(password: str | None = None) -> Iterator[SentinelSetup]:
    """Master, replica (synced) and a Sentinel that knows both, on free ports."""
    with contextlib.ExitStack() as stack:
        root = stack.enter_context(_tempdir("retryd-sentinel-"))
        # Both data nodes run with masterauth, so either can follow the other after a failover.
        auth = ["--masterauth", password] if password else []
        auth += ["--repl-diskless-sync-delay", "0"]  # the default 5 s would slow every sync
        master = RedisServer(root / "master", args=auth, password=password)
        stack.callback(master.stop)
        master.start()
        replica = RedisServer(
            root / "replica",
            args=[*auth, "--replicaof", HOST, str(master.port)],
            password=password,
        )
        stack.callback(replica.stop)
        replica.start()
        # Link up is not enough: the master streams writes only after the replica's first ACK.
        wait_for(lambda: _acked_by_replica(master), "the replica to acknowledge a write")
        setup = SentinelSetup(master, replica, _sentinel(root, master, password))
        stack.callback(setup.sentinel.stop)
        setup.sentinel.start()
        wait_for(lambda: setup.known_replicas() == 1, "the Sentinel to discover the replica")
        yield setup


def _sentinel(root: Path, master: RedisServer, password: str | None) -> RedisServer:
    directory = root / "sentinel"
    directory.mkdir()
    service = SentinelSetup.service
    port = free_port()
    lines = [
        f"port {port}",
        f"bind {HOST}",
        f'dir "{directory}"',
        f"sentinel monitor {service} {HOST} {master.port} 1",
        f"sentinel down-after-milliseconds {service} 1000",
        f"sentinel failover-timeout {service} 5000",
    ]
    if password:
        lines.append(f"sentinel auth-pass {service} {password}")
    conf = directory / "sentinel.conf"  # Sentinel rewrites its config: it must be writable
    conf.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return RedisServer(directory, args=["--sentinel"], port=port, config_file=conf)


def _acked_by_replica(master: RedisServer) -> bool:
    with master.client() as client:
        client.set("servers:replication-probe", "1")
        return int(client.execute_command("WAIT", 1, 200)) == 1


def _info(server: RedisServer, name: str) -> str:
    with server.client(decode_responses=True) as client:
        return str(client.info("replication").get(name, ""))


def log_tail(path: Path) -> str:
    """The end of a server's log, for a failing test's message."""
    try:
        return path.read_text(encoding="utf-8", errors="replace")[-4000:]
    except FileNotFoundError:
        return "(no log)"


def stop_process(process: subprocess.Popen[bytes], sig: signal.Signals, timeout: float) -> None:
    """Send sig to a process this suite started (after SIGCONT: a stopped process ignores it),
    then SIGKILL it if it is still there after timeout seconds; reap it either way."""
    if process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(process.pid, signal.SIGCONT)
        os.kill(process.pid, sig)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def wait_for(check: Any, what: str, timeout: float = 20.0, interval: float = 0.05) -> float:
    """Poll check() until it holds; return the instant it did (time.monotonic()), or fail
    naming what was awaited. The one poller of every suite that runs real processes."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(interval)
    return time.monotonic()
