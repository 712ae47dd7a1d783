"""Runs per minute from heartbeats: deltas of each worker's counts, never a lifetime spike."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from worker.web.render import chart
from worker.web.throughput import MINUTES_KEPT, Throughput

T0 = datetime(2026, 12, 2, 10, 0, 5, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def test_a_first_beat_is_a_baseline_not_a_spike() -> None:
    throughput = Throughput()
    throughput.observe("w", at(0), {"confirmed": 1000, "failed": 5})
    assert all(m.confirmed == m.failed == 0 for m in throughput.minutes(at(0)))


def test_growth_between_beats_lands_in_the_later_beats_minute() -> None:
    throughput = Throughput()
    throughput.observe("w", at(0), {"confirmed": 10, "retried": 1})
    throughput.observe("w", at(5), {"confirmed": 17, "retried": 2, "failed": 1})
    throughput.observe("w", at(60), {"confirmed": 20, "retried": 2, "failed": 1})
    *_, before_last, last = throughput.minutes(at(60))
    assert (before_last.start, before_last.confirmed, before_last.failed) == (
        T0.replace(second=0),
        7,
        2,
    )
    assert (last.confirmed, last.failed) == (3, 0)


def test_workers_add_up_and_a_repeated_beat_counts_once() -> None:
    throughput = Throughput()
    for worker in ("a", "b"):
        throughput.observe(worker, at(0), {"confirmed": 0})
        throughput.observe(worker, at(5), {"confirmed": 4})
        throughput.observe(worker, at(5), {"confirmed": 4})
    assert throughput.minutes(at(5))[-1].confirmed == 8


def test_a_gap_starts_a_new_baseline_and_a_fall_means_a_restart() -> None:
    throughput = Throughput()
    throughput.observe("w", at(0), {"confirmed": 1})
    throughput.observe("w", at(600), {"confirmed": 500})  # unknown when those ran: not counted
    throughput.observe("w", at(605), {"confirmed": 3})  # counts fell: it restarted
    assert sum(m.confirmed for m in throughput.minutes(at(605))) == 3


def test_minutes_are_the_last_thirty_oldest_first() -> None:
    minutes = Throughput().minutes(at(0))
    assert len(minutes) == MINUTES_KEPT
    assert minutes[-1].start == T0.replace(second=0)
    assert minutes[0].start == T0.replace(second=0) - timedelta(minutes=MINUTES_KEPT - 1)


def test_chart_scales_bars_to_the_busiest_minute() -> None:
    throughput = Throughput()
    throughput.observe("w", at(0), {})
    throughput.observe("w", at(5), {"confirmed": 50, "failed": 10})
    drawn = chart(throughput.minutes(at(5)))
    assert (drawn.peak, drawn.total_confirmed, drawn.total_failed) == (50, 50, 10)
    assert (drawn.confirmed[-1].height, drawn.failed[-1].height) == (100, 20)
    assert drawn.confirmed[0].height == 0
