"""Live spans, metrics and log lines of real runs, read back from the SDK's in-memory exporter and reader."""

from __future__ import annotations

import asyncio
import json
import logging
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import Otel, make_otel
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from otel_scenario import approval_agent, crash_agent, lookup, priced, tree_agents

from delite import Agent, ScriptedProvider, telemetry
from delite.errors import UsageError
from delite.log.records import ExecutionStarted, ModelResponded, ToolFinished, ToolStarted
from delite.providers import call
from delite.store import FileStore

WORKER = str(Path(__file__).with_name("otel_worker.py"))


def attrs(span: Any) -> dict[str, Any]:
    return dict(span.attributes or {})


def records(data_dir: Path, eid: str) -> list[Any]:
    return FileStore(data_dir).read(eid).records


def test_span_tree_of_a_run(otel: Otel, data_dir: Path) -> None:
    model = ScriptedProvider([priced(call("lookup", q="paris"), "0.0010"), priced("It is sunny.", "0.0020")])
    with Agent(data_dir, provider=model, tools=[lookup], model="gpt-test", agent_id="weather") as agent:
        response = agent.run("Weather in Paris?")
    assert response.status == "completed"
    spans = otel.spans()
    assert [s.name for s in spans] == ["invoke_agent weather", "chat gpt-test", "execute_tool lookup", "chat gpt-test"]
    root, chat1, tool, chat2 = spans
    assert root.parent is None and root.kind is SpanKind.INTERNAL
    assert all(otel.parent_name(s) == "invoke_agent weather" for s in (chat1, tool, chat2))
    assert {s.context.trace_id for s in spans} == {root.context.trace_id}
    a = attrs(root)
    assert a["gen_ai.operation.name"] == "invoke_agent"
    assert a["gen_ai.agent.name"] == "weather"
    assert a["gen_ai.system"] == "scripted"
    assert a["delite.execution.id"] == response.execution_id == a["gen_ai.conversation.id"]
    assert a["delite.execution.status"] == "completed"
    assert a["delite.cost.usd"] == pytest.approx(0.003)
    assert a["delite.segment.resumed"] is False
    c = attrs(chat1)
    assert chat1.kind is SpanKind.CLIENT
    assert c["gen_ai.operation.name"] == "chat"
    assert c["gen_ai.request.model"] == "gpt-test"
    assert c["gen_ai.response.model"] == "scripted-1"
    assert c["gen_ai.usage.input_tokens"] == 130  # delite's disjoint buckets, summed as the conventions count
    assert c["gen_ai.usage.output_tokens"] == 20
    assert c["delite.usage.cached_input_tokens"] == 30
    assert c["gen_ai.response.finish_reasons"] == ("tool_calls",)
    assert attrs(chat2)["gen_ai.response.finish_reasons"] == ("stop",)
    assert c["delite.cost.usd"] == pytest.approx(0.001)
    t = attrs(tool)
    assert t["gen_ai.tool.name"] == "lookup" and t["gen_ai.tool.type"] == "function"
    assert t["gen_ai.tool.call.id"] == "c1.0"
    assert t["delite.tool.outcome"] == "ok"
    # the times are the records' own
    recs = records(data_dir, response.execution_id)
    started = next(r for r in recs if isinstance(r, ExecutionStarted))
    responded = [r for r in recs if isinstance(r, ModelResponded)]
    tool_start = next(r for r in recs if isinstance(r, ToolStarted))
    tool_end = next(r for r in recs if isinstance(r, ToolFinished))
    assert root.start_time == round(started.at * 1e9)
    assert root.end_time == round(recs[-1].at * 1e9)
    assert chat1.end_time == round(responded[0].at * 1e9)
    assert chat1.start_time == round((responded[0].at - responded[0].duration_ms / 1000) * 1e9)
    assert (tool.start_time, tool.end_time) == (round(tool_start.at * 1e9), round(tool_end.at * 1e9))
    # the first advance's context is in the log
    assert started.trace_context is not None
    assert started.trace_context["traceparent"].startswith(
        f"00-{root.context.trace_id:032x}-{root.context.span_id:016x}-"
    )
    assert otel.instrumentation.errors == 0


