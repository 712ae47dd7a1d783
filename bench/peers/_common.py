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
    "URL_ENV",
    "payload",
    "redis_url",
]

URL_ENV = "BENCH_REDIS_URL"
DONE_KEY = "benchmark:done"
LAG_KEY = "benchmark:lag"
PAYLOAD_BYTES = 100

MODE_INCR = "i"
MODE_FAIL_ONCE = "f"
MODE_LAG = "l"


def redis_url() -> str:
    """The benchmark's own server; the harness sets it before starting any worker."""
    return os.environ.get(URL_ENV, "redis://127.0.0.1:6379/0")


def payload(mode: str) -> str:
    """A 100-character ASCII payload whose first character tells the body what to do."""
    return mode + "x" * (PAYLOAD_BYTES - 1)
