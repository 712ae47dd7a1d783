"""Templates and the small formatters they use: instants, ages and a task's data three ways.

Nothing here reads the store. Jinja autoescapes every value, so a task id or data that holds
HTML is shown as text, never run.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from worker.web.throughput import Minute

__all__ = [
    "DATA_VIEWS",
    "Chart",
    "DataView",
    "age",
    "chart",
    "data_view",
    "environment",
    "iso",
    "utc_text",
]

TEMPLATES = Path(__file__).with_name("templates")
# A task's data may be 1 MiB; its hex dump four times that. The page shows the start.
SHOWN_DATA_BYTES = 64 * 1024
DATA_VIEWS = ("text", "json", "hex")


def environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=select_autoescape(default=True, default_for_string=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(iso=iso, utc=utc_text, age=age, chart=chart)
    return env


def iso(moment: datetime | None) -> str:
    """An instant as ISO 8601 in UTC, for <time datetime> (the browser shows it in its zone)."""
    if moment is None:
        return ""
    return moment.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def utc_text(moment: datetime | None) -> str:
    """An instant as people read it, in UTC (what shows until the script puts it in theirs)."""
    if moment is None:
        return "—"
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def age(span: timedelta | None) -> str:
    """A duration, rounded to its two largest units: '3 h 12 min', '41 s'."""
    if span is None:
        return "—"
    seconds = int(span.total_seconds())
    parts: list[str] = []
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60), ("s", 1)):
        if seconds >= size or (unit == "s" and not parts):
            parts.append(f"{seconds // size} {unit}")
            seconds %= size
    return " ".join(parts[:2])


@dataclass(frozen=True, slots=True)
class DataView:
    """A task's data as one of text, JSON or hex; note says what was cut or could not be done."""

    kind: str
    body: str
    note: str | None


def data_view(data: bytes, kind: str) -> DataView:
    shown = data[:SHOWN_DATA_BYTES]
    cut = f"the first {SHOWN_DATA_BYTES} of {len(data)} bytes" if len(data) > len(shown) else None
    if kind == "hex":
        return DataView(kind, _hex_dump(shown), cut)
    if kind == "json":
        return _json_view(data, cut)
    try:
        return DataView(kind, shown.decode("utf-8"), cut)
    except UnicodeDecodeError:
        note = "not UTF-8 text: undecodable bytes are shown as �; the hex view shows them all"
        return DataView(kind, shown.decode("utf-8", errors="replace"), note)


def _json_view(data: bytes, cut: str | None) -> DataView:
    try:
        parsed = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        return DataView("json", "", f"not JSON ({type(error).__name__}: {error})")
    pretty = json.dumps(parsed, indent=2, ensure_ascii=False, sort_keys=False)
    if len(pretty) > SHOWN_DATA_BYTES:
        return DataView("json", pretty[:SHOWN_DATA_BYTES], "cut to its first 64 KiB")
    return DataView("json", pretty, cut)


def _hex_dump(data: bytes) -> str:
    """Offset, sixteen bytes in hex, and the printable ASCII of them, as hexdump -C shows."""
    lines = []
    for offset in range(0, len(data), 16):
        chunk = data[offset : offset + 16]
        hexes = " ".join(f"{b:02x}" for b in chunk)
        text = "".join(chr(b) if 32 <= b < 127 else "." for b in chunk)
        lines.append(f"{offset:08x}  {hexes:<47}  |{text}|")
    return "\n".join(lines)


CHART_HEIGHT = 100  # the SVG's drawing height for the tallest minute
BAR_WIDTH = 8  # each minute: a confirmed bar and a failed bar, side by side


@dataclass(frozen=True, slots=True)
class Bar:
    x: int
    height: int
    y: int
    count: int
    start: datetime


@dataclass(frozen=True, slots=True)
class Chart:
    """Bars for an inline SVG: heights scaled to the busiest minute."""

    confirmed: list[Bar]
    failed: list[Bar]
    width: int
    peak: int
    total_confirmed: int
    total_failed: int


def chart(minutes: list[Minute]) -> Chart:
    peak = max([m.confirmed for m in minutes] + [m.failed for m in minutes] + [1])

    def bar(x: int, count: int, start: datetime) -> Bar:
        height = round(count / peak * CHART_HEIGHT)
        return Bar(x, height, CHART_HEIGHT - height, count, start)

    step = 2 * BAR_WIDTH + 4
    confirmed = [bar(i * step, m.confirmed, m.start) for i, m in enumerate(minutes)]
    failed = [bar(i * step + BAR_WIDTH, m.failed, m.start) for i, m in enumerate(minutes)]
    return Chart(
        confirmed,
        failed,
        len(minutes) * step,
        peak,
        sum(m.confirmed for m in minutes),
        sum(m.failed for m in minutes),
    )