def test_a_replayed_execution_emits_nothing(otel: Otel, data_dir: Path) -> None:
    with crash_agent(data_dir) as agent:
        first = agent.run("go")
        count = len(otel.spans())
        again = agent.run("go", execution_id=first.execution_id)
        assert again.answer == first.answer
    assert count == 6  # invoke_agent, 3 chats, 2 tools
    assert len(otel.spans()) == count


def test_content_is_off_by_default_and_never_holds_idempotency_keys(otel: Otel, data_dir: Path) -> None:
    with crash_agent(data_dir) as agent:
        response = agent.run("secret question")
    values = [json.dumps(list(attrs(s).values()), default=str) for s in otel.spans()]
    assert not any(
        "gen_ai.input.messages" in attrs(s) or "gen_ai.tool.call.arguments" in attrs(s) for s in otel.spans()
    )
    assert not any("secret question" in v or "charged" in v for v in values)
    key = next(r for r in records(data_dir, response.execution_id) if isinstance(r, ToolStarted)).idempotency_key
    assert key and not any(key in v for v in values if v != response.execution_id)


def test_content_capture_is_opt_in(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "true")
    o = make_otel()
    assert o.instrumentation.capture_content
    with crash_agent(data_dir) as agent:
        response = agent.run("secret question")
    root, chat1, tool1 = o.spans()[:3]
    assert "secret question" in attrs(root)["gen_ai.input.messages"]
    assert json.loads(attrs(root)["gen_ai.output.messages"]) == [{"role": "assistant", "content": "done"}]
    assert json.loads(attrs(chat1)["gen_ai.output.messages"])[0]["parts"][0]["name"] == "lookup"
    assert json.loads(attrs(tool1)["gen_ai.tool.call.arguments"]) == {"q": "a"}
    assert json.loads(attrs(tool1)["gen_ai.tool.call.result"]) == {"q": "a", "found": True}
    keys = [r.idempotency_key for r in records(data_dir, response.execution_id) if isinstance(r, ToolStarted)]
    dumped = json.dumps([list(attrs(s).values()) for s in o.spans()], default=str)
    assert keys and not any(k in dumped for k in keys)


