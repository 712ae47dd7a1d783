"""One store for the length of one command, and Redis failures as one line with exit status 1.

The task commands (put, get, ls, count, retry) run a single coroutine against a WorkerStore. A
Redis that cannot be reached, refuses us, or times out is reported with the URL's password
replaced by '***': this module must never print a secret or a traceback for such a failure.
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Awaitable, Callable

from store import StoreUnavailable, ValidationError, WorkerStore
from store.connection import redact
from worker.commands._common import config_from_args, open_store, redis_url
from worker.commands._exit import EXIT_UNREACHABLE
from worker.commands._output import error, with_notes
from worker.config import Config
from worker.errors import ConfigError
from worker.logs import describe, scrub, secrets_of_url

__all__ = ["EXIT_UNREACHABLE", "redis_failure", "with_store"]


Action = Callable[[Config, WorkerStore], Awaitable[int]]


def with_store(args: argparse.Namespace, action: Action) -> int:
    """Load the config, open its store, run action(config, store), close the store."""
    config = config_from_args(args)
    url = redis_url(config)
    try:
        return asyncio.run(_run(config, url, action))
    except (StoreUnavailable, OSError) as failure:
        return error(with_notes(redis_failure(url, failure), failure), EXIT_UNREACHABLE)


async def _run(config: Config, url: str, action: Action) -> int:
    try:
        store = open_store(config, url)
    except ValidationError:
        raise  # a bad namespace: the CLI prints it as bad input
    except ValueError as bad_url:  # store.connection's messages already redact the URL
        raise ConfigError(f"redis.url: {bad_url}") from None
    try:
        return await action(config, store)
    finally:
        await store.aclose()


def redis_failure(url: str, failure: BaseException) -> str:
    """'cannot use Redis at <url>: <why>' (PostgreSQL for a postgresql:// URL), with every
    credential of url masked."""
    text = scrub(describe(failure), secrets_of_url(url))
    server = "PostgreSQL" if url.lower().startswith(("postgresql://", "postgres://")) else "Redis"
    return f"cannot use {server} at {redact(url)}: {text}"
