"""A full tool-using run through each real SDK, over HTTP to the fake server, JSON and streamed:
answers, parallel tool calls, what each API was sent, usage in disjoint buckets and cost in Decimal."""

from __future__ import annotations

import warnings
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from fakellm import Call, FakeLLM, Script, Tokens, Turn
from providerkit import APIS, MODELS, get_weather, make_agent, make_provider

from delite import tool
from delite.engine._events import Completed, TextDelta, ToolCallFinished, ToolCallStarted
from delite.errors import ToolError
from delite.log.records import ModelResponded, ToolFinished
from delite.providers import PriceTable, UnknownPriceWarning
from delite.store import FileStore

PROMPT = "You answer questions about the weather."
FIRST = Turn(
    text="Checking both.",
    calls=[Call(name="get_weather", arguments={"city": "Paris"}), Call(name="get_time", arguments={"tz": "CET"})],
    tokens=Tokens(input=20, cached=100, cache_write=30, cache_write_1h=10, output=20, reasoning=4),
)
SECOND = Turn(text="It is 18C and sunny in Paris; 12:00 CET.", tokens=Tokens(input=200, output=15))
SCRIPT = Script(turns=[FIRST, SECOND])
# Per million tokens: gpt-4o-mini 0.15 in, 0.075 cached, cache writes as input, 0.60 out;
# claude-haiku-4-5 1 in, 0.10 cached, 1.25 5-minute writes, 2 one-hour writes, 5 out.
EXPECTED_COST = {
    "chat": Decimal("0.000027") + Decimal("0.000039"),
    "responses": Decimal("0.000027") + Decimal("0.000039"),
    "messages": Decimal("0.000175") + Decimal("0.000275"),
}
TOOL_IDS = {
    "chat": ["call_0_0", "call_0_1"],
    "responses": ["call_0_0", "call_0_1"],
    "messages": ["toolu_0_0", "toolu_0_1"],
}


def tool_results_sent(api: str, body: dict[str, Any]) -> dict[str, str]:
    """``{call id: content}`` of the tool results a request carried, read from each API's wire shape."""
    if api == "chat":
        return {m["tool_call_id"]: m["content"] for m in body["messages"] if m["role"] == "tool"}
    if api == "responses":
        return {i["call_id"]: i["output"] for i in body["input"] if i.get("type") == "function_call_output"}
    return {
        b["tool_use_id"]: b["content"]
        for m in body["messages"]
        if m["role"] == "user" and isinstance(m["content"], list)
        for b in m["content"]
        if b["type"] == "tool_result"
    }


def system_sent(api: str, body: dict[str, Any]) -> str | None:
    if api == "chat":
        return next((m["content"] for m in body["messages"] if m["role"] == "system"), None)
    return body.get("instructions") if api == "responses" else body.get("system")


def tool_names_sent(api: str, body: dict[str, Any]) -> list[str]:
    if api == "chat":
        return [t["function"]["name"] for t in body["tools"]]
    return [t["name"] for t in body["tools"]]


