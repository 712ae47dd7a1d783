"""`retryd cancel TASK_ID...`: PENDING tasks become FAILED at once, with the reason "cancelled".

All or none: an unknown task id exits 1, a task that is not PENDING (already CONFIRMED or
FAILED) exits 2, and nothing is written. A worker running a cancelled task has its outcome
refused. `retryd retry` sends a cancelled task back.
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
        "cancel", help="fail pending tasks now (reason: cancelled)", description=__doc__
    )
    parser.add_argument("task_ids", nargs="+", metavar="TASK_ID")
    add_config_argument(parser)
    add_json_argument(parser)
    parser.set_defaults(handler=main)


def main(args: argparse.Namespace) -> int:
    async def cancel(config: Config, store: WorkerStore) -> int:
        count = await Admin(store).cancel(args.task_ids)
        if args.json:
            print_json({"cancelled": count})
        else:
            print(f"cancelled {count} task{'s' if count != 1 else ''}")
        return 0

    return with_store(args, cancel)