def test_latest_names_with_the_opt_in(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_SEMCONV_STABILITY_OPT_IN", "http, gen_ai_latest_experimental")
    o = make_otel()
    with Agent(data_dir, provider=ScriptedProvider([priced("hi", "0.1")])) as agent:
        agent.run("x")
    chat = next(s for s in o.spans() if s.name.startswith("chat"))
    a = attrs(chat)
    assert a["gen_ai.provider.name"] == "scripted" and "gen_ai.system" not in a
    assert a["gen_ai.usage.cache_read.input_tokens"] == 30
    assert o.instrumentation.semconv_version == telemetry.names.LATEST_SEMCONV_VERSION


def test_chat_spans_can_be_turned_off(data_dir: Path) -> None:
    o = make_otel(chat_spans=False)
    with crash_agent(data_dir) as agent:
        agent.run("go")
    assert o.names() == ["invoke_agent payer", "execute_tool lookup", "execute_tool charge"]
    names = {
        m.name for rm in o.metrics.get_metrics_data().resource_metrics for sm in rm.scope_metrics for m in sm.metrics
    }
    assert "gen_ai.client.token.usage" not in names


def test_a_sub_agent_nests_under_the_tool_call_that_delegated(otel: Otel, data_dir: Path) -> None:
    with tree_agents(data_dir) as agent:
        response = agent.run("go")
    assert response.answer == "parent answer"
    tree = [(s.name, otel.parent_name(s)) for s in otel.spans()]
    assert tree == [
        ("invoke_agent lead", None),
        ("chat scripted-1", "invoke_agent lead"),
        ("execute_tool research", "invoke_agent lead"),
        ("invoke_agent researcher", "execute_tool research"),
        ("chat scripted-1", "invoke_agent researcher"),
        ("execute_tool lookup", "invoke_agent researcher"),
        ("chat scripted-1", "invoke_agent researcher"),
        ("chat scripted-1", "invoke_agent lead"),
    ]
    assert len({s.context.trace_id for s in otel.spans()}) == 1
    child = otel.spans()[3]
    assert attrs(child)["delite.execution.parent_id"] == response.execution_id


def test_the_callers_span_is_the_parent(otel: Otel, data_dir: Path) -> None:
    tracer = otel.tracer_provider.get_tracer("web")
    with tracer.start_as_current_span("POST /chat") as request, crash_agent(data_dir) as agent:
        agent.run("go")
    root = next(s for s in otel.spans() if s.name == "invoke_agent payer")
    assert root.parent is not None and root.parent.span_id == request.get_span_context().span_id


def test_async_runs_emit_the_same_spans(otel: Otel, data_dir: Path) -> None:
    async def main() -> None:
        with crash_agent(data_dir) as agent:
            await agent.arun("go")

    asyncio.run(main())
    assert otel.names() == [
        "invoke_agent payer",
        "chat scripted-1",
        "execute_tool lookup",
        "chat scripted-1",
        "execute_tool charge",
        "chat scripted-1",
    ]


def test_sigkill_then_resume_in_a_new_process_reemits_nothing_and_links_to_the_first_trace(
    otel: Otel, data_dir: Path, tmp_path: Path
) -> None:
    spans_file = tmp_path / "spans.jsonl"
    killed = subprocess.run(
        [sys.executable, WORKER, str(data_dir), "crash", "job", str(spans_file)],
        env={**__import__("os").environ, "DELITE_TEST_DIE": "1"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert killed.returncode == -9, killed.stderr
    before = [json.loads(line) for line in spans_file.read_text().splitlines()]
    # what finished before the kill was exported; the advance itself never ended in that process
    assert [s["name"] for s in before] == ["chat scripted-1", "execute_tool lookup", "chat scripted-1"]
    first_trace = before[0]["trace_id"]

    with crash_agent(data_dir) as agent:
        response = agent.resume("job")
    assert response.answer == "done"
    spans = otel.spans()
    # only what the resumed advance did: the in-doubt charge again, and the last model call
    assert [s.name for s in spans] == ["invoke_agent payer", "execute_tool charge", "chat scripted-1"]
    root, tool, chat = spans
    assert attrs(root)["delite.segment.resumed"] is True
    assert [f"{link.context.trace_id:032x}" for link in root.links] == [first_trace]
    assert root.links[0].context.span_id == int(before[0]["parent_id"], 16)  # the killed process's advance
    assert attrs(tool)["delite.attempt"] == 2
    assert "delite.in_doubt_retry" in [e.name for e in root.events]
    assert attrs(chat)["delite.step"] == 3
    assert otel.instrumentation.errors == 0


def test_a_suspension_answered_from_another_process(otel: Otel, data_dir: Path, tmp_path: Path) -> None:
    spans_file = tmp_path / "spans.jsonl"
    out = subprocess.run(
        [sys.executable, WORKER, str(data_dir), "approval", "refund-1", str(spans_file)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert out.returncode == 0 and out.stdout.strip() == "waiting_approval", out.stderr
    before = [json.loads(line) for line in spans_file.read_text().splitlines()]
    assert [s["name"] for s in before] == ["chat scripted-1", "invoke_agent refunder"]
    first = before[1]
    assert "delite.suspended" in first["events"] and first["attributes"]["delite.execution.status"] == "suspended"

    with approval_agent(data_dir) as agent:
        response = agent.submit_approval("refund-1", approved=True)
    assert response.answer == "refunded"
    root, tool, chat = otel.spans()
    assert (root.name, tool.name, chat.name) == ("invoke_agent refunder", "execute_tool refund", "chat scripted-1")
    assert [(f"{link.context.trace_id:032x}", f"{link.context.span_id:016x}") for link in root.links] == [
        (first["trace_id"], first["span_id"])
    ]
    events = {e.name: dict(e.attributes or {}) for e in root.events}
    assert events["delite.decision"]["delite.decision.approved"] is True
    assert events["delite.decision"]["gen_ai.tool.name"] == "refund"
    assert "delite.completed" in events


def test_an_answer_recorded_without_continuing_is_a_record_span(otel: Otel, data_dir: Path) -> None:
    with approval_agent(data_dir) as agent:
        first = agent.run("go")
        agent.approve(first.execution_id, first.suspend_reason.confirmation_id)  # records, does not continue
    names = otel.names()
    assert names[-1] == "delite.record refunder"
    span = otel.spans()[-1]
    assert [e.name for e in span.events] == ["delite.decision"]
    assert len(span.links) == 1


def test_metrics(otel: Otel, data_dir: Path) -> None:
    with approval_agent(data_dir) as agent:
        first = agent.run("go")
        points = metric_points(otel)
        assert points["delite.suspensions.waiting"] == [({"gen_ai.agent.name": "refunder"}, 1)]
        agent.submit_approval(first.execution_id, approved=True)
    model = ScriptedProvider([priced("a", "0.25"), priced("b", "0.5")])
    with Agent(data_dir, provider=model, agent_id="priced") as agent:
        agent.run("one")
        agent.run("two")
    points = metric_points(otel)
    assert points["delite.suspensions.waiting"] == [({"gen_ai.agent.name": "refunder"}, 0)]
    statuses = {(a["gen_ai.agent.name"], a["delite.execution.status"]): v for a, v in points["delite.executions"]}
    assert statuses == {
        ("refunder", "started"): 1,
        ("refunder", "suspended"): 1,
        ("refunder", "completed"): 1,
        ("priced", "started"): 2,
        ("priced", "completed"): 2,
    }
    assert points["delite.cost"] == [({"gen_ai.agent.name": "priced"}, pytest.approx(0.5))]  # 0.25 per run
    tokens = {a["gen_ai.token.type"]: v for a, v in points["gen_ai.client.token.usage"]}
    store = FileStore(data_dir)
    usages = [
        r.usage
        for s in store.list_executions(limit=None).items
        for r in store.read(s.id).records
        if isinstance(r, ModelResponded)
    ]
    assert len(usages) == 4
    assert tokens == {
        "input": (4, sum(u.input_tokens + u.cached_input_tokens + u.cache_write_tokens for u in usages)),
        "output": (4, sum(u.output_tokens for u in usages)),
    }
    durations = points["gen_ai.client.operation.duration"]
    assert sum(count for _, (count, _) in durations) == 4


def test_in_doubt_calls_are_counted(otel: Otel, data_dir: Path, tmp_path: Path) -> None:
    killed = subprocess.run(
        [sys.executable, WORKER, str(data_dir), "crash", "job", str(tmp_path / "s.jsonl")],
        env={**__import__("os").environ, "DELITE_TEST_DIE": "1"},
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert killed.returncode == -9
    with crash_agent(data_dir) as agent:
        agent.resume("job")
    assert metric_points(otel)["delite.tool.in_doubt"] == [
        ({"gen_ai.agent.name": "payer", "gen_ai.tool.name": "charge"}, 1)
    ]


def metric_points(o: Otel) -> dict[str, list[tuple[dict[str, Any], Any]]]:
    out: dict[str, list[tuple[dict[str, Any], Any]]] = {}
    data = o.metrics.get_metrics_data()
    for rm in data.resource_metrics:
        for sm in rm.scope_metrics:
            for m in sm.metrics:
                for p in m.data.data_points:
                    value = (p.count, p.sum) if hasattr(p, "count") else p.value
                    out.setdefault(m.name, []).append((dict(p.attributes), value))
    return out


def test_one_log_line_per_step(otel: Otel, data_dir: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="delite")
    with crash_agent(data_dir) as agent:
        response = agent.run("go")
    lines = [r for r in caplog.records if r.name == "delite"]
    assert [r.delite_event for r in lines] == [  # type: ignore[attr-defined]
        "execution_started",
        "model_responded",
        "tool_finished",
        "model_responded",
        "tool_finished",
        "model_responded",
        "execution_completed",
    ]
    assert {r.execution_id for r in lines} == {response.execution_id}  # type: ignore[attr-defined]
    assert f"execution_id={response.execution_id}" in lines[1].getMessage()
    assert lines[2].delite == {
        "call_id": "c1.0",
        "tool": "lookup",
        "source": "tool",
        "error": False,
        "duration_ms": lines[2].delite["duration_ms"],
    }  # type: ignore[attr-defined]


class BoomError(RuntimeError):
    pass


class BrokenTracer:
    def start_span(self, *args: Any, **kwargs: Any) -> Any:
        raise BoomError("tracer down")

    def start_as_current_span(self, *args: Any, **kwargs: Any) -> Any:
        raise BoomError("tracer down")


class BrokenProvider:
    def get_tracer(self, *args: Any, **kwargs: Any) -> Any:
        return BrokenTracer()


class BrokenMeterProvider:
    def get_meter(self, *args: Any, **kwargs: Any) -> Any:
        raise BoomError("meter down")


def test_telemetry_that_raises_does_not_break_the_run(data_dir: Path) -> None:
    inst = telemetry.instrument(tracer_provider=BrokenProvider())
    with crash_agent(data_dir) as agent:
        response = agent.run("go")
        resumed = agent.run("go", execution_id=response.execution_id)
    assert response.answer == resumed.answer == "done"
    assert inst.errors > 0 and isinstance(inst.last_error, BoomError)
    assert FileStore(data_dir).read(response.execution_id).records[0].trace_context is None


def test_a_meter_provider_that_raises_costs_the_metrics_only(data_dir: Path) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    inst = telemetry.instrument(tracer_provider=provider, meter_provider=BrokenMeterProvider())
    assert inst.errors == 1 and isinstance(inst.last_error, BoomError)
    with crash_agent(data_dir) as agent:
        assert agent.run("go").answer == "done"
    assert len(exporter.get_finished_spans()) == 6


def test_bad_options_are_usage_errors() -> None:
    with pytest.raises(UsageError):
        telemetry.instrument(capture_content="yes")  # type: ignore[arg-type]
    with pytest.raises(UsageError):
        telemetry.instrument(chat_spans=None)  # type: ignore[arg-type]
    with pytest.raises(UsageError):
        telemetry.instrument(tracer_provider="jaeger")
    assert telemetry.instrumentation() is None


def test_uninstrument_stops_reporting(otel: Otel, data_dir: Path) -> None:
    agent = crash_agent(data_dir)
    telemetry.uninstrument()
    agent.run("go")
    assert otel.spans() == []
    assert not otel.instrumentation.active
    with crash_agent(data_dir) as fresh:  # built after: not observed at all
        fresh.run("again")
    assert otel.spans() == []
    assert trace.get_tracer_provider() is not otel.tracer_provider
    agent.close()


def test_a_status_error_on_a_failed_tool(otel: Otel, data_dir: Path) -> None:
    from delite import tool

    @tool(description="fails")
    def broken(x: int) -> str:
        raise ValueError("nope")

    model = ScriptedProvider([call("broken", x=1), "gave up"])
    with Agent(data_dir, provider=model, tools=[broken]) as agent:
        agent.run("go")
    span = next(s for s in otel.spans() if s.name == "execute_tool broken")
    assert span.status.status_code is StatusCode.ERROR
    assert attrs(span)["error.type"] == "tool_error"


def test_a_failed_execution_ends_its_span_with_an_error(otel: Otel, data_dir: Path) -> None:
    from delite.errors import ProviderError

    def model(messages: list[dict[str, Any]], tools: Any, model: Any) -> dict[str, Any]:
        raise ProviderError("the model is gone", provider="fake", retryable=False)

    with Agent(data_dir, provider=model) as agent, pytest.raises(ProviderError):
        agent.run("go")  # recorded as failed (resumable), then raised
    root = next(s for s in otel.spans() if s.name.startswith("invoke_agent"))
    assert root.status.status_code is StatusCode.ERROR
    assert attrs(root)["delite.execution.status"] == "failed"
    assert "delite.failed" in [e.name for e in root.events]
    chat = next(s for s in otel.spans() if s.name.startswith("chat"))
    assert chat.status.status_code is StatusCode.ERROR


def test_a_cancel_at_a_step_boundary_ends_the_span(otel: Otel, data_dir: Path) -> None:
    from delite import current_call, tool

    holder: list[Agent] = []

    @tool(description="asks for its own run to stop")
    def stop() -> str:
        holder[0].cancel(current_call().execution_id, reason="operator said so")  # held: recorded as a request
        return "asked"

    model = ScriptedProvider([call("stop"), "never"])
    with Agent(data_dir, provider=model, tools=[stop], agent_id="stopper") as agent:
        holder.append(agent)
        response = agent.run("go")
    assert response.status == "cancelled"
    root = next(s for s in otel.spans() if s.name == "invoke_agent stopper")
    assert attrs(root)["delite.execution.status"] == "cancelled"
    events = {e.name: dict(e.attributes or {}) for e in root.events}
    assert events["delite.cancelled"]["delite.cancel.reason"]
    assert [s.name for s in otel.spans()].count("execute_tool stop") == 1


def test_an_exception_out_of_a_tool_still_ends_every_span(otel: Otel, data_dir: Path) -> None:
    from delite import tool

    @tool(description="exits")
    def leave() -> str:
        raise SystemExit(3)

    model = ScriptedProvider([call("leave"), "never"])
    with Agent(data_dir, provider=model, tools=[leave], agent_id="leaver") as agent, pytest.raises(SystemExit):
        agent.run("go")
    names = otel.names()
    assert names[0] == "invoke_agent leaver" and "execute_tool leave" in names
    tool_span = next(s for s in otel.spans() if s.name == "execute_tool leave")
    assert attrs(tool_span)["delite.tool.outcome"] == "unfinished"
    assert attrs(otel.spans()[0])["delite.execution.status"] == "running"


def suspension_events(o: Otel) -> list[tuple[str, dict[str, Any]]]:
    root = next(s for s in o.spans() if s.name.startswith("invoke_agent"))
    return [(e.name, dict(e.attributes or {})) for e in root.events]


def test_a_contract_refusal_is_an_event(otel: Otel, data_dir: Path) -> None:
    model = ScriptedProvider([call("charge", amount=5000), "ok"])
    agent = Agent(data_dir, provider=model, tools=[__import__("otel_scenario").charge])

    @agent.contract("max-charge")
    def limit(step_name: str, args: dict[str, Any]) -> None:
        if args.get("amount", 0) > 1000:
            raise ValueError("needs a VP")

    assert agent.run("go").suspend_reason.kind == "contract"  # type: ignore[union-attr]
    names = [name for name, _ in suspension_events(otel)]
    assert names == ["delite.suspended", "delite.contract_refusal"]
    assert suspension_events(otel)[0][1]["delite.suspend.kind"] == "contract"
    agent.close()


def test_a_budget_stop_is_an_event(otel: Otel, data_dir: Path) -> None:
    from delite import Budget

    model = ScriptedProvider([call("lookup", q="1"), call("lookup", q="2"), "ok"])
    with Agent(data_dir, provider=model, tools=[lookup], budget=Budget(max_llm_calls=1)) as agent:
        assert agent.run("go").suspend_reason.kind == "budget"  # type: ignore[union-attr]
    events = dict(suspension_events(otel))
    assert events["delite.budget_stop"]["delite.suspend.limit"] == "max_llm_calls"


def test_drift_on_resume_is_an_event(otel: Otel, data_dir: Path) -> None:
    with approval_agent(data_dir) as agent:
        first = agent.run("go")
    drifted = Agent(
        data_dir,
        provider=ScriptedProvider([call("refund", order_id=7), "refunded"]),
        tools=[__import__("otel_scenario").refund],
        agent_id="refunder",
        prompt="Be brief.",
        on_drift="allow",
    )
    drifted.submit_approval(first.execution_id, approved=True)
    resumed = [s for s in otel.spans() if s.name == "invoke_agent refunder"][1]
    drift = next(e for e in resumed.events if e.name == "delite.drift_accepted")
    assert drift.attributes is not None and "prompt" in drift.attributes["delite.drift.changes"]
    drifted.close()


def test_runtime_runs_are_traced(otel: Otel, data_dir: Path) -> None:
    from delite import Runtime

    with Runtime(data_dir) as rt:
        agent = crash_agent(data_dir)
        rt.join(agent)
        eid = rt.go(agent, "go")
        assert rt.wait(eid).answer == "done"
    assert otel.names()[0] == "invoke_agent payer" and len(otel.names()) == 6


def test_parallel_async_tool_calls_each_get_a_span(otel: Otel, data_dir: Path) -> None:
    turn = {"tool_calls": [{"name": "lookup", "arguments": {"q": str(i)}} for i in range(8)]}

    async def main() -> None:
        with Agent(data_dir, provider=ScriptedProvider([turn, "ok"]), tools=[lookup], agent_id="wide") as agent:
            await agent.arun("go")

    asyncio.run(main())
    tools = [s for s in otel.spans() if s.name == "execute_tool lookup"]
    assert sorted(attrs(s)["gen_ai.tool.call.id"] for s in tools) == sorted(f"c1.{i}" for i in range(8))
    assert all(otel.parent_name(s) == "invoke_agent wide" for s in tools)
    assert otel.instrumentation.errors == 0


def test_sigterm_handled_as_servers_do_ends_and_exports_every_span(data_dir: Path, tmp_path: Path) -> None:
    import os
    import signal
    import time

    spans_file, ready = tmp_path / "spans.jsonl", tmp_path / "ready"
    with subprocess.Popen(
        [sys.executable, WORKER, str(data_dir), "nap", "nap-1", str(spans_file)],
        env={**os.environ, "DELITE_TEST_READY": str(ready)},
        stdout=subprocess.DEVNULL,
    ) as worker:
        deadline = time.monotonic() + 30
        while not ready.exists() and time.monotonic() < deadline and worker.poll() is None:
            time.sleep(0.05)
        assert ready.exists()
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=30) == 143
    spans = {s["name"]: s for s in map(json.loads, spans_file.read_text().splitlines())}
    assert set(spans) == {"invoke_agent napper", "chat scripted-1", "execute_tool nap"}
    assert spans["execute_tool nap"]["attributes"]["delite.tool.outcome"] == "unfinished"
    assert spans["invoke_agent napper"]["attributes"]["delite.execution.status"] == "running"


def test_the_global_providers_are_followed_even_when_set_after_instrument(tmp_path: Path) -> None:
    code = """
from opentelemetry import metrics, trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from delite import Agent, ScriptedProvider, telemetry

telemetry.instrument()  # at import time of the app, before its tracing is configured
agent = Agent("./data", provider=ScriptedProvider(["hi"]), agent_id="late")
exporter, reader = InMemorySpanExporter(), InMemoryMetricReader()
provider = TracerProvider()
provider.add_span_processor(SimpleSpanProcessor(exporter))
trace.set_tracer_provider(provider)
metrics.set_meter_provider(MeterProvider(metric_readers=[reader]))
agent.run("x")
print(sorted(s.name for s in exporter.get_finished_spans()))
print(sorted(m.name for rm in reader.get_metrics_data().resource_metrics for sm in rm.scope_metrics for m in sm.metrics))
"""
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=tmp_path, check=False
    )
    assert out.returncode == 0, out.stderr
    spans, metrics = out.stdout.splitlines()
    assert spans == str(["chat scripted-1", "invoke_agent late"])
    assert "gen_ai.client.token.usage" in metrics and "delite.executions" in metrics


def test_the_callers_span_is_the_parent_of_an_async_run(otel: Otel, data_dir: Path) -> None:
    tracer = otel.tracer_provider.get_tracer("web")

    async def handler() -> int:
        with tracer.start_as_current_span("POST /chat/async") as request:
            with crash_agent(data_dir) as agent:
                await agent.arun("go")
            return request.get_span_context().span_id

    request_id = asyncio.run(handler())
    root = next(s for s in otel.spans() if s.name == "invoke_agent payer")
    assert root.parent is not None and root.parent.span_id == request_id
