"""How the task commands print: aligned tables for people, JSON for programs, one-line errors.

JSON is the contract scripts rely on: a record is an object whose `data` is base64 (data is
opaque bytes) and whose timestamps are ISO 8601 in UTC with a `Z`. Tables are for eyes only and
may change. Nothing here touches Redis.
"""

from __future__ import annotations

import base64
import json
import sys
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, TextIO

from store import Failure, Record

__all__ = [
    "add_json_argument",
    "data_preview",
    "error",
    "failure_json",
    "failure_text",
    "iso",
    "print_json",
    "print_record",
    "record_json",
    "record_lines",
    "table",
    "with_notes",
]

# How much of a record's data a table shows; `get --json` gives all of it.
PREVIEW_CHARS = 40


def add_json_argument(parser: Any) -> None:
    parser.add_argument(
        "--json", action="store_true", help="print machine-readable JSON instead of a table"
    )


def error(message: str, status: int) -> int:
    """Print `retryd: message` on stderr; return status, so callers `return error(...)`."""
    print(f"retryd: {message}", file=sys.stderr)
    return status


def with_notes(message: str, failure: BaseException) -> str:
    """message, then the notes a command added to failure (what a bulk put left written), on
    the same line: a CLI error is one line."""
    return "; ".join([message, *getattr(failure, "__notes__", ())])


def iso(moment: datetime | None) -> str | None:
    """An instant as ISO 8601 in UTC ('2024-05-01T12:00:00.000123Z'); None stays None."""
    if moment is None:
        return None
    return moment.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def record_json(record: Record) -> dict[str, Any]:
    """A record as a JSON-ready object; `data` base64-encoded, the state by name."""
    return {
        "task_id": record.task_id,
        "type": record.type,
        "state": str(record.state),
        "failed_attempts": record.failed_attempts,
        "next_attempt_at": iso(record.next_attempt_at),
        "created_at": iso(record.created_at),
        "reference_id": record.reference_id,
        "data": base64.b64encode(record.data).decode("ascii"),
        "id": record.id,
        "version": record.version,
    }


def failure_json(failure: Failure | None) -> dict[str, Any] | None:
    """A task's last failure as a JSON-ready object (None when it never failed)."""
    if failure is None:
        return None
    return {
        "kind": failure.kind,
        "message": failure.message,
        "at": iso(failure.at),
        "failed_attempts": failure.failed_attempts,
    }


def failure_text(failure: Failure | None, limit: int | None = None) -> str | None:
    """'Kind: message', cut to limit characters when given."""
    if failure is None:
        return None
    text = f"{failure.kind}: {failure.message}" if failure.message else failure.kind
    if limit is not None and len(text) > limit:
        return text[: limit - 1] + "…"
    return text


def print_json(value: Any, out: TextIO | None = None) -> None:
    print(json.dumps(value, ensure_ascii=False), file=out or sys.stdout)


def data_preview(data: bytes, limit: int = PREVIEW_CHARS) -> str:
    """Data as text when it is printable UTF-8, else its size; cut to limit characters."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return f"<{len(data)} bytes, binary>"
    if not text.isprintable():
        return f"<{len(data)} bytes, binary>"
    return text if len(text) <= limit else text[: limit - 1] + "…"


def record_lines(record: Record) -> list[str]:
    """A record as `field: value` lines, for `get` and `retry`."""
    fields: Mapping[str, object] = {
        "task_id": record.task_id,
        "type": record.type,
        "state": record.state,
        "failed_attempts": record.failed_attempts,
        "next_attempt_at": iso(record.next_attempt_at),
        "created_at": iso(record.created_at),
        "reference_id": "-" if record.reference_id is None else record.reference_id,
        "data": data_preview(record.data, limit=200),
        "id": record.id,
        "version": record.version,
    }
    width = max(map(len, fields))
    return [f"{name + ':':<{width + 1}} {value}" for name, value in fields.items()]


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """Left-aligned columns separated by two spaces; numbers right-aligned."""
    cells = [[str(h) for h in headers], *([_cell(v) for v in row] for row in rows)]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    numeric = [bool(rows) and all(_is_number(r[i]) for r in rows) for i in range(len(headers))]
    lines = []
    for row in cells:
        padded = [
            cell.rjust(width) if is_number else cell.ljust(width)
            for cell, width, is_number in zip(row, widths, numeric, strict=True)
        ]
        lines.append("  ".join(padded).rstrip())
    return "\n".join(lines)


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _cell(value: object) -> str:
    return "-" if value is None else str(value)


def print_record(
    record: Record, *, as_json: bool, last_error: Failure | None = None, with_error: bool = False
) -> None:
    """One record on stdout: a JSON object, or one aligned line per field; with_error, its
    last failure too (`last_error`, null or an object)."""
    if as_json:
        shown = record_json(record)
        if with_error:
            shown["last_error"] = failure_json(last_error)
        print_json(shown)
        return
    lines = record_lines(record)
    if with_error:
        lines += _failure_lines(last_error)
    print("\n".join(lines))


def _failure_lines(failure: Failure | None) -> list[str]:
    if failure is None:
        return ["last_error:      -"]
    return [
        f"last_error:      {failure_text(failure)}",
        f"last_error_at:   {iso(failure.at)} (failed_attempts {failure.failed_attempts})",
    ]
