"""Optional OpenTelemetry: one span per task run, linked to the producer's span when known.

With the `otel` extra (opentelemetry-api) installed, each handler run is a CONSUMER span named
`retryd process type N` carrying the task's type, id, attempt and outcome; whether it is recorded
and where it goes is OpenTelemetry's own configuration (an SDK TracerProvider, or
`opentelemetry-instrument retryd run` with the OTEL_* variables): without one, the API's
no-op tracer records nothing. Without the extra, this module imports nothing of OpenTelemetry
and the worker's hot path pays one `is None` test per run.

A Record has no headers, so a producer that wants its span linked puts `producer_context()`
(the W3C `traceparent` carrier) into its own data format, and registers with
`@trace_context_from` the function that reads it back out of a record. This module must never
make tracing a requirement of the worker, nor let a tracing failure fail a task.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping
from typing import Any

import structlog

from store import Record
from worker.metrics import build_version
from worker.outcomes import Outcome

try:
    from opentelemetry import propagate, trace
    from opentelemetry.trace import Link, SpanKind, StatusCode
except ImportError:  # the `otel` extra is not installed: tracing is off
    trace = None  # type: ignore[assignment]

__all__ = ["TaskTracer", "producer_context", "task_tracer", "trace_context_from"]

log = structlog.get_logger("retryd.tracing")

ContextExtractor = Callable[[Record], Mapping[str, str] | None]
_extractor: ContextExtractor | None = None


def trace_context_from(extractor: ContextExtractor) -> ContextExtractor:
    """Register (as a decorator) how to read a producer's trace carrier out of a record."""
    global _extractor
    _extractor = extractor
    return extractor


def producer_context() -> dict[str, str]:
    """The current span's context as a W3C carrier ({'traceparent': ...}); {} without OTel."""
    carrier: dict[str, str] = {}
    if trace is not None:
        propagate.inject(carrier)
    return carrier


class TaskTracer:
    """Starts and ends the span of each task run; built only when opentelemetry-api imports.

    Not a context manager: a plain handler's run starts on the event loop, goes to a thread and
    ends back on the loop, so the span is started at the claim's start and ended with the outcome.
    """

    def __init__(self, provider: Any = None) -> None:
        """provider: a TracerProvider (tests pass their own); None: the global one."""
        assert trace is not None
        self._tracer = trace.get_tracer("retryd", build_version(), tracer_provider=provider)

    def start(self, record: Record) -> Any:
        """The started span of one run of record (not made current: see activate)."""
        attributes: dict[str, str | int] = {
            "messaging.system": "retryd",
            "messaging.operation.type": "process",
            "messaging.message.id": record.task_id,
            "retryd.task.id": record.task_id,
            "retryd.task.type": record.type,
            "retryd.task.attempt": record.failed_attempts + 1,
        }
        return self._tracer.start_span(
            f"retryd process type {record.type}",
            kind=SpanKind.CONSUMER,
            links=_links(record),
            attributes=attributes,
        )

    def activate(self, span: Any) -> contextlib.AbstractContextManager[Any]:
        """span made current, so an async handler's own spans become its children."""
        return trace.use_span(
            span, end_on_exit=False, record_exception=False, set_status_on_exception=False
        )

    def end(self, span: Any, outcome: Outcome, failure: BaseException | None) -> None:
        span.set_attribute("retryd.task.outcome", outcome.value)
        if failure is not None:
            span.record_exception(failure)
            span.set_status(StatusCode.ERROR, f"{type(failure).__name__}: {failure}")
        span.end()


def _links(record: Record) -> list[Any]:
    """A link to the producer's span, when an extractor finds a valid carrier in the record."""
    if _extractor is None:
        return []
    try:
        carrier = _extractor(record)
    except Exception as error:  # a broken extractor costs the link, never the task
        log.warning("trace context extractor failed", task_id=record.task_id, error=repr(error))
        return []
    if not carrier:
        return []
    context = trace.get_current_span(propagate.extract(dict(carrier))).get_span_context()
    return [Link(context)] if context.is_valid else []


def task_tracer() -> TaskTracer | None:
    """A TaskTracer when opentelemetry-api is installed and a TracerProvider is set, else None
    (tracing off, no cost).

    Decided when the worker starts, after the handler modules were imported: with no provider
    set by then (in a handler module, or by `opentelemetry-instrument`), the API's tracer would
    record nothing, yet a span per run would cost the worker about a tenth of its time.
    """
    provider = trace.get_tracer_provider() if trace is not None else None
    if provider is None or isinstance(
        provider, trace.ProxyTracerProvider | trace.NoOpTracerProvider
    ):
        return None
    return TaskTracer()
