"""OpenAI Chat Completions, also the way to every OpenAI-compatible server (Ollama, vLLM, llama.cpp, OpenRouter).

The ``openai`` SDK is imported when a provider is built, never when delite is imported.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from delite.errors import ProviderError
from delite.log.records import Usage
from delite.providers._base import ModelTurn, ProviderCall
from delite.providers._messages import dump_arguments, parse_arguments, tool_calls_of
from delite.providers._sdk import SDKProvider, StreamProgress, StreamReader, TextSink, int_field

__all__ = ["OpenAI", "chat_usage"]


def chat_usage(raw: Any) -> Usage:
    """Chat Completions usage in disjoint buckets (``prompt_tokens`` includes the cached and cache-write ones)."""
    prompt_details = getattr(raw, "prompt_tokens_details", None)
    cached = int_field(prompt_details, "cached_tokens")
    written = int_field(prompt_details, "cache_write_tokens")
    return Usage(
        input_tokens=max(int_field(raw, "prompt_tokens") - cached - written, 0),
        cached_input_tokens=cached,
        cache_write_tokens=written,
        output_tokens=int_field(raw, "completion_tokens"),
        reasoning_tokens=int_field(getattr(raw, "completion_tokens_details", None), "reasoning_tokens"),
    )


def to_chat_messages(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Neutral messages as Chat Completions message params (built field by field, unknown keys dropped)."""
    out: list[dict[str, Any]] = []
    for m in messages:
        role = m.get("role")
        if role == "assistant":
            message: dict[str, Any] = {"role": "assistant", "content": m.get("content")}
            calls = tool_calls_of(m)
            if calls:
                message["tool_calls"] = [
                    {
                        "id": c.id,
                        "type": "function",
                        "function": {"name": c.name, "arguments": dump_arguments(c.arguments)},
                    }
                    for c in calls
                ]
            out.append(message)
        elif role == "tool":
            call_id = str(m.get("tool_call_id", ""))
            out.append({"role": "tool", "tool_call_id": call_id, "content": m.get("content") or ""})
        else:
            out.append({"role": role, "content": m.get("content") or ""})
    return out


def to_chat_tools(tools: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Neutral tool schemas as Chat Completions function tools."""
    return [
        {
            "type": "function",
            "function": {
                "name": t["name"],
                "description": t.get("description") or "",
                "parameters": t.get("parameters") or {"type": "object", "properties": {}},
            },
        }
        for t in tools
    ]


class _ChatReader(StreamReader["OpenAI"]):
    """A streamed chat completion: text and tool-call pieces by choice 0, then the finish reason and usage."""

    def __init__(self, provider: OpenAI, model: str, on_text: TextSink, progress: StreamProgress) -> None:
        super().__init__(provider, model, on_text, progress)
        self.text: list[str] = []
        self.calls: dict[int, dict[str, Any]] = {}
        self.finish: str | None = None
        self.answered_by = model
        self.raw_usage: Any = None
        self.response_id: str | None = None

    def read(self, event: Any) -> bool:
        chunk = event
        self.answered_by = chunk.model or self.answered_by
        self.response_id = getattr(chunk, "id", None) or self.response_id
        if chunk.usage is not None:
            self.raw_usage = chunk.usage
            self.progress.usage = chat_usage(chunk.usage)
        for choice in chunk.choices:
            if choice.index != 0:
                continue
            delta = choice.delta
            if delta is not None and delta.content:
                self.text.append(delta.content)
                self.on_text(delta.content)
            for tc in (delta.tool_calls if delta is not None else None) or []:
                slot = self.calls.setdefault(tc.index, {"id": None, "name": "", "arguments": []})
                if tc.id:
                    slot["id"] = tc.id
                if tc.function is not None:
                    if tc.function.name:
                        slot["name"] = tc.function.name
                    if tc.function.arguments:
                        slot["arguments"].append(tc.function.arguments)
            if choice.finish_reason is not None:
                self.finish = choice.finish_reason
        return False  # the usage chunk comes after the finish reason: read to the end

    def turn(self) -> ModelTurn:
        if self.finish is None:
            raise self.provider._incomplete("a finish_reason")  # noqa: SLF001 - the reader's own provider
        turn_calls = [
            ProviderCall(id=c["id"] or f"call_{i}", name=c["name"], arguments=parse_arguments("".join(c["arguments"])))
            for i, c in sorted(self.calls.items())
        ]
        content = "".join(self.text) if self.text else None
        return self.provider._turn(  # noqa: SLF001 - the reader's own provider
            content, turn_calls, self.finish, self.answered_by, self.raw_usage, response_id=self.response_id
        )


class OpenAI(SDKProvider):
    """OpenAI's Chat Completions API, or any server that speaks it (``base_url=``).

    Example::

        provider = OpenAI()               # gpt-4o-mini (or $DELITE_OPENAI_MODEL); OPENAI_API_KEY from the env
        provider = OpenAI("gpt-4.1-mini")                                      # any model id
        local = OpenAI("llama3.2", base_url="http://localhost:11434/v1")      # Ollama: no key needed

    See :class:`~delite.providers._sdk.SDKProvider` for every option. ``max_tokens`` is sent as
    ``max_completion_tokens``; streamed calls ask for usage (``stream_options.include_usage``).
    """

    vendor = "openai"
    price_vendor = "openai"
    env_key = "OPENAI_API_KEY"
    env_base_url = "OPENAI_BASE_URL"
    env_model = "DELITE_OPENAI_MODEL"
    default_model = "gpt-4o-mini"
    default_host = "api.openai.com"
    sdk_name = "openai"

    client_class = "OpenAI"
    async_client_class = "AsyncOpenAI"
    reader = _ChatReader
    as_is = ("messages", "tools")
    required = ("messages",)

    def _endpoint(self, client: Any) -> Any:
        return client.chat.completions.create

    def _request(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]], model: str) -> dict[str, Any]:
        request: dict[str, Any] = {"model": model, "messages": to_chat_messages(messages), **self._sampling()}
        if tools:
            request["tools"] = to_chat_tools(tools)
        if self.max_tokens is not None:
            request["max_completion_tokens"] = self.max_tokens
        request.update(self.params)
        return request

    stream_request: ClassVar[Mapping[str, Any]] = {"stream_options": {"include_usage": True}}

    def _turn(
        self,
        content: str | None,
        calls: list[ProviderCall],
        finish: str | None,
        model: str,
        raw_usage: Any,
        *,
        response_id: str | None = None,
    ) -> ModelTurn:
        if finish == "content_filter":
            raise ProviderError("the answer was withheld by the content filter", provider=self.name)
        if raw_usage is None:
            usage = Usage(known=False)
            raw = None
        else:
            usage = self._price(model, chat_usage(raw_usage))
            raw = raw_usage.to_dict()
        return ModelTurn(
            content=content,
            tool_calls=calls,
            usage=usage,
            model=model,
            raw_usage=raw,
            response_id=response_id if isinstance(response_id, str) and response_id else None,
            finish_reasons=[finish] if isinstance(finish, str) and finish else [],
        )

    def _parse(self, response: Any, model: str) -> ModelTurn:
        if not response.choices:
            raise ProviderError("the response has no choices", provider=self.name, retryable=True)
        choice = response.choices[0]
        message = choice.message
        calls = [
            ProviderCall(id=c.id, name=c.function.name, arguments=parse_arguments(c.function.arguments))
            for c in message.tool_calls or []
            if getattr(c, "function", None) is not None
        ]
        return self._turn(
            message.content,
            calls,
            choice.finish_reason,
            response.model or model,
            response.usage,
            response_id=getattr(response, "id", None),
        )
