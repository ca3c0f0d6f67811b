"""A custom provider callable may return a vendor's own shape: the real SDKs' results, as ``model_dump()`` gives
them, over HTTP to the fake server, read the same as delite's own providers read them; unknown shapes are a
clear, recorded, retried ProviderError, never an empty answer."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fakellm import FakeLLM
from providerkit import APIS, MODELS, make_agent, make_provider
from test_provider_runs import SCRIPT

from delite import Agent, RetryPolicy
from delite.errors import ProviderError
from delite.log.records import ModelCallFailed, ModelResponded
from delite.store import FileStore


def dumping(fake: FakeLLM, api: str) -> Any:
    """A plain callable: the real SDK's call, returned as the vendor's dict (``model_dump()``)."""
    inner = make_provider(fake, api)

    def custom(messages: list[dict[str, Any]], tools: list[dict[str, Any]], model: str | None) -> dict[str, Any]:
        request = inner._request(messages, tools, model or MODELS[api])
        client = inner.client
        if api == "chat":
            return client.chat.completions.create(**request).model_dump()
        if api == "responses":
            return client.responses.create(**request).model_dump()
        return client.messages.create(**request).model_dump()

    return custom


def turns(data_dir: Path, eid: str) -> list[ModelResponded]:
    return [r for r in FileStore(data_dir).read(eid).records if isinstance(r, ModelResponded)]


@pytest.mark.parametrize("api", APIS)
def test_vendor_dicts_read_like_the_vendor_provider(fake: FakeLLM, tmp_path: Path, api: str) -> None:
    fake.load(SCRIPT)
    own = make_agent(tmp_path / "own", make_provider(fake, api)).run("Weather and time in Paris?")
    fake.load(SCRIPT)
    custom = make_agent(tmp_path / "custom", dumping(fake, api)).run("Weather and time in Paris?")
    assert custom.status.value == "completed"
    assert custom.answer == own.answer == "It is 18C and sunny in Paris; 12:00 CET."
    mine, theirs = turns(tmp_path / "custom", custom.execution_id), turns(tmp_path / "own", own.execution_id)
    assert [[(c.name, c.arguments, c.provider_id) for c in t.tool_calls] for t in mine] == [
        [(c.name, c.arguments, c.provider_id) for c in t.tool_calls] for t in theirs
    ]
    assert [t.content for t in mine] == [t.content for t in theirs]
    # The same disjoint token buckets (cost is the provider's business: a plain callable has no price table).
    buckets = ("input_tokens", "output_tokens", "cached_input_tokens", "cache_write_tokens", "reasoning_tokens")
    assert [[getattr(t.usage, b) for b in buckets] for t in mine] == [
        [getattr(t.usage, b) for b in buckets] for t in theirs
    ]
    assert all(t.raw_usage for t in mine)


def test_tool_calls_without_ids_get_delite_ids(tmp_path: Path) -> None:
    seen: list[list[dict[str, Any]]] = []

    def provider(messages: list[dict[str, Any]], tools: list[dict[str, Any]], model: str | None) -> dict[str, Any]:
        seen.append(messages)
        if len(seen) == 1:
            return {"content": None, "tool_calls": [{"name": "echo", "arguments": {"x": 1}}, {"name": "echo"}]}
        return {"content": "done"}

    def echo(x: int = 0) -> int:
        return x

    agent = Agent(tmp_path, provider=provider, tools=[echo])
    r = agent.run("go")
    assert r.answer == "done"
    assistant = next(m for m in seen[1] if m["role"] == "assistant")
    assert [c["id"] for c in assistant["tool_calls"]] == ["c1.0", "c1.1"]
    results = {m["tool_call_id"]: m["content"] for m in seen[1] if m["role"] == "tool"}
    assert set(results) == {"c1.0", "c1.1"}


def test_content_blocks_are_understood(tmp_path: Path) -> None:
    replies = iter(
        [
            {
                "type": "message",
                "content": [
                    {"type": "thinking", "thinking": "the user wants an echo"},
                    {"type": "text", "text": "Let me check."},
                    {"type": "tool_use", "id": "toolu_1", "name": "echo", "input": {"x": 7}},
                ],
                "usage": {"input_tokens": 9, "output_tokens": 4, "cache_read_input_tokens": None},
            },
            {"content": [{"type": "text", "text": "It is "}, {"type": "text", "text": "7."}]},
        ]
    )

    def echo(x: int) -> int:
        return x

    agent = Agent(tmp_path, provider=lambda m, t, model: next(replies), tools=[echo])
    r = agent.run("go")
    assert r.answer == "It is 7."
    first = turns(tmp_path, r.execution_id)[0]
    assert first.content == "Let me check."
    assert [(c.name, c.arguments, c.provider_id) for c in first.tool_calls] == [("echo", {"x": 7}, "toolu_1")]
    assert (first.usage.input_tokens, first.usage.output_tokens) == (9, 4)


@pytest.mark.parametrize(
    "reply",
    [
        {"choices": []},
        {"choices": [{"delta": {"content": "hi"}}]},
        {"text": "hi"},
        {"output_text": "hi"},
        {"content": [{"type": "image", "source": {}}]},
        {"content": [{"type": "text", "text": 5}]},
        {"content": "x", "tool_calls": [{"id": "a"}]},
        {"content": "x", "tool_calls": {"name": "echo"}},
        {"choices": [{"message": {"content": None}, "finish_reason": "content_filter"}]},
        {"content": [{"type": ["text"], "text": "hi"}]},
        {"output": [{"type": {"message": 1}, "content": []}]},
    ],
    ids=[
        "no-choice",
        "delta",
        "text-key",
        "output-text",
        "image-block",
        "text-not-str",
        "call-no-name",
        "calls-dict",
        "content-filter",
        "block-type-a-list",
        "item-type-a-dict",
    ],
)
def test_unrecognised_shapes_are_a_recorded_provider_error(tmp_path: Path, reply: dict[str, Any]) -> None:
    calls = 0

    def provider(messages: list[dict[str, Any]], tools: list[dict[str, Any]], model: str | None) -> dict[str, Any]:
        nonlocal calls
        calls += 1
        return reply

    agent = Agent(tmp_path, provider=provider, retry=RetryPolicy(max_attempts=3, base_delay=0))
    with pytest.raises(ProviderError, match="malformed turn") as info:
        agent.run("hi")
    assert info.value.retryable
    assert calls == 3  # the retry policy, then a failed run: never an empty answer
    eid = FileStore(tmp_path).list_ids()[0]
    state = agent.get(eid)
    assert state.status.value == "failed"
    failures = [r for r in FileStore(tmp_path).read(eid).records if isinstance(r, ModelCallFailed)]
    assert [f.retryable for f in failures] == [True, True, False]


@pytest.mark.parametrize(
    ("reply", "answer"),
    [
        (
            {"choices": [{"message": {"content": None, "refusal": "I cannot help."}, "finish_reason": "stop"}]},
            "I cannot help.",
        ),
        ({"output": [{"type": "message", "content": [{"type": "refusal", "refusal": "No."}]}]}, "No."),
        (
            {
                "output": [
                    {"type": "reasoning"},
                    {"type": "message", "content": [{"type": "output_text", "text": "Hi."}]},
                ]
            },
            "Hi.",
        ),
        ({"content": "Hi.", "tool_calls": None, "usage": None}, "Hi."),
    ],
    ids=["chat-refusal", "responses-refusal", "responses-text", "documented-nulls"],
)
def test_refusals_and_text_are_the_answer(tmp_path: Path, reply: dict[str, Any], answer: str) -> None:
    r = Agent(tmp_path, provider=lambda m, t, model: reply).run("hi")
    assert (r.status.value, r.answer) == ("completed", answer)


def test_a_malformed_turn_from_an_async_provider_is_recorded_too(tmp_path: Path) -> None:
    import asyncio

    class Async:
        name = "async-custom"
        calls = 0

        def __call__(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]], model: str | None) -> Any:
            raise AssertionError("the async API awaits acall")

        async def acall(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]], model: str | None) -> Any:
            self.calls += 1
            return {"content": {"text": "not a string"}, "usage": {"input_tokens": 3, "output_tokens": 1}}

    provider = Async()
    agent = Agent(tmp_path, provider=provider, retry=RetryPolicy(max_attempts=2, base_delay=0))
    with pytest.raises(ProviderError, match="content has type dict"):
        asyncio.run(agent.arun("hi"))
    assert provider.calls == 2
    eid = FileStore(tmp_path).list_ids()[0]
    assert agent.get(eid).status.value == "failed"
    failures = [r for r in FileStore(tmp_path).read(eid).records if isinstance(r, ModelCallFailed)]
    assert len(failures) == 2
    # What each malformed turn said it was billed is recorded with its failed attempt (and counts in the totals).
    assert [(f.usage.input_tokens, f.usage.output_tokens) for f in failures if f.usage] == [(3, 1), (3, 1)]
    assert agent.get(eid).totals.total_tokens == 8
