"""OpenTelemetry (the `otel` extra): one span per task run, linked to the producer's span.

Real workers in burst mode on the real Redis, spans collected by the OpenTelemetry SDK's
in-memory exporter on a TracerProvider of the test's own (the global one is left alone).
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from store import Record, RedisStore
from tests.worker.burst import burst, config
from worker import Permanent, Registry, handler
from worker.tracing import TaskTracer, producer_context, trace_context_from

TYPE, PLAIN = 7, 8


@pytest.fixture
def spans(monkeypatch: pytest.MonkeyPatch) -> Iterator[InMemorySpanExporter]:
    """Workers made in the test trace to an in-memory exporter; no extractor unless set."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    monkeypatch.setattr("worker.loop.task_tracer", lambda: TaskTracer(provider))
    monkeypatch.setattr("worker.tracing._extractor", None)
    yield exporter
    provider.shutdown()


def by_task(exporter: InMemorySpanExporter) -> dict[str, list[ReadableSpan]]:
    runs: dict[str, list[ReadableSpan]] = {}
    for span in exporter.get_finished_spans():
        assert span.attributes is not None
        runs.setdefault(str(span.attributes["retryd.task.id"]), []).append(span)
    return runs


def registry(current_spans: dict[str, int] | None = None) -> Registry:
    """Type 7: data 'permanent' fails for good, 'flaky' fails its first run; each run notes the
    span id current inside it in current_spans."""
    reg = Registry()

    @handler(type=TYPE, registry=reg)
    async def run(record: Record) -> None:
        if current_spans is not None:
            current_spans[record.task_id] = trace.get_current_span().get_span_context().span_id
        if record.data == b"permanent":
            raise Permanent("malformed")
        if record.data == b"flaky" and record.failed_attempts == 0:
            raise RuntimeError("first try fails")

    @handler(type=PLAIN, registry=reg)
    def plain(record: Record) -> None:  # runs in a thread: its span starts and ends on the loop
        return None

    return reg


async def test_each_run_is_one_consumer_span_with_type_id_attempt_and_outcome(
    redis_store: RedisStore, spans: InMemorySpanExporter
) -> None:
    await redis_store.put_all(
        Record("ok", TYPE, b"fine"),
        Record("flaky", TYPE, b"flaky"),
        Record("bad", TYPE, b"permanent"),
        Record("plain", PLAIN, b"x"),
    )
    current_spans: dict[str, int] = {}
    await burst(redis_store, registry(current_spans), config())
    runs = by_task(spans)
    assert sorted(runs) == ["bad", "flaky", "ok", "plain"]
    assert [len(runs[t]) for t in ("ok", "flaky", "bad", "plain")] == [1, 2, 1, 1]
    outcomes = {
        (t, s.attributes["retryd.task.attempt"], s.attributes["retryd.task.outcome"])  # type: ignore[index]
        for t, ss in runs.items()
        for s in ss
    }
    assert outcomes == {
        ("ok", 1, "confirmed"),
        ("flaky", 1, "retried"),
        ("flaky", 2, "confirmed"),
        ("bad", 1, "failed"),
        ("plain", 1, "confirmed"),
    }
    for span in spans.get_finished_spans():
        assert span.attributes is not None
        task_type = span.attributes["retryd.task.type"]
        assert task_type == (PLAIN if span.attributes["retryd.task.id"] == "plain" else TYPE)
        assert span.name == f"retryd process type {task_type}"
        assert span.kind == SpanKind.CONSUMER
        assert span.attributes["messaging.system"] == "retryd"
        assert not span.links  # no producer context registered
    (bad,) = runs["bad"]
    assert bad.status.status_code == StatusCode.ERROR
    assert bad.status.description == "Permanent: malformed"
    assert [e.name for e in bad.events] == ["exception"]
    (ok,) = runs["ok"]
    assert ok.status.status_code == StatusCode.UNSET
    assert ok.context is not None
    assert current_spans["ok"] == ok.context.span_id  # the handler's own spans nest under it


async def test_a_run_links_to_the_producers_span_from_the_carrier_in_its_data(
    redis_store: RedisStore, spans: InMemorySpanExporter
) -> None:
    """The producer puts producer_context() in its data; the registered extractor reads it."""
    producer = TracerProvider().get_tracer("producer")
    with producer.start_as_current_span("put invoice") as put_span:
        carrier = producer_context()
    assert "traceparent" in carrier

    @trace_context_from
    def from_data(record: Record) -> dict[str, str] | None:
        document = json.loads(record.data)
        return document.get("trace") if isinstance(document, dict) else None

    await redis_store.put_all(
        Record("linked", TYPE, json.dumps({"trace": carrier}).encode()),
        Record("unlinked", TYPE, b"{}"),
        Record("garbage", TYPE, b"not json"),  # the extractor raises: the run goes on, no link
    )
    await burst(redis_store, registry(), config())
    runs = by_task(spans)
    (linked,) = runs["linked"]
    (link,) = linked.links
    assert link.context.trace_id == put_span.get_span_context().trace_id
    assert link.context.span_id == put_span.get_span_context().span_id
    assert not runs["unlinked"][0].links
    assert not runs["garbage"][0].links
    assert runs["garbage"][0].attributes["retryd.task.outcome"] == "confirmed"  # type: ignore[index]


def test_without_the_extra_nothing_of_opentelemetry_is_imported() -> None:
    """opentelemetry made unimportable: the worker loads, has no tracer, and runs no OTel code."""
    code = (
        "import sys; sys.modules['opentelemetry'] = None\n"
        "import worker.loop, worker.tracing\n"
        "assert worker.tracing.task_tracer() is None\n"
        "assert worker.tracing.producer_context() == {}\n"
        "assert not [m for m in sys.modules if m.startswith('opentelemetry.')]\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr


def test_with_the_api_but_no_provider_set_no_span_is_made() -> None:
    """The API alone records nothing: the worker makes no spans until a provider is set."""
    code = (
        "import worker.tracing\n"
        "assert worker.tracing.task_tracer() is None\n"
        "from opentelemetry import trace\n"
        "from opentelemetry.sdk.trace import TracerProvider\n"
        "trace.set_tracer_provider(TracerProvider())\n"
        "assert worker.tracing.task_tracer() is not None\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
