"""`retryd metrics`: serve the store gauges, /healthz and /readyz alone, until SIGTERM or SIGINT.

For a deployment whose workers scale to zero: something must still report how many tasks wait.
It runs no handler and claims nothing; it only reads the store's stats when scraped.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
from typing import Any

import structlog

from worker.commands._common import add_config_argument, config_from_args, open_store
from worker.config import Config
from worker.errors import ConfigError
from worker.logs import configure_logging, secrets_of_url

__all__ = ["add_parser"]

log = structlog.get_logger("retryd")


def add_parser(commands: Any) -> None:
    parser: argparse.ArgumentParser = commands.add_parser(
        "metrics", help="serve the store's metrics without running handlers", description=__doc__
    )
    add_config_argument(parser)
    parser.set_defaults(handler=main)


def main(args: argparse.Namespace) -> int:
    config = config_from_args(args)
    configure_logging(config.log, secrets_of_url(config.redis.url))
    if config.metrics.port == 0:
        raise ConfigError("metrics.port: 0 disables the listener, and it is all this command does")
    asyncio.run(_serve(config))
    return 0


async def _serve(config: Config) -> None:
    from worker.http import start_observability_server  # imports the worker; only this needs it

    store = open_store(config)
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopping.set)
    try:
        server = await start_observability_server(
            config.metrics, store=store, metrics=None, worker=None
        )
        log.info("serving metrics only", namespace=config.redis.namespace)
        async with server:
            await stopping.wait()
    finally:
        await store.aclose()
    log.info("metrics stopped")
