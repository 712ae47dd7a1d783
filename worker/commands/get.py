"""`retryd get TASK_ID`: print one task record and its last failure (exit 1 if there is no such
task)."""

from __future__ import annotations

import argparse
from typing import Any

from store import WorkerStore
from worker.admin import Admin
from worker.commands._common import add_config_argument
from worker.commands._output import add_json_argument, print_record
from worker.commands._session import with_store
from worker.config import Config

__all__ = ["add_parser", "main"]


def add_parser(commands: Any) -> None:
    parser: argparse.ArgumentParser = commands.add_parser(
        "get", help="show one task", description=__doc__
    )
    parser.add_argument("task_id", metavar="TASK_ID")
    add_config_argument(parser)
    add_json_argument(parser)
    parser.set_defaults(handler=main)


def main(args: argparse.Namespace) -> int:
    async def show(config: Config, store: WorkerStore) -> int:
        details = await Admin(store).task(args.task_id)
        print_record(
            details.record, as_json=args.json, last_error=details.last_error, with_error=True
        )
        return 0

    return with_store(args, show)
