"""The wire path: the real OTLP/HTTP exporter sends delite's spans to a receiver on loopback."""

from __future__ import annotations

import gzip
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import ClassVar

import pytest
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from otel_scenario import crash_agent

from delite import telemetry
from delite.log.records import ExecutionStarted
from delite.store import FileStore


class Receiver(BaseHTTPRequestHandler):
    requests: ClassVar[list[ExportTraceServiceRequest]] = []
    paths: ClassVar[list[str]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        if self.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        type(self).paths.append(self.path)
        type(self).requests.append(ExportTraceServiceRequest.FromString(body))
        reply = ExportTraceServiceResponse().SerializeToString()
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)

    def log_message(self, fmt: str, *args: object) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[str]:
    Receiver.requests, Receiver.paths = [], []
    server = HTTPServer(("127.0.0.1", 0), Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1/traces"
    finally:
        server.shutdown()
        server.server_close()


def test_spans_reach_a_receiver_over_otlp_http(receiver: str, data_dir: Path) -> None:
    provider = TracerProvider(resource=Resource.create({"service.name": "shop"}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=receiver, timeout=10)))
    telemetry.instrument(tracer_provider=provider)
    with crash_agent(data_dir) as agent:
        response = agent.run("go")
    assert provider.force_flush(10_000)
    provider.shutdown()
    assert Receiver.paths and set(Receiver.paths) == {"/v1/traces"}
    spans = [
        (span, scope.scope.name)
        for request in Receiver.requests
        for rs in request.resource_spans
        for scope in rs.scope_spans
        for span in scope.spans
    ]
    names = sorted(s.name for s, _ in spans)
    assert names == sorted(
        [
            "invoke_agent payer",
            "chat scripted-1",
            "execute_tool lookup",
            "chat scripted-1",
            "execute_tool charge",
            "chat scripted-1",
        ]
    )
    assert {scope for _, scope in spans} == {"delite"}
    root = next(s for s, _ in spans if s.name == "invoke_agent payer")
    attributes = {a.key: a.value for a in root.attributes}
    assert attributes["delite.execution.id"].string_value == response.execution_id
    started = FileStore(data_dir).read(response.execution_id).records[0]
    assert isinstance(started, ExecutionStarted)
    assert root.start_time_unix_nano == round(started.at * 1e9)
    assert started.trace_context is not None and root.trace_id.hex() in started.trace_context["traceparent"]
    resource = {a.key: a.value.string_value for a in Receiver.requests[0].resource_spans[0].resource.attributes}
    assert resource["service.name"] == "shop"
