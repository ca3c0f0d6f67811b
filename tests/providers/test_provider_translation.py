"""The neutral conversation shape translated to each API, and each API's usage into disjoint buckets."""

from __future__ import annotations

from typing import Any

from delite.providers._anthropic import anthropic_usage, to_anthropic_messages, to_anthropic_tools
from delite.providers._messages import parse_arguments, system_text, tool_calls_of
from delite.providers._openai import chat_usage, to_chat_messages, to_chat_tools
from delite.providers._openai_responses import responses_usage, to_responses_input, to_responses_tools

CONVERSATION: list[dict[str, Any]] = [
    {"role": "system", "content": "Be brief."},
    {
        "role": "user",
        "content": [
            {"type": "text", "text": "What is this?"},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
        ],
    },
    {
        "role": "assistant",
        "content": "Looking.",
        "tool_calls": [
            {"id": "c1.0", "type": "function", "function": {"name": "lookup", "arguments": '{"q":"png"}'}},
            {"id": "c1.1", "type": "function", "function": {"name": "lookup", "arguments": "not json"}},
        ],
    },
    {"role": "tool", "tool_call_id": "c1.0", "content": "an image"},
    {"role": "tool", "tool_call_id": "c1.1", "content": "Error: invalid arguments", "is_error": True},
    {"role": "assistant", "content": None},
    {"role": "user", "content": "Thanks"},
]
TOOLS = [
    {
        "name": "lookup",
        "description": "Look up",
        "parameters": {"type": "object", "properties": {"q": {"type": "string"}}},
    }
]


def test_arguments_and_helpers() -> None:
    assert parse_arguments('{"a": 1}') == {"a": 1}
    assert parse_arguments("") == {} and parse_arguments(None) == {}
    assert parse_arguments("{oops") == "{oops"  # kept raw: the tool's validation tells the model
    calls = tool_calls_of(CONVERSATION[2])
    assert [(c.id, c.arguments) for c in calls] == [("c1.0", {"q": "png"}), ("c1.1", "not json")]
    assert system_text(CONVERSATION) == "Be brief."


def test_chat_completions_shape() -> None:
    out = to_chat_messages(CONVERSATION)
    assert [m["role"] for m in out] == ["system", "user", "assistant", "tool", "tool", "assistant", "user"]
    assert out[1]["content"] == CONVERSATION[1]["content"]  # content parts pass through
    assert out[2]["tool_calls"][0] == {
        "id": "c1.0",
        "type": "function",
        "function": {"name": "lookup", "arguments": '{"q":"png"}'},
    }
    assert out[2]["tool_calls"][1]["function"]["arguments"] == "not json"
    assert out[4] == {"role": "tool", "tool_call_id": "c1.1", "content": "Error: invalid arguments"}  # no is_error key
    assert to_chat_tools(TOOLS)[0]["function"]["parameters"] == TOOLS[0]["parameters"]


def test_responses_shape() -> None:
    instructions, items = to_responses_input(CONVERSATION)
    assert instructions == "Be brief."
    assert items[0] == {
        "role": "user",
        "content": [
            {"type": "input_text", "text": "What is this?"},
            {"type": "input_image", "image_url": "data:image/png;base64,AAAA", "detail": "auto"},
        ],
    }
    assert items[1] == {"role": "assistant", "content": "Looking."}
    assert [i.get("type") for i in items[2:6]] == [
        "function_call",
        "function_call",
        "function_call_output",
        "function_call_output",
    ]
    assert items[4] == {"type": "function_call_output", "call_id": "c1.0", "output": "an image"}
    assert items[-1] == {"role": "user", "content": "Thanks"}  # the empty assistant turn is dropped
    assert to_responses_tools(TOOLS)[0] == {
        "type": "function",
        "name": "lookup",
        "description": "Look up",
        "parameters": TOOLS[0]["parameters"],
        "strict": False,
    }


def test_anthropic_shape() -> None:
    system, messages = to_anthropic_messages(CONVERSATION)
    assert system == "Be brief."
    assert [m["role"] for m in messages] == ["user", "assistant", "user"]
    assert messages[0]["content"][1] == {
        "type": "image",
        "source": {"type": "base64", "media_type": "image/png", "data": "AAAA"},
    }
    assert messages[1]["content"] == [
        {"type": "text", "text": "Looking."},
        {"type": "tool_use", "id": "c1_0", "name": "lookup", "input": {"q": "png"}},
        {"type": "tool_use", "id": "c1_1", "name": "lookup", "input": {}},
    ]
    # Both results and the next question share one user turn, results first; the error is flagged.
    assert messages[2]["content"] == [
        {"type": "tool_result", "tool_use_id": "c1_0", "content": "an image"},
        {"type": "tool_result", "tool_use_id": "c1_1", "content": "Error: invalid arguments", "is_error": True},
        {"type": "text", "text": "Thanks"},
    ]
    assert to_anthropic_tools(TOOLS)[0] == {
        "name": "lookup",
        "description": "Look up",
        "input_schema": TOOLS[0]["parameters"],
    }


def test_usage_buckets_are_disjoint() -> None:
    from anthropic.types import Usage as AnthropicUsage
    from openai.types import CompletionUsage
    from openai.types.responses import ResponseUsage

    chat = CompletionUsage.model_validate(
        {
            "prompt_tokens": 150,
            "completion_tokens": 20,
            "total_tokens": 170,
            "prompt_tokens_details": {"cached_tokens": 100, "cache_write_tokens": 30},
            "completion_tokens_details": {"reasoning_tokens": 4},
        }
    )
    u = chat_usage(chat)
    assert (u.input_tokens, u.cached_input_tokens, u.cache_write_tokens, u.output_tokens, u.reasoning_tokens) == (
        20,
        100,
        30,
        20,
        4,
    )
    assert u.total_tokens == 170
    bare = chat_usage(CompletionUsage.model_validate({"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10}))
    assert (bare.input_tokens, bare.cached_input_tokens, bare.output_tokens) == (7, 0, 3)

    resp = ResponseUsage.model_validate(
        {
            "input_tokens": 150,
            "input_tokens_details": {"cached_tokens": 100, "cache_write_tokens": 30},
            "output_tokens": 20,
            "output_tokens_details": {"reasoning_tokens": 4},
            "total_tokens": 170,
        }
    )
    r = responses_usage(resp)
    assert (r.input_tokens, r.cached_input_tokens, r.cache_write_tokens, r.output_tokens, r.reasoning_tokens) == (
        20,
        100,
        30,
        20,
        4,
    )

    anth = AnthropicUsage.model_validate(
        {
            "input_tokens": 20,
            "output_tokens": 20,
            "cache_read_input_tokens": 100,
            "cache_creation_input_tokens": 30,
            "cache_creation": {"ephemeral_5m_input_tokens": 20, "ephemeral_1h_input_tokens": 10},
            "output_tokens_details": {"thinking_tokens": 4},
        }
    )
    a, one_hour = anthropic_usage(anth)
    assert (a.input_tokens, a.cached_input_tokens, a.cache_write_tokens, a.output_tokens, a.reasoning_tokens) == (
        20,
        100,
        30,
        20,
        4,
    )
    assert one_hour == 10
