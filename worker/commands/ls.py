"""`retryd ls [--state S]`: a page of the tasks in one state (default pending), ordered by id.

Pages are by id, not by time: `--cursor` takes the id the previous page printed last, so paging
never skips or repeats a task however the schedule moves. Without --ready every task of the
state is listed (due or not); with it, only those due now. Each page is a bounded amount of
Redis work, however many tasks the state holds (see worker/admin.py and docs/store.md).

With `--type N`, one type's tasks by next attempt instead (the store's per-type time index);
its cursor is the last task's next attempt in microseconds and its id, `MICROS:TASK_ID`.
"""

from __future__ import annotations

import argparse
from typing import Any

from store import MAX_TYPE, State, TaskDetails, TypeCursor, WorkerStore
from store.record import from_micros, to_micros
from worker.admin import Admin, Page, TypePage
from worker.commands._common import add_config_argument
from worker.commands._exit import EXIT_BAD_INPUT
from worker.commands._output import (
    add_json_argument,
    data_preview,
    error,
    failure_json,
    failure_text,
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
HEADERS = ("ID", "TASK_ID", "TYPE", "ATTEMPTS", "NEXT_ATTEMPT_AT", "REFERENCE", "DATA")
ERROR_PREVIEW_CHARS = 60  # of a task's last failure in the table; `get` shows all of it


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
        "--type", type=int, metavar="N", help="only tasks of this type, by next attempt"
    )
    parser.add_argument(
        "--cursor",
        metavar="ID",
        help="start after this id (with --type: MICROS:TASK_ID); the last page's cursor",
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
    if args.type is not None:
        return _of_type(args, state)
    if args.cursor is not None and not args.cursor.lstrip("-").isdigit():
        return error(f"--cursor must be a task's numeric id, got {args.cursor!r}", EXIT_BAD_INPUT)
    cursor = None if args.cursor is None else int(args.cursor)

    async def page(config: Config, store: WorkerStore) -> int:
        found = await Admin(store).page(
            state, ready_only=args.ready, cursor=cursor, limit=args.limit, descending=args.desc
        )
        if args.json:
            tasks = [
                record_json(t.record) | {"last_error": failure_json(t.last_error)}
                for t in found.tasks
            ]
            print_json({"tasks": tasks, "next_cursor": found.next_cursor})
        else:
            _print_page(found, args)
        return 0

    return with_store(args, page)


def _of_type(args: argparse.Namespace, state: State) -> int:
    """`ls --type N`: one type's tasks by next attempt, paged by MICROS:TASK_ID."""
    if not 1 <= args.type <= MAX_TYPE:
        return error(f"--type must be in 1..{MAX_TYPE}, got {args.type}", EXIT_BAD_INPUT)
    if args.ready:
        return error("--ready cannot be combined with --type", EXIT_BAD_INPUT)
    after = None
    if args.cursor is not None:
        micros, colon, task_id = args.cursor.partition(":")
        if not colon or not micros.lstrip("-").isdigit() or len(micros) > 17:
            return error(
                f"--cursor with --type is MICROS:TASK_ID, got {args.cursor!r}", EXIT_BAD_INPUT
            )
        after = TypeCursor(from_micros(int(micros)), task_id)

    async def page(config: Config, store: WorkerStore) -> int:
        found = await Admin(store).page_of_type(
            state, args.type, after=after, limit=args.limit, descending=args.desc
        )
        cursor = _type_cursor(found)
        if args.json:
            tasks = [
                record_json(t.record) | {"last_error": failure_json(t.last_error)}
                for t in found.tasks
            ]
            print_json({"tasks": tasks, "next_cursor": cursor})
        elif not found.tasks:
            print(f"no {args.state.lower()} tasks of type {args.type}")
        else:
            print(table((*HEADERS, "LAST_ERROR"), [_row(task) for task in found.tasks]))
            if cursor is not None:
                print(f"more: --type {args.type} --cursor {cursor}")
        return 0

    return with_store(args, page)


def _type_cursor(page: TypePage) -> str | None:
    if page.next_after is None:
        return None
    micros = to_micros("next_attempt_at", page.next_after.next_attempt_at)
    return f"{micros}:{page.next_after.task_id}"


def _print_page(page: Page, args: argparse.Namespace) -> None:
    if not page.tasks:
        print(f"no {args.state.lower()} tasks{' due now' if args.ready else ''}")
        return
    rows = [_row(task) for task in page.tasks]
    print(table((*HEADERS, "LAST_ERROR"), rows))
    if page.next_cursor is not None:
        print(f"more: --cursor {page.next_cursor}")


def _row(task: TaskDetails) -> tuple[object, ...]:
    r = task.record
    return (
        r.id,
        r.task_id,
        r.type,
        r.failed_attempts,
        iso(r.next_attempt_at),
        r.reference_id,
        data_preview(r.data),
        failure_text(task.last_error, limit=ERROR_PREVIEW_CHARS),
    )
