"""The fake server's replies are what the real APIs send: every rendered object validates against the SDKs'
own response types, with no field the types do not know; and the server picks turns and faults as scripted."""

from __future__ import annotations

import json
from typing import Any

import pytest
from fakellm import Call, FakeLLM, Fault, Script, Tokens, Turn, wire_chat, wire_messages, wire_responses
from pydantic import BaseModel, TypeAdapter

TURNS = [
    Turn(
        text="Checking both.",
        calls=[Call(name="get_weather", arguments={"city": "Paris"}), Call(name="get_time", arguments={"tz": "CET"})],
        tokens=Tokens(input=20, cached=100, cache_write=30, cache_write_1h=10, output=20, reasoning=4),
    ),
    Turn(text="It is 18C and sunny in Paris."),
    Turn(calls=[Call(name="get_weather", arguments={})]),
    Turn(text="cut short", stop="length"),
]


def no_unknown_fields(value: Any, path: str = "$") -> list[str]:
    """Paths of fields the SDK type does not declare (pydantic keeps them as extras)."""
    found: list[str] = []
    if isinstance(value, BaseModel):
        found += [f"{path}.{k}" for k in (value.model_extra or {})]
        for name in type(value).model_fields:
            found += no_unknown_fields(getattr(value, name), f"{path}.{name}")
    elif isinstance(value, list):
        for i, v in enumerate(value):
            found += no_unknown_fields(v, f"{path}[{i}]")
    elif isinstance(value, dict):
        for k, v in value.items():
            found += no_unknown_fields(v, f"{path}.{k}")
    return found


def validate(adapter: Any, obj: dict[str, Any]) -> Any:
    # Through JSON, as the SDK sees it; strict about what is missing and about what is unknown.
    parsed = (
        adapter.validate_json(json.dumps(obj))
        if isinstance(adapter, TypeAdapter)
        else adapter.model_validate_json(json.dumps(obj))
    )
    assert no_unknown_fields(parsed) == [], obj
    return parsed


@pytest.mark.parametrize("n", range(len(TURNS)))
def test_chat_renderings_validate(n: int) -> None:
    from openai.types.chat import ChatCompletion, ChatCompletionChunk

    turn = TURNS[n]
    completion = validate(ChatCompletion, wire_chat.render_json(turn, "gpt-4o-mini", n))
    message = completion.choices[0].message
    assert message.content == turn.text
    assert [c.function.name for c in message.tool_calls or []] == [c.name for c in turn.calls]
    chunks = [
        validate(ChatCompletionChunk, c) for c in wire_chat.render_chunks(turn, "gpt-4o-mini", n, include_usage=True)
    ]
    assert chunks[-1].usage is not None and chunks[-1].usage.prompt_tokens == turn.tokens.prompt
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == (turn.text or "")
    blocks = wire_chat.render_sse(turn, "gpt-4o-mini", n, {"stream_options": {"include_usage": True}})
    assert blocks[-1] == b"data: [DONE]\n\n"
    assert all(b.startswith(b"data: ") and b.endswith(b"\n\n") for b in blocks)


@pytest.mark.parametrize("n", range(len(TURNS)))
def test_responses_renderings_validate(n: int) -> None:
    from openai.types.responses import Response, ResponseStreamEvent

    turn = TURNS[n]
    response = validate(Response, wire_responses.render_json(turn, "gpt-4o-mini", n))
    assert response.output_text == (turn.text or "")
    assert response.usage is not None and response.usage.input_tokens == turn.tokens.prompt
    adapter = TypeAdapter(ResponseStreamEvent)
    events = [validate(adapter, e) for e in wire_responses.render_events(turn, "gpt-4o-mini", n)]
    assert [e.sequence_number for e in events] == list(range(len(events)))
    assert events[-1].type == ("response.incomplete" if turn.stop == "length" else "response.completed")
    assert "".join(e.delta for e in events if e.type == "response.output_text.delta") == (turn.text or "")
    for block, event in zip(wire_responses.render_sse(turn, "gpt-4o-mini", n, {}), events, strict=True):
        assert block.startswith(f"event: {event.type}\n".encode())


