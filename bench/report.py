"""Medians, the markdown table with its retryd / best peer rows, the JSON and the PNG chart."""

from __future__ import annotations

import json
import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.harness import METRICS, Metric, RunResult

__all__ = ["REFERENCES", "label", "medians", "ratios", "table", "write_chart", "write_json"]

Medians = dict[str, dict[str, float | None]]


def medians(results: Sequence[RunResult], systems: Sequence[str]) -> Medians:
    """Per system and metric, the median over the runs that produced that figure."""
    out: Medians = {}
    for name in systems:
        out[name] = {}
        for metric in METRICS:
            values = [
                v for r in results if r.system == name and (v := getattr(r, metric.key)) is not None
            ]
            out[name][metric.key] = statistics.median(values) if values else None
    return out


OURS = ("retryd", "retryd-def")  # retryd with an `async def` handler, and with a plain `def` one
# The body alone, run by the barest loop (bench/peers/bare_peer.py): the machine's floor, no peer.
REFERENCES = ("bare-loop", "bare-async")


def _best_peer(meds: Medians, metric: Metric) -> float | None:
    values = [m[metric.key] for name, m in meds.items() if name not in OURS + REFERENCES]
    present = [v for v in values if v is not None]
    if not present:
        return None
    return max(present) if metric.higher_is_better else min(present)


def ratios(meds: Medians, ours_name: str = "retryd") -> dict[str, float | None]:
    """One retryd row's median over the best peer's, per metric (above 1: better where higher
    is)."""
    out: dict[str, float | None] = {}
    ours = meds.get(ours_name, {})
    for metric in METRICS:
        best, mine = _best_peer(meds, metric), ours.get(metric.key)
        out[metric.key] = mine / best if mine is not None and best else None
    return out


def _fmt(value: float | None, key: str) -> str:
    if value is None:
        return "n/a"
    if key.endswith("_ms"):
        return f"{value:,.0f}" if abs(value) >= 10 else f"{value:,.1f}"
    return f"{value:,.0f}"


def label(name: str, versions: dict[str, str]) -> str:
    """A system's name in a table: with its version, or marked as a reference."""
    return f"{name} (reference)" if name in REFERENCES else f"{name} {versions.get(name, '')}"


def table(meds: Medians, versions: dict[str, str]) -> str:
    """The markdown table of medians, with the retryd / best peer row last."""
    arrows = [f"{m.heading} {'↑' if m.higher_is_better else '↓'}" for m in METRICS]
    lines = [
        "| system | " + " | ".join(arrows) + " |",
        "| --- | " + " | ".join("---:" for _ in METRICS) + " |",
    ]
    for name, values in meds.items():
        cells = [_fmt(values[m.key], m.key) for m in METRICS]
        lines.append(f"| {label(name, versions)} | " + " | ".join(cells) + " |")
    for ours in OURS:
        if ours in meds:
            cells = [f"{r:.2f}x" if r is not None else "n/a" for r in ratios(meds, ours).values()]
            lines.append(f"| **{ours} / best peer** | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_json(path: Path, document: dict[str, Any]) -> None:
    path.write_text(json.dumps(document, indent=2, sort_keys=False) + "\n")


def write_chart(path: Path, meds: Medians, title: str) -> None:
    """One bar panel per metric; retryd's bars stand out in red, the references in blue."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 3, figsize=(15, 8))
    names = list(meds)
    for ax, metric in zip(axes.flat, METRICS, strict=True):
        values = [meds[n][metric.key] or 0.0 for n in names]
        colours = [
            "tab:red" if n in OURS else "tab:blue" if n in REFERENCES else "tab:gray" for n in names
        ]
        bars = ax.bar(names, values, color=colours)
        ax.bar_label(
            bars, labels=[_fmt(meds[n][metric.key], metric.key) for n in names], fontsize=8
        )
        better = "higher is better" if metric.higher_is_better else "lower is better"
        ax.set_title(f"{metric.heading} ({better})", fontsize=10)
        ax.tick_params(axis="x", labelrotation=30, labelsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