@pytest.mark.parametrize("streamed", [False, True], ids=["json", "sse"])
@pytest.mark.parametrize("api", APIS)
def test_tool_using_run(fake: FakeLLM, data_dir: Path, api: str, streamed: bool) -> None:
    fake.load(SCRIPT)
    agent = make_agent(data_dir, make_provider(fake, api), prompt=PROMPT)
    if streamed:
        stream = agent.stream_events("Weather and time in Paris?")
        events = list(stream)
        response = stream.response
        assert response is not None
        text = "".join(e.text for e in events if isinstance(e, TextDelta))
        assert text == "Checking both." + "It is 18C and sunny in Paris; 12:00 CET."
        kinds = [type(e) for e in events if not isinstance(e, TextDelta)]
        # The two calls of the first turn run at the same time: both intents go down together, then each result.
        assert kinds == [ToolCallStarted, ToolCallStarted, ToolCallFinished, ToolCallFinished, Completed]
        assert [e.name for e in events if isinstance(e, ToolCallStarted)] == ["get_weather", "get_time"]
    else:
        response = agent.run("Weather and time in Paris?")

    assert response.status.value == "completed"
    assert response.answer == "It is 18C and sunny in Paris; 12:00 CET."
    assert response.steps == 2
    usage = response.usage
    reasoning = 4
    assert (usage.input_tokens, usage.cached_input_tokens, usage.cache_write_tokens, usage.output_tokens) == (
        220,
        100,
        30,
        35,
    )
    assert usage.reasoning_tokens == reasoning
    assert usage.known
    assert usage.cost is not None and Decimal(usage.cost) == EXPECTED_COST[api]

    records = FileStore(data_dir).read(response.execution_id).records
    turns = [r for r in records if isinstance(r, ModelResponded)]
    assert [t.model for t in turns] == [MODELS[api]] * 2
    assert all(t.usage.price_version and t.raw_usage for t in turns)
    assert [c.name for c in turns[0].tool_calls] == ["get_weather", "get_time"]
    assert [c.provider_id for c in turns[0].tool_calls] == TOOL_IDS[api]
    finished = sorted((r for r in records if isinstance(r, ToolFinished)), key=lambda r: r.call_id)  # any order
    assert [f.result for f in finished] == [{"city": "Paris", "temp_c": 18, "conditions": "sunny"}, "12:00 CET"]

    first, second = fake.requests
    assert first["stream"] is streamed and second["stream"] is streamed
    assert all(r["headers"]["x-stainless-retry-count"] == "0" for r in (first, second))
    assert system_sent(api, first["body"]) == PROMPT
    assert tool_names_sent(api, first["body"])[:2] == ["get_weather", "get_time"]
    ids = TOOL_IDS[api]
    sent = tool_results_sent(api, second["body"])
    assert sent == {ids[0]: '{"city":"Paris","temp_c":18,"conditions":"sunny"}', ids[1]: "12:00 CET"}
    if api == "chat" and streamed:
        assert first["body"]["stream_options"] == {"include_usage": True}


@pytest.mark.parametrize("api", APIS)
def test_tool_errors_and_invalid_arguments_reach_the_model(fake: FakeLLM, data_dir: Path, api: str) -> None:
    @tool
    def explode(reason: str) -> str:
        """Fail on purpose."""
        raise ToolError(f"cannot: {reason}")

    fake.load(
        Script(
            turns=[
                Turn(
                    calls=[
                        Call(name="explode", arguments={"reason": "no fuel"}),
                        Call(name="get_weather", arguments={"town": "x"}),
                    ]
                ),
                Turn(text="Sorry."),
            ]
        )
    )
    agent = make_agent(data_dir, make_provider(fake, api), tools=[explode, get_weather])
    assert agent.run("go").answer == "Sorry."
    body = fake.requests[1]["body"]
    sent = list(tool_results_sent(api, body).values())
    assert sent[0] == "Error: cannot: no fuel"
    assert sent[1].startswith("Error: invalid arguments for get_weather")
    if api == "messages":
        results = [
            b for m in body["messages"] if m["role"] == "user" for b in m["content"] if b["type"] == "tool_result"
        ]
        assert [r.get("is_error") for r in results] == [True, True]