@pytest.mark.parametrize("n", range(len(TURNS)))
def test_messages_renderings_validate(n: int) -> None:
    from anthropic.types import Message, RawMessageStreamEvent

    turn = TURNS[n]
    message = validate(Message, wire_messages.render_json(turn, "claude-haiku-4-5", n))
    assert [b.type for b in message.content] == (["text"] if turn.text is not None else []) + ["tool_use"] * len(
        turn.calls
    )
    assert message.usage.input_tokens == turn.tokens.input
    assert message.usage.cache_creation is not None
    assert message.usage.cache_creation.ephemeral_1h_input_tokens == turn.tokens.cache_write_1h
    adapter = TypeAdapter(RawMessageStreamEvent)
    events = [e for e in wire_messages.render_events(turn, "claude-haiku-4-5", n) if e["type"] != "ping"]
    parsed = [validate(adapter, e) for e in events]
    assert parsed[0].type == "message_start" and parsed[-1].type == "message_stop"


def test_in_band_errors_and_error_bodies_validate() -> None:
    from anthropic.types import ErrorResponse
    from openai.types.responses import ResponseErrorEvent

    fault = Fault(kind="stream_error", message="Overloaded")
    anthropic_error = json.loads(wire_messages.stream_error(fault).split(b"data: ", 1)[1])
    validate(ErrorResponse, {**anthropic_error, "request_id": None})
    validate(ErrorResponse, wire_messages.error_body(529, fault))
    responses_error = json.loads(wire_responses.stream_error(fault).split(b"data: ", 1)[1])
    validate(ResponseErrorEvent, responses_error)


def test_turns_are_picked_from_the_conversation() -> None:
    chat = {
        "messages": [
            {"role": "user", "content": "x"},
            {"role": "assistant", "tool_calls": []},
            {"role": "tool", "content": "r"},
        ]
    }
    assert wire_chat.turn_index(chat) == 1
    items = [
        {"role": "user", "content": "x"},
        {"type": "function_call", "call_id": "a"},
        {"type": "function_call", "call_id": "b"},
        {"type": "function_call_output", "call_id": "a"},
        {"type": "function_call_output", "call_id": "b"},
        {"role": "assistant", "content": "more"},
        {"type": "function_call", "call_id": "c"},
        {"type": "function_call_output", "call_id": "c"},
    ]
    assert wire_responses.turn_index({"input": items}) == 2
    assert wire_responses.turn_index({"input": "just text"}) == 0
    messages = [
        {"role": "user", "content": "old question"},
        {"role": "assistant", "content": "old answer"},
        {"role": "user", "content": "x"},
        {"role": "assistant", "content": [{"type": "tool_use"}]},
        {"role": "user", "content": [{"type": "tool_result"}]},
    ]
    assert wire_messages.turn_index({"messages": messages}) == 1


def test_faults_are_used_up_one_per_request_and_requests_recorded(server: FakeLLM) -> None:
    import openai

    server.load(
        Script(
            turns=[
                Turn(
                    text="ok",
                    faults=[Fault(kind="status", status=500), Fault(kind="status", status=429, retry_after="0")],
                )
            ]
        )
    )
    client = openai.OpenAI(api_key="k", base_url=server.url + "/v1", max_retries=0, _strict_response_validation=True)
    try:
        statuses = []
        for _ in range(2):
            with pytest.raises(openai.APIStatusError) as info:
                client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
            statuses.append(info.value.status_code)
        ok = client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
    finally:
        client.close()
    assert statuses == [500, 429]
    assert ok.choices[0].message.content == "ok"
    seen = server.requests
    assert [r["outcome"] for r in seen] == ["status 500", "status 429", "complete"]
    assert all(r["headers"]["authorization"] == "Bearer k" for r in seen)


def test_uvicorn_binds_the_socket_so_connections_get_tcp_nodelay(server: FakeLLM) -> None:
    import socket

    # asyncio sets TCP_NODELAY on accepted connections only when the listening socket is IPPROTO_TCP, which
    # it is when uvicorn binds it (not when handed a socket.socket()): without it, ~40 ms per response.
    listening = server.server.servers[0].sockets[0]
    assert listening.proto == socket.IPPROTO_TCP and listening.type == socket.SOCK_STREAM
    assert listening.getsockname()[0] == "127.0.0.1"
