"""`retryd cancel TASK_ID...`: PENDING tasks become FAILED at once, with the reason "cancelled".

All or none: an unknown task id exits 1, a task that is not PENDING (already CONFIRMED or
FAILED) exits 2, and nothing is written. A worker running a cancelled task has its outcome
refused. `retryd retry` sends a cancelled task back.
"""

from __future__ import annotations

import argparse
from typing import Any

from worker.admin import Admin
from worker.commands._bulk import add_bulk_parser, run_bulk

__all__ = ["add_parser", "main"]


def add_parser(commands: Any) -> None:
    add_bulk_parser(commands, "cancel", "fail pending tasks now (reason: cancelled)", __doc__, main)


def main(args: argparse.Namespace) -> int:
    return run_bulk(args, "cancelled", Admin.cancel)
