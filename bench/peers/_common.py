"""What every system's job body shares: the Redis keys it writes and the payload it receives.

The job body is the same everywhere: one INCR on DONE_KEY (so the harness sees completion), or,
for the lag test, one RPUSH of the body's start time on LAG_KEY. The mode travels as the first
character of the 100-byte payload so that every system stores the same bytes per job.
"""

from __future__ import annotations

import os

__all__ = [
    "DONE_KEY",
    "LAG_KEY",
    "MODE_FAIL_ONCE",
    "MODE_INCR",
    "MODE_LAG",
    "PAYLOAD_BYTES",
    "POSTGRES_URL_ENV",
    "URL_ENV",
    "payload",
    "postgres_url",
    "redis_url",
]

URL_ENV = "BENCH_REDIS_URL"
# The PostgreSQL benchmark's scratch database (bench/postgres.py sets it before any import of a
# PostgreSQL adapter, and its workers inherit it).
POSTGRES_URL_ENV = "BENCH_POSTGRES_URL"
DONE_KEY = "benchmark:done"
LAG_KEY = "benchmark:lag"
PAYLOAD_BYTES = 100

MODE_INCR = "i"
MODE_FAIL_ONCE = "f"
MODE_LAG = "l"


def redis_url() -> str:
    """The benchmark's own server; the harness sets it before starting any worker."""
    return os.environ.get(URL_ENV, "redis://127.0.0.1:6379/0")


def postgres_url() -> str:
    """The PostgreSQL benchmark's own database; never a default that could be someone's."""
    url = os.environ.get(POSTGRES_URL_ENV)
    if not url:
        raise RuntimeError(f"{POSTGRES_URL_ENV} is not set: run `python -m bench.postgres`")
    return url


def payload(mode: str) -> str:
    """A 100-character ASCII payload whose first character tells the body what to do."""
    return mode + "x" * (PAYLOAD_BYTES - 1)