@pytest.mark.parametrize("api", APIS)
def test_app_history_in_the_neutral_shape(fake: FakeLLM, data_dir: Path, api: str) -> None:
    history = [
        {"role": "user", "content": "Weather in Rome?"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_old",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city":"Rome"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_old", "content": "22C"},
        {"role": "assistant", "content": "22C in Rome."},
    ]
    fake.load(Script(turns=[Turn(text="Paris is 18C.")]))
    agent = make_agent(data_dir, make_provider(fake, api), prompt=PROMPT)
    assert agent.run("And Paris?", history=history).answer == "Paris is 18C."
    body = fake.requests[0]["body"]
    assert tool_results_sent(api, body) == {"call_old": "22C"}
    if api == "chat":
        assert [m["role"] for m in body["messages"]] == ["system", "user", "assistant", "tool", "assistant", "user"]
    elif api == "responses":
        kinds = [i.get("type") or i["role"] for i in body["input"]]
        assert kinds == ["user", "function_call", "function_call_output", "assistant", "user"]
        assert body["input"][1]["arguments"] == '{"city":"Rome"}'
    else:
        assert [m["role"] for m in body["messages"]] == ["user", "assistant", "user", "assistant", "user"]
        assert body["messages"][1]["content"] == [
            {"type": "tool_use", "id": "call_old", "name": "get_weather", "input": {"city": "Rome"}}
        ]


@pytest.mark.parametrize("api", ["chat", "messages"])
def test_per_run_model_override_is_recorded_and_priced(fake: FakeLLM, data_dir: Path, api: str) -> None:
    # Made-up model names with their own prices: the test must not depend on a vendor keeping a model alive (a
    # retired name makes the SDK warn on every request).
    vendor = {"chat": "openai", "messages": "anthropic"}[api]
    other, snapshot = "test-model-large", "test-model-large-20990101"
    prices = PriceTable([{"vendor": vendor, "model": other, "input": 3, "output": 5}])
    fake.load(Script(turns=[Turn(text="ok", tokens=Tokens(input=1000, output=100))], model=snapshot))
    agent = make_agent(data_dir, make_provider(fake, api, prices=prices))
    response = agent.run("hi", model=other)
    assert fake.requests[0]["body"]["model"] == other
    turn = next(r for r in FileStore(data_dir).read(response.execution_id).records if isinstance(r, ModelResponded))
    assert turn.model == snapshot  # the model that actually answered, priced as its dated snapshot
    assert Decimal(response.usage.cost or "nan") == Decimal("0.0035")  # 1000 in at $3/M + 100 out at $5/M


def test_unknown_model_has_no_cost_and_warns(fake: FakeLLM, data_dir: Path) -> None:
    fake.load(Script(turns=[Turn(text="ok")]))
    agent = make_agent(data_dir, make_provider(fake, "chat"))
    with pytest.warns(UnknownPriceWarning, match="mystery-model"):
        response = agent.run("hi", model="mystery-model")
    assert response.usage.cost is None
    assert response.usage.input_tokens == 20  # usage itself is still known
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnknownPriceWarning)
        assert agent.run("hi", execution_id=response.execution_id).usage.cost is None  # replayed, no call


@pytest.mark.parametrize("api", APIS)
def test_stream_text_form(fake: FakeLLM, data_dir: Path, api: str) -> None:
    fake.load(SCRIPT)
    agent = make_agent(data_dir, make_provider(fake, api))
    stream = agent.stream("Weather and time in Paris?")
    chunks = list(stream)
    assert len(chunks) > 2
    assert "".join(chunks) == "Checking both.\n\nIt is 18C and sunny in Paris; 12:00 CET."
    assert stream.response is not None and stream.response.answer == SECOND.text
    # A finished execution streams its recorded answer, with no model call.
    again = list(agent.stream("Weather and time in Paris?", execution_id=stream.execution_id))
    assert again == [SECOND.text]
    assert len(fake.requests) == 2


@pytest.mark.parametrize(
    ("limit", "budget"),
    [("max_dollars", {"max_dollars": "0.00002"}), ("max_tokens", {"max_tokens": 100})],
)
def test_budgets_use_the_priced_usage(fake: FakeLLM, data_dir: Path, limit: str, budget: dict[str, Any]) -> None:
    from delite import Budget

    fake.load(SCRIPT)
    agent = make_agent(data_dir, make_provider(fake, "chat"), budget=Budget(**budget))  # type: ignore[arg-type]
    response = agent.run("Weather and time in Paris?")
    # The first turn cost $0.000027 and 170 tokens: over either limit, so the run stops before the second.
    assert response.is_suspended and response.suspend_reason is not None
    assert response.suspend_reason.kind == "budget" and response.suspend_reason.limit == limit
    assert response.suspend_reason.spent["dollars"] == "0.000027"
    assert response.suspend_reason.spent["tokens"] == 170
    assert len(fake.requests) == 1
