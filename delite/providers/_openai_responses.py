"""OpenAI's Responses API (``POST /v1/responses``), used statelessly: every call sends the whole conversation.

Statelessness is what durability needs: a resumed execution rebuilds the conversation from its log, so it
never depends on a ``previous_response_id`` the server may have dropped. The ``openai`` SDK is imported when
a provider is built, never when delite is imported.
"""

from __future__ import annotations

from typing import Any

from delite.log.records import Usage
from delite.providers._base import ModelTurn, ProviderCall
from delite.providers._messages import dump_arguments, parse_arguments, system_text, text_of, tool_calls_of
from delite.providers._sdk import SDKProvider, StreamProgress, StreamReader, TextSink, int_field

__all__ = ["OpenAIResponses", "responses_usage"]


def responses_usage(raw: Any) -> Usage:
    """Responses usage in disjoint buckets (``input_tokens`` includes the cached and cache-write ones)."""
    details = getattr(raw, "input_tokens_details", None)
    cached = int_field(details, "cached_tokens")
    written = int_field(details, "cache_write_tokens")
    return Usage(
        input_tokens=max(int_field(raw, "input_tokens") - cached - written, 0),
        cached_input_tokens=cached,
        cache_write_tokens=written,
        output_tokens=int_field(raw, "output_tokens"),
        reasoning_tokens=int_field(getattr(raw, "output_tokens_details", None), "reasoning_tokens"),
    )


def _content(content: Any, *, role: str) -> Any:
    if not isinstance(content, list):
        return content or ""
    parts: list[dict[str, Any]] = []
    for p in content:
        if not isinstance(p, dict):
            continue
        if p.get("type") == "text":
            parts.append({"type": "output_text" if role == "assistant" else "input_text", "text": p.get("text", "")})
        elif p.get("type") == "image_url":
            url = (p.get("image_url") or {}).get("url", "")
            parts.append({"type": "input_image", "image_url": url, "detail": "auto"})
    return parts


def to_responses_input(messages: list[dict[str, Any]]) -> tuple[str | None, list[dict[str, Any]]]:
    """Neutral messages as ``(instructions, input items)``: system text becomes the instructions."""
    items: list[dict[str, Any]] = []
    for m in messages:
        role = m.get("role")
        if role in ("system", "developer"):
            continue
        if role == "assistant":
            text = text_of(m.get("content"))
            if text:
                items.append({"role": "assistant", "content": text})
            items += [
                {"type": "function_call", "call_id": c.id, "name": c.name, "arguments": dump_arguments(c.arguments)}
                for c in tool_calls_of(m)
            ]
        elif role == "tool":
            call_id = str(m.get("tool_call_id", ""))
            items.append({"type": "function_call_output", "call_id": call_id, "output": text_of(m.get("content"))})
        else:
            items.append({"role": "user", "content": _content(m.get("content"), role="user")})
    return system_text(messages), items


def to_responses_tools(tools: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Neutral tool schemas as Responses function tools (flat, not strict)."""
    return [
        {
            "type": "function",
            "name": t["name"],
            "description": t.get("description") or "",
            "parameters": t.get("parameters") or {"type": "object", "properties": {}},
            "strict": False,
        }
        for t in tools
    ]


class _ResponsesReader(StreamReader["OpenAIResponses"]):
    """A streamed response: text deltas, then the whole response in its terminal event."""

    def __init__(self, provider: OpenAIResponses, model: str, on_text: TextSink, progress: StreamProgress) -> None:
        super().__init__(provider, model, on_text, progress)
        self.final: Any = None

    def read(self, event: Any) -> bool:
        kind = event.type
        if kind == "response.output_text.delta":
            self.on_text(event.delta)
        elif kind in ("response.completed", "response.incomplete", "response.failed"):
            self.final = event.response
            return True
        elif kind == "error":
            code = getattr(event, "code", None)
            raise self.provider._stream_error(code, str(getattr(event, "message", "")))  # noqa: SLF001
        return False

    def turn(self) -> ModelTurn:
        final = self.final
        if final is None:
            raise self.provider._incomplete("response.completed")  # noqa: SLF001 - the reader's own provider
        if final.usage is not None:
            self.progress.usage = responses_usage(final.usage)
        return self.provider._parse(final, self.model)  # noqa: SLF001


class OpenAIResponses(SDKProvider):
    """OpenAI's Responses API.

    Example::

        provider = OpenAIResponses()      # gpt-5-mini (or $DELITE_OPENAI_RESPONSES_MODEL)
        provider = OpenAIResponses("gpt-5", params={"reasoning": {"effort": "low"}})

    See :class:`~delite.providers._sdk.SDKProvider` for every option. ``max_tokens`` is sent as
    ``max_output_tokens``. Reasoning items are not sent back between calls.
    """

    vendor = "openai-responses"
    price_vendor = "openai"
    env_key = "OPENAI_API_KEY"
    env_base_url = "OPENAI_BASE_URL"
    env_model = "DELITE_OPENAI_RESPONSES_MODEL"
    default_model = "gpt-5-mini"
    default_host = "api.openai.com"
    sdk_name = "openai"

    client_class = "OpenAI"
    async_client_class = "AsyncOpenAI"
    reader = _ResponsesReader
    as_is = ("input", "tools")

    def _endpoint(self, client: Any) -> Any:
        return client.responses.create

    def _request(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]], model: str) -> dict[str, Any]:
        instructions, items = to_responses_input(messages)
        request: dict[str, Any] = {"model": model, "input": items, **self._sampling()}
        if instructions:
            request["instructions"] = instructions
        if tools:
            request["tools"] = to_responses_tools(tools)
        if self.max_tokens is not None:
            request["max_output_tokens"] = self.max_tokens
        request.update(self.params)
        return request

    def _parse(self, response: Any, model: str) -> ModelTurn:
        status = getattr(response, "status", None)
        if status == "failed" or (status not in (None, "completed", "incomplete")):
            error = getattr(response, "error", None)
            code = getattr(error, "code", None)
            raise self._stream_error(str(code) if code else None, str(getattr(error, "message", None) or status))
        text: list[str] = []
        calls: list[ProviderCall] = []
        for item in response.output or []:
            kind = getattr(item, "type", None)
            if kind == "message":
                for part in item.content or []:
                    if getattr(part, "type", None) == "output_text":
                        text.append(part.text)
                    elif getattr(part, "type", None) == "refusal":
                        text.append(part.refusal)
            elif kind == "function_call":
                calls.append(ProviderCall(id=item.call_id, name=item.name, arguments=parse_arguments(item.arguments)))
        answered_by = response.model or model
        raw = response.usage
        usage = Usage(known=False) if raw is None else self._price(answered_by, responses_usage(raw))
        return ModelTurn(
            content="".join(text) if text else None,
            tool_calls=calls,
            usage=usage,
            model=answered_by,
            raw_usage=None if raw is None else raw.to_dict(),
            response_id=_text_or_none(getattr(response, "id", None)),
            finish_reasons=[_finish_reason(response, calls)],
        )


def _text_or_none(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _finish_reason(response: Any, calls: list[ProviderCall]) -> str:
    """Why a response stopped, in the chat API's words: the incomplete reason, else tool calls or a stop."""
    if getattr(response, "status", None) == "incomplete":
        reason = getattr(getattr(response, "incomplete_details", None), "reason", None)
        return reason if isinstance(reason, str) and reason else "incomplete"
    return "tool_calls" if calls else "stop"
