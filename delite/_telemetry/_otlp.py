"""The offline export: a recorded execution (and its sub-agents) as OTLP/JSON that a collector accepts.

The same :class:`~delite._telemetry._projection.Projector` that drives the live spans runs over the whole log
here, so the spans have the same names, attributes, events and times (the records' own). Only the ids differ:
they are derived from the execution id and the record's sequence number (a hash), so exporting the same log
twice gives the same document. Each execution's later advances link to its first one, as live.

The encoding follows the OTLP/JSON rules of the OpenTelemetry protocol specification (trace and span ids as
hex strings, 64-bit integers as decimal strings, enums as numbers, attributes as ``AnyValue`` objects),
written here rather than depending on ``opentelemetry-proto`` (and so ``protobuf``) for one JSON document.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from delite._telemetry._names import ERROR_TYPE, Names
from delite._telemetry._projection import Attributes, Options, Projector, SpanStart, to_ns
from delite._version import __version__
from delite.log.records import AnyRecord

__all__ = ["SCHEMA_URL", "OfflineSink", "encode", "project"]

SCHEMA_URL = "https://opentelemetry.io/schemas/{version}"
_INTERNAL, _CLIENT = 1, 3  # Span.SpanKind
_STATUS_ERROR = 2  # Status.StatusCode


@dataclass
class _Span:
    start: SpanStart
    end: float | None = None
    events: list[tuple[str, float, Attributes]] = field(default_factory=list)
    error: str | None = None


class OfflineSink:
    """Collects a projection's spans in memory (the :class:`~delite._telemetry._projection.Sink` protocol)."""

    def __init__(self) -> None:
        """Nothing collected yet."""
        self.spans: dict[str, _Span] = {}

    def start(self, span: SpanStart) -> None:
        """Keep the span."""
        self.spans[span.key] = _Span(span)

    def event(self, key: str, name: str, at: float, attributes: Attributes) -> None:
        """Keep the event."""
        self.spans[key].events.append((name, at, dict(attributes)))

    def end(self, key: str, at: float, attributes: Attributes, error: str | None) -> None:
        """Keep the end time, the final attributes and the error."""
        span = self.spans[key]
        span.start.attributes.update(attributes)
        if error is not None:
            span.start.attributes[ERROR_TYPE] = error
        span.end = at
        span.error = error


def project(
    read: Callable[[str], Sequence[AnyRecord]],
    children: Callable[[str], Sequence[str]],
    execution_id: str,
    options: Options,
) -> OfflineSink:
    """Project ``execution_id`` and, recursively, the sub-agents it started (``children``), into one sink."""
    sink = OfflineSink()
    todo, seen = [execution_id], set()
    while todo:
        eid = todo.pop(0)
        if eid in seen:
            continue
        seen.add(eid)
        projector = Projector(sink, options)
        for seq, record in enumerate(read(eid), start=1):
            projector.feed(seq, record)
        projector.close()
        todo.extend(children(eid))
    return sink


def _hex(text: str, length: int) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:length]


def _value(v: Any) -> dict[str, Any]:
    if isinstance(v, bool):
        return {"boolValue": v}
    if isinstance(v, int):
        return {"intValue": str(v)}
    if isinstance(v, float):
        return {"doubleValue": v}
    if isinstance(v, list | tuple):
        return {"arrayValue": {"values": [_value(x) for x in v]}}
    return {"stringValue": str(v)}


def _attributes(attrs: Attributes) -> list[dict[str, Any]]:
    return [{"key": k, "value": _value(v)} for k, v in attrs.items()]


class _Ids:
    """Trace and span ids for the collected spans: parents resolved, sub-agents under their tool call."""

    def __init__(self, sink: OfflineSink) -> None:
        self.spans = sink.spans
        self.traces: dict[str, str] = {}
        self.first: dict[str, str] = {}  # execution id -> key of its first advance
        self.tools: dict[tuple[str, str], list[str]] = {}
        for key, span in self.spans.items():
            if span.start.first:
                self.first[key.rpartition("#")[0]] = key
            if span.start.call is not None:
                self.tools.setdefault(span.start.call, []).append(key)

    @staticmethod
    def span_id(key: str) -> str:
        return _hex("delite-span:" + key, 16)

    def parent(self, key: str) -> str | None:
        """The key of the span's parent, or None for a root."""
        s = self.spans[key].start
        if s.parent is not None:
            return s.parent
        if s.delegated_by is None:
            return None
        at = s.start
        best = None  # the tool call attempt that was open when the sub-agent started
        for tool_key in self.tools.get(s.delegated_by, []):
            tool = self.spans[tool_key]
            if tool.start.start <= at and (tool.end is None or at <= tool.end):
                best = tool_key
        return best

    def trace(self, key: str) -> str:
        if key not in self.traces:
            parent = self.parent(key)
            self.traces[key] = self.trace(parent) if parent is not None else _hex("delite-trace:" + key, 32)
        return self.traces[key]

    def link(self, key: str) -> str | None:
        """The key of the first advance a later advance (or a detached record) links to."""
        s = self.spans[key].start
        if s.first or s.parent is not None or s.call is not None:
            return None
        first = self.first.get(key.rpartition("#")[0])
        return first if first is not None and first != key else None


def encode(sink: OfflineSink, names: Names, *, service_name: str = "delite") -> dict[str, Any]:
    """The collected spans as an OTLP/JSON ``ExportTraceServiceRequest`` (one resource, one scope)."""
    ids = _Ids(sink)
    out: list[dict[str, Any]] = []
    for key, span in sorted(sink.spans.items(), key=lambda kv: (kv[1].start.start, kv[0])):
        s = span.start
        item: dict[str, Any] = {
            "traceId": ids.trace(key),
            "spanId": ids.span_id(key),
            "name": s.name,
            "kind": _CLIENT if s.client else _INTERNAL,
            "startTimeUnixNano": str(to_ns(s.start)),
            "endTimeUnixNano": str(to_ns(span.end if span.end is not None else s.start)),
            "attributes": _attributes(s.attributes),
        }
        parent = ids.parent(key)
        if parent is not None:
            item["parentSpanId"] = ids.span_id(parent)
        if span.events:
            item["events"] = [
                {"timeUnixNano": str(to_ns(at)), "name": name, "attributes": _attributes(attrs)}
                for name, at, attrs in span.events
            ]
        link = ids.link(key)
        if link is not None:
            item["links"] = [{"traceId": ids.trace(link), "spanId": ids.span_id(link)}]
        item["status"] = {"code": _STATUS_ERROR, "message": span.error} if span.error is not None else {}
        out.append(item)
    return {
        "resourceSpans": [
            {
                "resource": {"attributes": _attributes({"service.name": service_name})},
                "scopeSpans": [
                    {
                        "scope": {"name": "delite", "version": __version__},
                        "schemaUrl": SCHEMA_URL.format(version=names.version),
                        "spans": out,
                    }
                ],
            }
        ]
    }
