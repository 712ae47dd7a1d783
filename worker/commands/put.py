"""`retryd put`: one task from flags, or many from JSON lines on stdin.

One task:   retryd put --type 7 [--task-id ID] [--data TEXT | --data-file PATH] [--ref R] [--at T]
Many tasks: retryd put < tasks.jsonl   (or `retryd put -`), one object per line:
            {"type": 7, "task_id": "a1", "data": "text" | "data_b64": "...",
             "reference_id": "r", "next_attempt_at": "2024-05-01T12:00:00Z"}

Every line is checked before the first write, and task ids already stored are looked up in the
same pass: a bad line is reported by number and nothing is written. --at and next_attempt_at
need a timezone (`Z` or `+02:00`): a naive time would be a guess, and the store refuses them too.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import json
import sys
import uuid
from collections.abc import Iterable
from datetime import datetime
from typing import IO, Any

from store import MAX_PUT_BATCH, ExistsError, Record, StoreError, ValidationError, WorkerStore
from worker.commands._common import add_config_argument, config_from_args
from worker.commands._exit import EXIT_BAD_INPUT
from worker.commands._output import add_json_argument, error, print_json, record_json
from worker.commands._session import with_store
from worker.config import Config

__all__ = ["add_parser", "main", "parse_lines"]

DEFAULT_BATCH = 1000
LINE_KEYS = ("type", "task_id", "data", "data_b64", "reference_id", "next_attempt_at")
_SINGLE_ONLY = ("task_id", "data", "data_file", "ref", "at")

# (line number, record): the number is kept for messages about a line found bad later on.
Numbered = tuple[int, Record]


def add_parser(commands: Any) -> None:
    parser: argparse.ArgumentParser = commands.add_parser(
        "put",
        help="add a task (or many, as JSON lines on stdin)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("stdin", nargs="?", metavar="-", help="read JSON lines from stdin")
    parser.add_argument("--type", type=int, metavar="N", help="task type (one task from flags)")
    parser.add_argument("--task-id", metavar="ID", help="task id (default: a new random one)")
    data = parser.add_mutually_exclusive_group()
    data.add_argument("--data", metavar="TEXT", help="task data, as UTF-8 text")
    data.add_argument("--data-file", metavar="PATH", help="task data: the file's bytes (- stdin)")
    parser.add_argument("--ref", metavar="REF", help="reference id")
    parser.add_argument("--at", metavar="ISO8601", help="first attempt at (default: now)")
    parser.add_argument(
        "--batch",
        type=int,
        default=DEFAULT_BATCH,
        help=f"tasks per write (default {DEFAULT_BATCH})",
    )
    add_config_argument(parser)
    add_json_argument(parser)
    parser.set_defaults(handler=main)


def main(args: argparse.Namespace) -> int:
    if args.stdin not in (None, "-"):
        return error(f"unexpected argument {args.stdin!r} (only - for stdin)", EXIT_BAD_INPUT)
    if not 1 <= args.batch <= MAX_PUT_BATCH:
        return error(f"--batch must be in 1..{MAX_PUT_BATCH}, got {args.batch}", EXIT_BAD_INPUT)
    if args.type is not None:
        if args.stdin == "-":
            return error("give --type for one task or - for JSON lines, not both", EXIT_BAD_INPUT)
        return _put_one(args)
    given = [f"--{name.replace('_', '-')}" for name in _SINGLE_ONLY if getattr(args, name)]
    if given:
        return error(f"{', '.join(given)} need --type (JSON lines carry their own)", EXIT_BAD_INPUT)
    if args.stdin != "-" and sys.stdin.isatty():
        return error("put needs --type N for one task, or JSON lines on stdin", EXIT_BAD_INPUT)
    return _put_many(args)


def _put_one(args: argparse.Namespace) -> int:
    config = config_from_args(args)
    record = Record(
        task_id=args.task_id if args.task_id is not None else uuid.uuid4().hex,
        type=args.type,
        data=_data_from_flags(args),
        reference_id=args.ref,
        next_attempt_at=None if args.at is None else parse_instant("--at", args.at),
    )
    _check(record, config.store.max_data_bytes)

    async def put(config: Config, store: WorkerStore) -> int:
        await store.put_all(record)
        if args.json:
            print_json(record_json(record))
        else:
            print(record.task_id)
        return 0

    return with_store(args, put)


def _data_from_flags(args: argparse.Namespace) -> bytes:
    if args.data is not None:
        return bytes(args.data, "utf-8")
    if args.data_file is None:
        return b""
    if args.data_file == "-":
        return sys.stdin.buffer.read()
    try:  # read whole: the store caps data at [store] max_data_bytes anyway
        with open(args.data_file, "rb") as file:
            return file.read()
    except OSError as failure:
        reason = failure.strerror or type(failure).__name__
        raise ValidationError("--data-file", f"cannot read {args.data_file!r}: {reason}") from None


def _put_many(args: argparse.Namespace) -> int:
    config = config_from_args(args)
    numbered = parse_lines(sys.stdin.buffer, config.store.max_data_bytes)
    if not numbered:
        return error("no tasks on stdin (for one task: retryd put --type N ...)", EXIT_BAD_INPUT)

    async def put(config: Config, store: WorkerStore) -> int:
        await _refuse_existing(store, numbered, args.batch)
        await _write_batches(store, numbered, args.batch)
        if args.json:
            print_json({"put": len(numbered)})
        else:
            print(f"put {len(numbered)} tasks")
        return 0

    return with_store(args, put)


def parse_lines(stream: Iterable[bytes], max_data_bytes: int) -> list[Numbered]:
    """Every task of a JSON-lines stream, or ValidationError naming the first bad line."""
    numbered: list[Numbered] = []
    first_line_of: dict[str, int] = {}
    for number, raw in enumerate(stream, start=1):
        if not raw.strip():
            continue  # blank lines (a trailing one, most often) carry no task
        try:
            record = _parse_line(raw, max_data_bytes)
        except ValidationError as bad:
            raise ValidationError(f"line {number}", f"{bad}; nothing was written") from None
        earlier = first_line_of.setdefault(record.task_id, number)
        if earlier != number:
            raise ValidationError(
                f"line {number}",
                f"task_id {record.task_id!r} repeats line {earlier}; nothing was written",
            )
        numbered.append((number, record))
    return numbered


def _parse_line(raw: bytes, max_data_bytes: int) -> Record:
    try:
        fields = json.loads(raw)
    except UnicodeDecodeError:
        raise ValidationError("encoding", "the line is not UTF-8") from None
    except json.JSONDecodeError as bad:
        raise ValidationError("malformed JSON", f"{bad.msg} at column {bad.colno}") from None
    if not isinstance(fields, dict):
        raise ValidationError("JSON", f"must be an object, got {type(fields).__name__}")
    unknown = sorted(set(fields) - set(LINE_KEYS))
    if unknown:
        raise ValidationError(unknown[0], f"unknown key (known: {', '.join(LINE_KEYS)})")
    if "type" not in fields:
        raise ValidationError("type", "is missing (every task needs its numeric type)")
    at = fields.get("next_attempt_at")
    record = Record(
        task_id=fields["task_id"] if "task_id" in fields else uuid.uuid4().hex,
        type=fields["type"],
        data=_data_from_line(fields),
        reference_id=fields.get("reference_id"),
        next_attempt_at=None if at is None else parse_instant("next_attempt_at", at),
    )
    _check(record, max_data_bytes)
    return record


def _data_from_line(fields: dict[str, Any]) -> bytes:
    if "data" in fields and "data_b64" in fields:
        raise ValidationError("data", "give data or data_b64, not both")
    if "data_b64" in fields:
        encoded = fields["data_b64"]
        if not isinstance(encoded, str):
            raise ValidationError("data_b64", f"must be a string, got {type(encoded).__name__}")
        try:
            return base64.b64decode(encoded, validate=True)
        except binascii.Error:
            raise ValidationError("data_b64", "is not valid base64") from None
    text = fields.get("data", "")
    if not isinstance(text, str):
        raise ValidationError("data", f"must be a string (or use data_b64), got {text!r}")
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        raise ValidationError("data", "is not encodable as UTF-8 (lone surrogate)") from None


def parse_instant(field: str, text: object) -> datetime:
    """An ISO 8601 instant with a timezone; a naive one is refused rather than guessed."""
    if not isinstance(text, str):
        raise ValidationError(field, f"must be an ISO 8601 string, got {text!r}")
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ValidationError(field, f"{text!r} is not an ISO 8601 date and time") from None
    if moment.tzinfo is None:
        raise ValidationError(field, f"{text!r} needs a timezone, like Z or +02:00")
    return moment


def _check(record: Record, max_data_bytes: int) -> None:
    """The store's own checks, run before connecting: bad input is exit 2 even if Redis is down."""
    record.validate()
    if len(record.data) > max_data_bytes:
        raise ValidationError(
            "data", f"is {len(record.data)} bytes, more than max_data_bytes ({max_data_bytes})"
        )


