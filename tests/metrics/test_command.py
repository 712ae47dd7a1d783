"""`retryd metrics` as a process: serves the store gauges without handlers, stops on SIGTERM."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from store import Record, RedisStore
from tests.metrics.client import Samples, get_json, scrape, value
from tests.servers import free_port


async def _first_scrape(port: int, process: asyncio.subprocess.Process) -> Samples:
    deadline = time.monotonic() + 15
    while True:
        assert process.returncode is None, "retryd metrics exited early"
        try:
            return await scrape(port)
        except OSError:  # not listening yet (urllib's URLError is an OSError)
            assert time.monotonic() < deadline, "retryd metrics never answered"
            await asyncio.sleep(0.1)


async def test_retryd_metrics_serves_store_gauges_alone(
    redis_url: str, namespace: str, redis_store: RedisStore, tmp_path: Path
) -> None:
    """Store gauges, build info and health answer; no handler series; SIGTERM exits 0."""
    await redis_store.put_all(*(Record(f"t{i}", 7, b"x") for i in range(3)))
    port = free_port()
    config = tmp_path / "config.toml"
    config.write_text(
        f'[redis]\nurl = "{redis_url}"\nnamespace = "{namespace}"\n'
        f'[metrics]\nhost = "127.0.0.1"\nport = {port}\n',
        encoding="utf-8",
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("RETRYD_")}
    process = await asyncio.create_subprocess_exec(
        *[sys.executable, "-m", "worker.cli", "metrics", "--config", str(config)],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        got = await _first_scrape(port, process)
        assert value(got, "retryd_tasks", state="pending") == 3
        assert value(got, "retryd_tasks_ready") == 3
        assert value(got, "retryd_redis_errors_total") == 0
        assert len([name for (name, _) in got if name == "retryd_build_info"]) == 1
        assert not any(name.startswith("retryd_task_") for (name, _) in got)
        assert value(got, "retryd_inflight") is None
        assert await get_json(port, "/healthz") == (200, {"status": "ok"})
        assert await get_json(port, "/readyz") == (200, {"status": "ok"})
        process.send_signal(signal.SIGTERM)
        _, stderr = await asyncio.wait_for(process.communicate(), timeout=10)
        assert process.returncode == 0, stderr.decode()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
