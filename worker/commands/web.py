"""`retryd web`: the dashboard (overview, tasks, task detail, actions) on [web] host:port.

A process of its own, so it scales and restarts apart from the workers. It refuses to start on
an address other machines can reach while [web] auth is "none".
"""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

from worker.commands._common import add_config_argument, config_from_args, open_store, redis_url
from worker.logs import configure_logging, secrets_of_url

__all__ = ["add_parser"]


def add_parser(commands: Any) -> None:
    parser: argparse.ArgumentParser = commands.add_parser(
        "web", help="serve the web dashboard", description=__doc__
    )
    add_config_argument(parser)
    parser.set_defaults(handler=main)


def main(args: argparse.Namespace) -> int:
    # Imported here: the other commands need neither Starlette nor uvicorn.
    from worker.web import check_exposure, serve

    config = config_from_args(args)
    check_exposure(config.web)
    url = redis_url(config)
    secrets = [*secrets_of_url(url), config.web.secret]
    configure_logging(config.log, secrets)
    asyncio.run(serve(config.web, open_store(config, url), url))
    return 0
