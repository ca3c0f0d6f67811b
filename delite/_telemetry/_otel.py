"""The OpenTelemetry side of the live observer: a sink on the tracing API and a meter on the metrics API.

Only the API (``opentelemetry-api``) is used: the application picks the SDK and the exporters; without an SDK
every call here is a no-op. Importing this module imports ``opentelemetry``, so only
:func:`delite.telemetry.instrument` does, and only when the package is installed.
"""

from __future__ import annotations

from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import metrics, trace
from opentelemetry.trace import Link, SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from delite._telemetry import _names as n
from delite._telemetry._projection import Attributes, SpanStart, to_ns
from delite._version import __version__

__all__ = ["OtelMeter", "OtelSink"]

_PROPAGATOR = TraceContextTextMapPropagator()


def _clean(attributes: Attributes) -> dict[str, Any]:
    """Attributes as the API takes them (None dropped; lists as lists of one type)."""
    return {k: v for k, v in attributes.items() if v is not None}


class OtelSink:
    """Spans on an OpenTelemetry tracer (the ``LiveSink`` protocol of :mod:`delite._telemetry._observer`)."""

    def __init__(self, tracer_provider: Any = None, schema_url: str | None = None) -> None:
        """Get delite's tracer from ``tracer_provider`` (default: the global one, even one set later)."""
        self._provider = tracer_provider
        self._schema_url = schema_url
        self._tracer: Any = None
        self.spans: dict[str, Any] = {}
        self.tools: dict[tuple[str, str], Any] = {}

    def _get_tracer(self) -> Any:
        # Without a provider this is the API's proxy tracer, which follows a global provider set later.
        if self._tracer is None:
            self._tracer = trace.get_tracer("delite", __version__, self._provider, schema_url=self._schema_url)
        return self._tracer

    def start(self, span: SpanStart) -> None:
        """Start the span with its recorded start time, under its parent (or the caller's current span)."""
        context = None
        if span.parent is not None and span.parent in self.spans:
            context = trace.set_span_in_context(self.spans[span.parent])
        elif span.delegated_by is not None and span.delegated_by in self.tools:
            context = trace.set_span_in_context(self.tools[span.delegated_by])
        elif span.caller is not None:
            context = span.caller  # type: ignore[assignment]
        links = []
        if span.link:
            linked = trace.get_current_span(_PROPAGATOR.extract(span.link)).get_span_context()
            if linked.is_valid:
                links.append(Link(linked))
        started = self._get_tracer().start_span(
            span.name,
            context=context,
            kind=SpanKind.CLIENT if span.client else SpanKind.INTERNAL,
            attributes=_clean(span.attributes),
            links=links,
            start_time=to_ns(span.start),
        )
        self.spans[span.key] = started
        if span.call is not None:
            self.tools[span.call] = started

    def event(self, key: str, name: str, at: float, attributes: Attributes) -> None:
        """Add the event at its recorded time."""
        span = self.spans.get(key)
        if span is not None:
            span.add_event(name, _clean(attributes), timestamp=to_ns(at))

    def end(self, key: str, at: float, attributes: Attributes, error: str | None) -> None:
        """Set the final attributes and status, and end the span at its recorded time."""
        span = self.spans.pop(key, None)
        if span is None:
            return
        self._forget_tool(span)
        span.set_attributes(_clean(attributes))
        if error is not None:
            span.set_attribute(n.ERROR_TYPE, error)
            span.set_status(Status(StatusCode.ERROR, error))
        span.end(end_time=to_ns(at))

    def context(self, key: str) -> dict[str, str] | None:
        """The span's W3C trace context (``traceparent``, maybe ``tracestate``)."""
        span = self.spans.get(key)
        if span is None or not span.get_span_context().is_valid:
            return None
        carrier: dict[str, str] = {}
        _PROPAGATOR.inject(carrier, context=trace.set_span_in_context(span))
        return carrier or None

    def capture(self) -> object | None:
        """The current OpenTelemetry context (the claim's caller's)."""
        return otel_context.get_current()

    def attach(self, context: object) -> object | None:
        """Make ``context`` current; the token to detach it."""
        return otel_context.attach(context)  # type: ignore[arg-type]

    def detach(self, token: object) -> None:
        """Undo :meth:`attach`."""
        otel_context.detach(token)  # type: ignore[arg-type, unused-ignore]  # typed Token in newer releases

    def discard(self, key: str) -> None:
        """Forget the span without ending it: it is never exported."""
        span = self.spans.pop(key, None)
        if span is not None:
            self._forget_tool(span)

    def _forget_tool(self, span: Any) -> None:
        for call, open_span in list(self.tools.items()):
            if open_span is span:
                del self.tools[call]


class OtelMeter:
    """The conventions' client metrics and delite's own, on an OpenTelemetry meter (the ``Meter`` protocol)."""

    def __init__(self, meter_provider: Any = None, schema_url: str | None = None) -> None:
        """Create the instruments on delite's meter from ``meter_provider`` (default: the global one)."""
        meter = metrics.get_meter("delite", __version__, meter_provider, schema_url=schema_url)
        self._histograms = {
            n.METRIC_TOKEN_USAGE: meter.create_histogram(
                n.METRIC_TOKEN_USAGE, unit="{token}", description="Tokens used per model call, by kind"
            ),
            n.METRIC_OPERATION_DURATION: meter.create_histogram(
                n.METRIC_OPERATION_DURATION, unit="s", description="Duration of each model call"
            ),
        }
        self._counters: dict[str, Any] = {
            n.METRIC_EXECUTIONS: meter.create_counter(
                n.METRIC_EXECUTIONS, unit="{execution}", description="Executions reaching each status"
            ),
            n.METRIC_SUSPENSIONS_WAITING: meter.create_up_down_counter(
                n.METRIC_SUSPENSIONS_WAITING, unit="{execution}", description="Suspended executions waiting"
            ),
            n.METRIC_IN_DOUBT: meter.create_counter(
                n.METRIC_IN_DOUBT, unit="{call}", description="In-doubt tool calls (run again, or suspended)"
            ),
            n.METRIC_COST: meter.create_counter(n.METRIC_COST, unit="USD", description="Model cost, in dollars"),
        }

    def add(self, metric: str, value: float, attributes: Attributes) -> None:
        """Add to the counter ``metric``."""
        self._counters[metric].add(value, _clean(attributes))

    def record(self, metric: str, value: float, attributes: Attributes) -> None:
        """Record in the histogram ``metric``."""
        self._histograms[metric].record(value, _clean(attributes))
