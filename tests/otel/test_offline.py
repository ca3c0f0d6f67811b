"""The offline export: the same spans as live, from the log alone, as OTLP/JSON a collector's decoder accepts."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from conftest import Otel
from google.protobuf import json_format
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from otel_scenario import lookup, refund

from delite import Agent, DataDir, ScriptedProvider, delegate, telemetry, tool
from delite.errors import ExecutionNotFoundError, UsageError
from delite.providers import call
from delite.store import MemoryStore
from delite_cli.main import cli


def build(data_dir: Path | None = None, store: MemoryStore | None = None) -> Agent:
    """A lead agent whose sub-agent looks something up and then needs an approval for a refund."""
    child = Agent(
        data_dir,
        store=store,
        provider=ScriptedProvider([call("lookup", q="order"), call("refund", order_id=3), "refunded 3"]),
        tools=[lookup, refund],
        agent_id="clerk",
    )

    @tool(description="Hand the case to the clerk")
    def handle(case: str) -> str:
        return delegate(child, case).answer

    model = ScriptedProvider([call("handle", case="broken mug"), "all done"])
    return Agent(data_dir, store=store, provider=model, tools=[handle], agent_id="lead")


def run_scenario(agent: Agent) -> str:
    first = agent.run("A customer's mug arrived broken")
    assert first.status == "waiting_approval"
    done = agent.submit_approval(first.execution_id, approved=True)
    assert done.answer == "all done"
    return first.execution_id


def value(v: dict[str, Any]) -> Any:
    if "arrayValue" in v:
        return [value(x) for x in v["arrayValue"].get("values", [])]
    if "intValue" in v:
        return int(v["intValue"])
    return next(iter(v.values()))


def offline_view(doc: dict[str, Any]) -> list[tuple[Any, ...]]:
    spans = doc["resourceSpans"][0]["scopeSpans"][0]["spans"]
    by_id = {s["spanId"]: s for s in spans}
    out = []
    for s in spans:
        parent = by_id[s["parentSpanId"]]["name"] if "parentSpanId" in s else None
        out.append(
            (
                s["name"],
                int(s["startTimeUnixNano"]),
                int(s["endTimeUnixNano"]),
                {a["key"]: value(a["value"]) for a in s["attributes"]},
                [
                    (e["name"], int(e["timeUnixNano"]), {a["key"]: value(a["value"]) for a in e["attributes"]})
                    for e in s.get("events", [])
                ],
                parent,
                len(s.get("links", [])),
                s["status"].get("code", 0) == 2,
            )
        )
    return sorted(out, key=lambda t: (t[1], t[0], t[2]))


def live_view(otel: Otel) -> list[tuple[Any, ...]]:
    def plain(attrs: Any) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dict(attrs or {}).items()}

    out = []
    for s in otel.exporter.get_finished_spans():
        out.append(
            (
                s.name,
                s.start_time,
                s.end_time,
                plain(s.attributes),
                [(e.name, e.timestamp, plain(e.attributes)) for e in s.events],
                otel.parent_name(s),
                len(s.links),
                s.status.status_code.name == "ERROR",
            )
        )
    return sorted(out, key=lambda t: (t[1], t[0], t[2]))


def test_the_offline_export_equals_the_live_spans(otel: Otel, data_dir: Path) -> None:
    with build(data_dir) as agent:
        eid = run_scenario(agent)
    live = live_view(otel)
    offline = offline_view(telemetry.otlp_json(data_dir, eid))
    assert [t[0] for t in offline] == [t[0] for t in live]
    assert offline == live
    assert {"delite.record clerk", "invoke_agent clerk", "execute_tool refund"} <= {t[0] for t in live}


def test_the_same_spans_from_a_memory_store(otel: Otel) -> None:
    store = MemoryStore()
    eid = run_scenario(build(store=store))
    assert offline_view(telemetry.otlp_json(store, eid)) == live_view(otel)


def test_a_run_recorded_without_telemetry_exports_too(data_dir: Path) -> None:
    with build(data_dir) as agent:
        eid = run_scenario(agent)
    doc = telemetry.otlp_json(DataDir(data_dir), eid)
    names = [t[0] for t in offline_view(doc)]
    assert names.count("invoke_agent lead") == 2 and names.count("invoke_agent clerk") == 2
    resumed = [t for t in offline_view(doc) if t[0] == "invoke_agent lead"][1]
    assert resumed[3]["delite.segment.resumed"] is True and resumed[6] == 1  # linked to the first advance
    assert telemetry.otlp_json(data_dir, eid) == doc  # deterministic ids: the same document every time
    only = telemetry.otlp_json(data_dir, eid, sub_agents=False)
    assert "invoke_agent clerk" not in [t[0] for t in offline_view(only)]


def test_the_document_decodes_as_an_export_request(data_dir: Path) -> None:
    with build(data_dir) as agent:
        eid = run_scenario(agent)
    doc = telemetry.otlp_json(data_dir, eid, capture_content=True)
    # OTLP/JSON writes ids as hex; the protobuf JSON mapping wants base64: convert, then let protobuf judge.
    for span in doc["resourceSpans"][0]["scopeSpans"][0]["spans"]:
        for field in ("traceId", "spanId", "parentSpanId"):
            if field in span:
                assert len(span[field]) in (16, 32)
                span[field] = base64.b64encode(bytes.fromhex(span[field])).decode()
        for link in span.get("links", []):
            link["traceId"] = base64.b64encode(bytes.fromhex(link["traceId"])).decode()
            link["spanId"] = base64.b64encode(bytes.fromhex(link["spanId"])).decode()
    request = json_format.ParseDict(doc, ExportTraceServiceRequest())
    spans = request.resource_spans[0].scope_spans[0].spans
    assert len(spans) == len(doc["resourceSpans"][0]["scopeSpans"][0]["spans"]) > 8
    assert all(s.end_time_unix_nano >= s.start_time_unix_nano > 1_600_000_000 * 10**9 for s in spans)
    assert request.resource_spans[0].scope_spans[0].scope.name == "delite"


def test_the_cli_writes_the_same_document(data_dir: Path) -> None:
    with build(data_dir) as agent:
        eid = run_scenario(agent)
    result = CliRunner().invoke(cli, ["export", eid[-6:], "--data-dir", str(data_dir), "--format", "otlp-json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output) == telemetry.otlp_json(data_dir, eid)


def test_bad_input(data_dir: Path) -> None:
    with pytest.raises(ExecutionNotFoundError):
        telemetry.otlp_json(MemoryStore(), "nope")
    with pytest.raises(UsageError):
        telemetry.otlp_json(42, "x")  # type: ignore[arg-type]
    with pytest.raises(UsageError):
        telemetry.otlp_json(data_dir, "x", capture_content="no")  # type: ignore[arg-type]


def test_the_scenario_covers_every_kind_of_span(otel: Otel, data_dir: Path) -> None:
    with build(data_dir) as agent:
        run_scenario(agent)
    tree = [(t[0], t[5]) for t in live_view(otel)]
    assert tree == [
        ("invoke_agent lead", None),
        ("chat scripted-1", "invoke_agent lead"),
        ("execute_tool handle", "invoke_agent lead"),
        ("invoke_agent clerk", "execute_tool handle"),
        ("chat scripted-1", "invoke_agent clerk"),
        ("execute_tool lookup", "invoke_agent clerk"),
        ("chat scripted-1", "invoke_agent clerk"),
        ("delite.record clerk", None),  # the approval, recorded in the clerk's log through the lead
        ("invoke_agent lead", None),
        ("execute_tool handle", "invoke_agent lead"),
        ("invoke_agent clerk", "execute_tool handle"),
        ("execute_tool refund", "invoke_agent clerk"),
        ("chat scripted-1", "invoke_agent clerk"),
        ("chat scripted-1", "invoke_agent lead"),
    ]


def test_offline_equals_live_with_drift_a_rejection_and_an_answer_recorded_apart(otel: Otel, data_dir: Path) -> None:
    first = Agent(data_dir, provider=ScriptedProvider([call("refund", order_id=1), "no"]), tools=[refund], agent_id="r")
    started = first.run("go")
    first.decide(started.execution_id, {started.suspend_reason.confirmation_id: False}, advance=False)  # type: ignore[union-attr]
    drifted = Agent(
        data_dir,
        provider=ScriptedProvider([call("refund", order_id=1), "no"]),
        tools=[refund],
        agent_id="r",
        prompt="new prompt",
        on_drift="allow",
    )
    done = drifted.resume(started.execution_id)
    assert done.status == "completed"
    live = live_view(otel)
    assert [t[0] for t in live] == [
        "invoke_agent r",
        "chat scripted-1",
        "delite.record r",
        "invoke_agent r",
        "chat scripted-1",
    ]
    assert "delite.drift_accepted" in [e[0] for e in live[3][4]]
    assert offline_view(telemetry.otlp_json(data_dir, started.execution_id)) == live
    first.close()
    drifted.close()
