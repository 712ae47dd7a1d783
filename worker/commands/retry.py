"""`retryd retry TASK_ID...` / `retryd retry --all [--type N]`: FAILED tasks back to PENDING.

A retried task is due now by the Redis server's clock, its failures reset to 0 (its last failure
is kept, to show why it had failed). With task ids it is all or none: an unknown id exits 1, a
task that is not FAILED exits 2 (retrying a PENDING task would reset its attempts, a CONFIRMED
one would run twice), and nothing is written; each retried task is printed. With --all every
FAILED task (of type N only, with --type) is retried in batches of 1,000 and the count printed.
"""

from __future__ import annotations

import argparse
from typing import Any

from store import WorkerStore
from worker.admin import Admin
from worker.commands._common import add_config_argument
from worker.commands._exit import EXIT_BAD_INPUT
from worker.commands._output import add_json_argument, error, print_json, print_record
from worker.commands._session import with_store
from worker.config import Config

__all__ = ["add_parser", "main"]


def add_parser(commands: Any) -> None:
    parser: argparse.ArgumentParser = commands.add_parser(
        "retry", help="send failed tasks back to pending", description=__doc__
    )
    parser.add_argument("task_ids", nargs="*", metavar="TASK_ID")
    parser.add_argument("--all", action="store_true", help="every failed task")
    parser.add_argument("--type", type=int, metavar="N", help="with --all: only tasks of type N")
    add_config_argument(parser)
    add_json_argument(parser)
    parser.set_defaults(handler=main)


def main(args: argparse.Namespace) -> int:
    if bool(args.task_ids) == args.all:
        return error("give task ids, or --all (not both)", EXIT_BAD_INPUT)
    if args.type is not None and not args.all:
        return error("--type goes with --all", EXIT_BAD_INPUT)

    async def retry(config: Config, store: WorkerStore) -> int:
        admin = Admin(store)
        if args.all:
            count = await admin.retry_all(args.type)
            if args.json:
                print_json({"retried": count})
            else:
                print(f"retried {count} failed task{'s' if count != 1 else ''}")
            return 0
        await admin.retry(args.task_ids)
        for task_id in dict.fromkeys(args.task_ids):
            details = await admin.task(task_id)
            print_record(details.record, as_json=args.json)
        return 0

    return with_store(args, retry)
