"""`retryd count`: how many tasks are pending, confirmed and failed, and how many are due now.

One snapshot (a single script), so the numbers add up even while workers run.
"""

from __future__ import annotations

import argparse
from typing import Any

from store import WorkerStore
from worker.commands._common import add_config_argument
from worker.commands._output import add_json_argument, iso, print_json, table
from worker.commands._session import with_store
from worker.config import Config

__all__ = ["add_parser", "main"]


def add_parser(commands: Any) -> None:
    parser: argparse.ArgumentParser = commands.add_parser(
        "count", help="count tasks by state", description=__doc__
    )
    add_config_argument(parser)
    add_json_argument(parser)
    parser.set_defaults(handler=main)


def main(args: argparse.Namespace) -> int:
    async def count(config: Config, store: WorkerStore) -> int:
        stats = await store.stats()
        if args.json:
            print_json(
                {
                    "pending": stats.pending,
                    "confirmed": stats.confirmed,
                    "failed": stats.failed,
                    "ready": stats.ready,
                    "oldest_ready_at": iso(stats.oldest_ready_at),
                }
            )
            return 0
        rows = [
            ("pending", stats.pending),
            ("  due now", stats.ready),
            ("confirmed", stats.confirmed),
            ("failed", stats.failed),
        ]
        print(table(("STATE", "TASKS"), rows))
        if stats.oldest_ready_at is not None:
            print(f"oldest due task has waited since {iso(stats.oldest_ready_at)}")
        return 0

    return with_store(args, count)
