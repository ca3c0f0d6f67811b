from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from delite import telemetry


@dataclass
class Otel:
    exporter: InMemorySpanExporter
    metrics: InMemoryMetricReader
    tracer_provider: TracerProvider
    instrumentation: telemetry.Instrumentation

    def spans(self) -> list[ReadableSpan]:
        return sorted(self.exporter.get_finished_spans(), key=lambda s: (s.start_time or 0, s.name))

    def names(self) -> list[str]:
        return [s.name for s in self.spans()]

    def parent_name(self, span: ReadableSpan) -> str | None:
        if span.parent is None:
            return None
        by_id = {s.context.span_id: s for s in self.exporter.get_finished_spans() if s.context is not None}
        parent = by_id.get(span.parent.span_id)
        return parent.name if parent is not None else "<not exported>"


def make_otel(**options: object) -> Otel:
    exporter = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    reader = InMemoryMetricReader()
    meter_provider = MeterProvider(metric_readers=[reader])
    inst = telemetry.instrument(tracer_provider=tracer_provider, meter_provider=meter_provider, **options)  # type: ignore[arg-type]
    return Otel(exporter, reader, tracer_provider, inst)


@pytest.fixture
def otel(monkeypatch: pytest.MonkeyPatch) -> Iterator[Otel]:
    monkeypatch.delenv("OTEL_SEMCONV_STABILITY_OPT_IN", raising=False)
    monkeypatch.delenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", raising=False)
    o = make_otel()
    yield o
    telemetry.uninstrument()


@pytest.fixture(autouse=True)
def _off_after() -> Iterator[None]:
    yield
    telemetry.uninstrument()
