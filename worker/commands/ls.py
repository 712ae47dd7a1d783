"""`retryd ls [--state S]`: a page of the tasks in one state (default pending), ordered by id.

Pages are by id, not by time: `--cursor` takes the id the previous page printed last, so paging
never skips or repeats a task however the schedule moves. Without --ready every task of the
state is listed (due or not); with it, only those due now.
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime, timedelta
from typing import Any

from store import NotFoundError, Ordering, Record, RedisStore, State
from worker.commands._common import add_config_argument
from worker.commands._output import (
    add_json_argument,
    data_preview,
    error,
    iso,
    print_json,
    record_json,
    table,
)
from worker.commands._session import with_store
from worker.config import Config

__all__ = ["STATES", "add_parser", "main"]

STATES = {str(s): s for s in (State.PENDING, State.CONFIRMED, State.FAILED)}
DEFAULT_LIMIT = 50
# The work still to do: what a newcomer who just put a task wants to see first.
DEFAULT_STATE = "pending"
# The latest instant a store can hold (2**53 microseconds after the epoch, year 2255): as_of for
# "every task, due or not".
END_OF_TIME = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=2**53)
EXIT_BAD_INPUT = 2


def add_parser(commands: Any) -> None:
    parser: argparse.ArgumentParser = commands.add_parser(
        "ls", help="list tasks in one state", description=__doc__
    )
    parser.add_argument(
        "--state",
        default=DEFAULT_STATE,
        metavar="STATE",
        help=f"one of {', '.join(STATES)} (default {DEFAULT_STATE})",
    )
    parser.add_argument("--ready", action="store_true", help="only tasks due now")
    parser.add_argument(
        "--limit", type=int, default=DEFAULT_LIMIT, help=f"page size (default {DEFAULT_LIMIT})"
    )
    parser.add_argument(
        "--cursor", type=int, metavar="ID", help="start after this id (the last page's cursor)"
    )
    parser.add_argument("--desc", action="store_true", help="newest first (descending ids)")
    add_config_argument(parser)
    add_json_argument(parser)
    parser.set_defaults(handler=main)


def main(args: argparse.Namespace) -> int:
    state = STATES.get(args.state.lower())
    if state is None:
        return error(f"unknown state {args.state!r} (known: {', '.join(STATES)})", EXIT_BAD_INPUT)
    if args.limit < 1:
        return error(f"--limit must be at least 1, got {args.limit}", EXIT_BAD_INPUT)

    async def page(config: Config, store: RedisStore) -> int:
        as_of = datetime.now(UTC) if args.ready else END_OF_TIME
        direction = Ordering.DESC if args.desc else Ordering.ASC
        try:
            records = await store.get_all_ready_by_state(
                state, as_of, args.cursor, args.limit, direction
            )
        except NotFoundError:
            records = []  # an empty page is an answer, not a failure
        next_cursor = records[-1].id if len(records) == args.limit else None
        if args.json:
            print_json({"tasks": [record_json(r) for r in records], "next_cursor": next_cursor})
        else:
            _print_page(records, next_cursor, args)
        return 0

    return with_store(args, page)


def _print_page(records: list[Record], next_cursor: int | None, args: argparse.Namespace) -> None:
    if not records:
        print(f"no {args.state.lower()} tasks{' due now' if args.ready else ''}")
        return
    headers = ("ID", "TASK_ID", "TYPE", "ATTEMPTS", "NEXT_ATTEMPT_AT", "REFERENCE", "DATA")
    rows = [
        (
            r.id,
            r.task_id,
            r.type,
            r.failed_attempts,
            iso(r.next_attempt_at),
            r.reference_id,
            data_preview(r.data),
        )
        for r in records
    ]
    print(table(headers, rows))
    if next_cursor is not None:
        print(f"more: --cursor {next_cursor}")
