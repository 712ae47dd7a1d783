"""`retryd retry TASK_ID`: send a FAILED task back to PENDING, due now, its failures reset to 0.

The change is fenced by the version just read: if a worker or another operator changed the task
in between, nothing is written and the command exits 1 (read it again and decide).
"""

from __future__ import annotations

import argparse
from typing import Any

from store import Change, RedisStore, StaleVersionError, State
from worker.commands._common import add_config_argument
from worker.commands._output import add_json_argument, error, print_record
from worker.commands._session import with_store
from worker.config import Config

__all__ = ["add_parser", "main"]

EXIT_BAD_INPUT = 2


def add_parser(commands: Any) -> None:
    parser: argparse.ArgumentParser = commands.add_parser(
        "retry", help="send a failed task back to pending", description=__doc__
    )
    parser.add_argument("task_id", metavar="TASK_ID")
    add_config_argument(parser)
    add_json_argument(parser)
    parser.set_defaults(handler=main)


def main(args: argparse.Namespace) -> int:
    async def retry(config: Config, store: RedisStore) -> int:
        record = await store.get_by_task_id(args.task_id)
        if record.state is not State.FAILED:
            # Not a conflict but a request that does not apply: retrying a pending task would
            # reset its attempts, a confirmed one would run it twice.
            return error(
                f"task {record.task_id!r} is {record.state}, not failed: only a failed task "
                "can be retried",
                EXIT_BAD_INPUT,
            )
        # settle: due by the server's clock, version-fenced, wakes idle workers.
        [applied] = await store.settle([Change(record, State.PENDING, 0, 0.0)])
        if not applied:
            raise StaleVersionError(
                f"task {record.task_id!r} changed while being retried; nothing was written"
            )
        settled = await store.get_by_task_id(record.task_id)
        print_record(settled, as_json=args.json)
        return 0

    return with_store(args, retry)
