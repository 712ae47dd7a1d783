"""`retryd delete TASK_ID...`: delete tasks and everything kept for them, all or none.

An unknown task id deletes nothing and exits 1. A deleted task's id may be put again; a worker
running it when it is deleted has its outcome refused.
"""

from __future__ import annotations

import argparse
from typing import Any

from worker.admin import Admin
from worker.commands._bulk import add_bulk_parser, run_bulk

__all__ = ["add_parser", "main"]


def add_parser(commands: Any) -> None:
    add_bulk_parser(commands, "delete", "delete tasks", __doc__, main)


def main(args: argparse.Namespace) -> int:
    return run_bulk(args, "deleted", Admin.delete)
