"""Issue 15 as its words read: the real SDKs' calls described on spans, instrumentation order, the Runtime.

The model calls go through the real openai and anthropic SDKs to the fake server of ``tests/fakellm``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from fakellm import FakeLLM, Script
from fakellm.script import Call, Tokens, Turn
from otel_scenario import crash_agent

from delite import Agent, Runtime, tool
from delite.errors import UsageError
from delite.log.records import ModelResponded
from delite.providers import Anthropic, OpenAI, OpenAIResponses
from delite.providers._sdk import SDKProvider
from delite.store import FileStore
from delite.telemetry import otlp_json

if TYPE_CHECKING:  # the fixture's type; ``conftest`` is another module when other suites run in the same session
    from conftest import Otel

CLASSES: dict[str, type[SDKProvider]] = {"chat": OpenAI, "responses": OpenAIResponses, "messages": Anthropic}
REQUESTED = {"chat": "gpt-4o-mini", "responses": "gpt-4o-mini", "messages": "claude-haiku-4-5"}
ID_PREFIX = {"chat": "chatcmpl-", "responses": "resp_", "messages": "msg_"}
FINISH = {
    "chat": (("tool_calls",), ("stop",)),
    "responses": (("tool_calls",), ("stop",)),
    "messages": (("tool_use",), ("end_turn",)),
}
SERVED = "served-model-2026-01-01"


@pytest.fixture(scope="module")
def server() -> Iterator[FakeLLM]:
    s = FakeLLM().start()
    yield s
    s.stop()


@tool(description="Get the weather for a city")
def get_weather(city: str) -> dict[str, Any]:
    return {"city": city, "temp_c": 18}


def provider(server: FakeLLM, api: str) -> SDKProvider:
    url = server.url if api == "messages" else server.url + "/v1"
    return CLASSES[api](REQUESTED[api], base_url=url, api_key="test-key", timeout=5.0)


def script() -> Script:
    first = Turn(calls=[Call(name="get_weather", arguments={"city": "Paris"})], tokens=Tokens(input=20, output=7))
    return Script(turns=[first, Turn(text="18C in Paris.", tokens=Tokens(input=40, output=5))], model=SERVED)


def attrs(span: Any) -> dict[str, Any]:
    return dict(span.attributes or {})


@pytest.mark.parametrize("streamed", [False, True], ids=["call", "stream"])
@pytest.mark.parametrize("api", ["chat", "responses", "messages"])
def test_chat_spans_carry_what_the_provider_answered(
    otel: Otel, server: FakeLLM, data_dir: Path, api: str, streamed: bool
) -> None:
    server.load(script())
    with Agent(data_dir, provider=provider(server, api), tools=[get_weather], agent_id="w") as agent:
        if streamed:
            stream = agent.stream("Weather in Paris?")
            assert "".join(stream) == "18C in Paris."
            response = stream.response
        else:
            response = agent.run("Weather in Paris?")
    assert response is not None and response.status == "completed"
    recorded = [r for r in FileStore(data_dir).read(response.execution_id).records if isinstance(r, ModelResponded)]
    chats = [s for s in otel.spans() if s.name.startswith("chat")]
    assert [s.name for s in chats] == [f"chat {REQUESTED[api]}"] * 2  # named by the model asked for
    for span, record, finish in zip(chats, recorded, FINISH[api], strict=True):
        a = attrs(span)
        assert a["gen_ai.request.model"] == REQUESTED[api] == record.request_model
        assert a["gen_ai.response.model"] == SERVED == record.model
        assert record.response_id is not None and record.response_id.startswith(ID_PREFIX[api])
        assert a["gen_ai.response.id"] == record.response_id
        assert a["gen_ai.response.finish_reasons"] == finish == tuple(record.finish_reasons)
        assert a["server.address"] == "127.0.0.1" == record.server_address
        assert a["server.port"] == server.port == record.server_port
        assert a["gen_ai.system"] == ("anthropic" if api == "messages" else "openai")
    assert attrs(chats[0])["gen_ai.usage.output_tokens"] == 7
    # the offline projection says the same from the log alone
    doc = otlp_json(data_dir, response.execution_id)
    offline = [s for s in doc["resourceSpans"][0]["scopeSpans"][0]["spans"] if s["name"].startswith("chat")]
    values = [{a["key"]: a["value"] for a in s["attributes"]} for s in offline]
    assert [v["gen_ai.response.id"]["stringValue"] for v in values] == [r.response_id for r in recorded]
    assert values[0]["server.address"] == {"stringValue": "127.0.0.1"}


def test_the_metrics_say_where_and_which_model(otel: Otel, server: FakeLLM, data_dir: Path) -> None:
    server.load(script())
    with Agent(data_dir, provider=provider(server, "chat"), tools=[get_weather]) as agent:
        agent.run("Weather in Paris?")
    metrics = {
        m.name: m
        for rm in otel.metrics.get_metrics_data().resource_metrics
        for sm in rm.scope_metrics
        for m in sm.metrics
    }
    duration = metrics["gen_ai.client.operation.duration"]
    assert duration.unit == "s"
    point = duration.data.data_points[0]
    assert point.attributes["gen_ai.request.model"] == "gpt-4o-mini"
    assert point.attributes["gen_ai.response.model"] == SERVED
    assert point.attributes["server.address"] == "127.0.0.1"
    assert point.count == 2
    usage = metrics["gen_ai.client.token.usage"]
    assert usage.unit == "{token}"
    by_type = {p.attributes["gen_ai.token.type"]: p.sum for p in usage.data.data_points}
    assert by_type == {"input": 60, "output": 12}


def test_the_default_host_is_the_vendors() -> None:
    assert OpenAI("gpt-4o-mini", api_key="k")._server == ("api.openai.com", 443)
    assert Anthropic("claude-haiku-4-5", api_key="k")._server == ("api.anthropic.com", 443)
    local = OpenAI("llama3.2", base_url="http://localhost:11434/v1")
    assert local._server == ("localhost", 11434)


def test_an_agent_built_before_instrument_is_traced(data_dir: Path) -> None:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from delite import telemetry

    with crash_agent(data_dir) as agent:
        exporter = InMemorySpanExporter()
        tracer_provider = TracerProvider()
        tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
        telemetry.instrument(tracer_provider=tracer_provider)  # after the agent exists
        response = agent.run("go")
        assert agent.store.__class__ is FileStore  # the store it was given, never a wrapper
    spans = sorted(exporter.get_finished_spans(), key=lambda s: (s.start_time or 0, s.name))
    assert spans[0].name == "invoke_agent payer" and len(spans) == 6
    assert attrs(spans[0])["delite.execution.id"] == response.execution_id


def test_the_runtime_refuses_an_agent_on_another_directory_with_telemetry_on(otel: Otel, tmp_path: Path) -> None:
    with Runtime(tmp_path / "one") as rt, pytest.raises(UsageError, match="this runtime runs"):
        Agent(tmp_path / "two", provider=lambda m, t, model: {"content": "x"}, runtime=rt)
    with Runtime(tmp_path / "one") as rt:
        agent = crash_agent(tmp_path / "one")
        rt.join(agent)  # the same directory is accepted, as without telemetry
        assert rt.wait(rt.go(agent, "go")).answer == "done"
    assert otel.names()[0] == "invoke_agent payer"


def test_the_callers_span_is_the_parent_of_a_runtime_run(otel: Otel, data_dir: Path) -> None:
    tracer = otel.tracer_provider.get_tracer("web")
    with Runtime(data_dir) as rt:
        agent = crash_agent(data_dir)
        rt.join(agent)
        with tracer.start_as_current_span("POST /runs") as request:
            eid = rt.go(agent, "go")
        rt.wait(eid)
    root = next(s for s in otel.spans() if s.name == "invoke_agent payer")
    assert root.parent is not None and root.parent.span_id == request.get_span_context().span_id
    assert root.context.trace_id == request.get_span_context().trace_id


def test_uninstrument_during_an_async_run_still_ends_its_spans(otel: Otel, data_dir: Path) -> None:
    from delite import telemetry

    @tool(description="Turn telemetry off mid-run")
    def switch_off() -> str:
        telemetry.uninstrument()
        return "off"

    async def main() -> str | None:
        model_turns: list[Any] = [{"tool_calls": [{"name": "switch_off", "arguments": {}}]}, {"content": "ok"}]

        def model(messages: Any, tools: Any, m: Any) -> Any:
            return model_turns.pop(0)

        with Agent(data_dir, provider=model, tools=[switch_off], agent_id="sw") as agent:
            return (await agent.arun("go")).answer

    assert asyncio.run(main()) == "ok"
    names = otel.names()
    assert names[0] == "invoke_agent sw"  # ended when the claim was released, though reporting had stopped
    assert "execute_tool switch_off" in names


def test_the_callers_span_is_the_parent_of_a_runtime_resume(otel: Otel, data_dir: Path) -> None:
    from otel_scenario import approval_agent

    tracer = otel.tracer_provider.get_tracer("web")
    with Runtime(data_dir) as rt:
        agent = approval_agent(data_dir)
        rt.join(agent)
        eid = rt.go(agent, "refund order 7")
        waiting = rt.wait(eid)
        assert waiting.status == "waiting_approval" and waiting.suspend_reason is not None
        with tracer.start_as_current_span("POST /approve") as request:
            rt.signal(eid, waiting.suspend_reason.confirmation_id, True)
        assert rt.wait(eid).status == "completed"
    roots = [s for s in otel.spans() if s.name == "invoke_agent refunder"]
    assert len(roots) == 2
    second = roots[1]
    assert second.parent is not None and second.parent.span_id == request.get_span_context().span_id
    assert [link.context.trace_id for link in second.links] == [roots[0].context.trace_id]
