"""What `retryd cancel` and `retryd delete` share: TASK_ID... arguments, one admin operation on
all of them (all or none), and `<verb> N tasks` (or `{"<verb>": N}`) printed."""

from __future__ import annotations

import argparse
from collections.abc import Awaitable, Callable
from typing import Any

from store import WorkerStore
from worker.admin import Admin
from worker.commands._common import add_config_argument
from worker.commands._output import add_json_argument, print_json
from worker.commands._session import with_store
from worker.config import Config

__all__ = ["AdminOperation", "add_bulk_parser", "run_bulk"]

# An admin operation on a list of task ids, answering how many it changed.
AdminOperation = Callable[[Admin, list[str]], Awaitable[int]]


def add_bulk_parser(
    commands: Any, name: str, help_text: str, description: str | None, main: Any
) -> None:
    parser: argparse.ArgumentParser = commands.add_parser(
        name, help=help_text, description=description
    )
    parser.add_argument("task_ids", nargs="+", metavar="TASK_ID")
    add_config_argument(parser)
    add_json_argument(parser)
    parser.set_defaults(handler=main)


def run_bulk(args: argparse.Namespace, verb: str, operation: AdminOperation) -> int:
    """Run operation on args.task_ids and print what it did."""

    async def run(config: Config, store: WorkerStore) -> int:
        count = await operation(Admin(store), args.task_ids)
        if args.json:
            print_json({verb: count})
        else:
            print(f"{verb} {count} task{'s' if count != 1 else ''}")
        return 0

    return with_store(args, run)