async def _refuse_existing(store: WorkerStore, numbered: list[Numbered], batch: int) -> None:
    """ExistsError naming the first line whose task id is already stored (one read per batch).

    put_all refuses such a batch anyway, but only after earlier batches are written: looking
    first keeps "nothing written" true for the usual mistake, loading one file twice.
    """
    for start in range(0, len(numbered), batch):
        chunk = numbered[start : start + batch]
        stored = await store.which_exist([record.task_id for _, record in chunk])
        for number, record in chunk:
            if record.task_id in stored:
                raise ExistsError(
                    f"line {number}: task {record.task_id!r} already exists; nothing was written"
                )


async def _write_batches(store: WorkerStore, numbered: list[Numbered], batch: int) -> None:
    progress = _Progress(len(numbered), sys.stderr)
    done = 0
    for start in range(0, len(numbered), batch):
        chunk = numbered[start : start + batch]
        try:
            await store.put_all(*(record for _, record in chunk))
        except ExistsError as taken:  # stored by someone else since _refuse_existing looked
            raise ExistsError(f"line {chunk[0][0]}..: {taken}; {_written(done, chunk)}") from None
        except StoreError as failure:  # printed as one line, with what was written
            failure.add_note(_written(done, chunk))
            raise
        except BaseException:
            if done:
                print(f"retryd: {_written(done, chunk)}", file=sys.stderr)
            raise
        done += len(chunk)
        progress.show(done)
    progress.finish()


def _written(done: int, failed: list[Numbered]) -> str:
    """What a partial bulk put left behind, and where to resume."""
    first = failed[0][0]
    if not done:
        return "nothing was written"
    return f"the {done} tasks before line {first} were written (resume: tail -n +{first})"


class _Progress:
    """'put 3000/10000 tasks' rewritten in place on a terminal; silent when stderr is piped."""

    def __init__(self, total: int, out: IO[str]) -> None:
        self.total = total
        self.out = out
        self.enabled = out.isatty()

    def show(self, done: int) -> None:
        if self.enabled:
            self.out.write(f"\rput {done}/{self.total} tasks")
            self.out.flush()

    def finish(self) -> None:
        if self.enabled:
            self.out.write("\n")
            self.out.flush()
