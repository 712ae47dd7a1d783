"""`retryd delete TASK_ID...`: delete tasks and everything kept for them, all or none.

An unknown task id deletes nothing and exits 1. A deleted task's id may be put again; a worker
running it when it is deleted has its outcome refused.
"""

from __future__ import annotations

import argparse
from typing import Any

from store import WorkerStore
from worker.admin import Admin
from worker.commands._common import add_config_argument
from worker.commands._output import add_json_argument, print_json
from worker.commands._session import with_store
from worker.config import Config

__all__ = ["add_parser", "main"]


def add_parser(commands: Any) -> None:
    parser: argparse.ArgumentParser = commands.add_parser(
        "delete", help="delete tasks", description=__doc__
    )
    parser.add_argument("task_ids", nargs="+", metavar="TASK_ID")
    add_config_argument(parser)
    add_json_argument(parser)
    parser.set_defaults(handler=main)


def main(args: argparse.Namespace) -> int:
    async def delete(config: Config, store: WorkerStore) -> int:
        count = await Admin(store).delete(args.task_ids)
        if args.json:
            print_json({"deleted": count})
        else:
            print(f"deleted {count} task{'s' if count != 1 else ''}")
        return 0

    return with_store(args, delete)
