"""Anthropic's Messages API. The ``anthropic`` SDK is imported when a provider is built, never with delite."""

from __future__ import annotations

import re
from typing import Any

from delite.log.records import Usage
from delite.providers._base import ModelTurn, ProviderCall
from delite.providers._messages import parse_arguments, system_text, text_of, tool_calls_of
from delite.providers._sdk import SDKProvider, StreamProgress, StreamReader, TextSink, int_field

__all__ = ["Anthropic", "anthropic_usage"]

DEFAULT_MAX_TOKENS = 4096
_BAD_ID = re.compile(r"[^a-zA-Z0-9_-]")


def anthropic_usage(raw: Any) -> tuple[Usage, int]:
    """Messages usage in disjoint buckets, and how many cache-write tokens had the one-hour TTL.

    Anthropic's ``input_tokens`` already excludes cache reads and writes.
    """
    usage = Usage(
        input_tokens=int_field(raw, "input_tokens"),
        cached_input_tokens=int_field(raw, "cache_read_input_tokens"),
        cache_write_tokens=int_field(raw, "cache_creation_input_tokens"),
        output_tokens=int_field(raw, "output_tokens"),
        reasoning_tokens=int_field(getattr(raw, "output_tokens_details", None), "thinking_tokens"),
    )
    return usage, int_field(getattr(raw, "cache_creation", None), "ephemeral_1h_input_tokens")


def _tool_id(value: str) -> str:
    """Tool-use ids must match ``[a-zA-Z0-9_-]+``; ids from other providers or delite's own may not."""
    return _BAD_ID.sub("_", value) or "call"


def _image(url: str) -> dict[str, Any]:
    if url.startswith("data:") and ";base64," in url:
        media, data = url[5:].split(";base64,", 1)
        return {"type": "image", "source": {"type": "base64", "media_type": media, "data": data}}
    return {"type": "image", "source": {"type": "url", "url": url}}


def _user_blocks(content: Any) -> list[dict[str, Any]]:
    if isinstance(content, list):
        blocks: list[dict[str, Any]] = []
        for p in content:
            if not isinstance(p, dict):
                continue
            if p.get("type") == "text" and p.get("text"):
                blocks.append({"type": "text", "text": p["text"]})
            elif p.get("type") == "image_url":
                blocks.append(_image((p.get("image_url") or {}).get("url", "")))
        return blocks
    text = text_of(content)
    return [{"type": "text", "text": text}] if text else []


def to_anthropic_messages(messages: list[dict[str, Any]]) -> tuple[str | None, list[dict[str, Any]]]:
    """Neutral messages as ``(system, messages)``, in the shape the API requires.

    Tool results become ``tool_result`` blocks of a user turn, and consecutive turns of one role are merged.
    """
    out: list[dict[str, Any]] = []

    def push(role: str, blocks: list[dict[str, Any]]) -> None:
        if not blocks:
            return
        if out and out[-1]["role"] == role:
            out[-1]["content"].extend(blocks)
        else:
            out.append({"role": role, "content": list(blocks)})

    for m in messages:
        role = m.get("role")
        if role in ("system", "developer"):
            continue
        if role == "assistant":
            text = text_of(m.get("content"))
            blocks: list[dict[str, Any]] = [{"type": "text", "text": text}] if text else []
            blocks += [
                {
                    "type": "tool_use",
                    "id": _tool_id(c.id),
                    "name": c.name,
                    "input": c.arguments if isinstance(c.arguments, dict) else {},
                }
                for c in tool_calls_of(m)
            ]
            push("assistant", blocks)
        elif role == "tool":
            result: dict[str, Any] = {
                "type": "tool_result",
                "tool_use_id": _tool_id(str(m.get("tool_call_id", ""))),
                "content": text_of(m.get("content")),
            }
            if m.get("is_error"):
                result["is_error"] = True
            push("user", [result])
        else:
            push("user", _user_blocks(m.get("content")))
    return system_text(messages), out


def to_anthropic_tools(tools: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Neutral tool schemas as Messages tools."""
    return [
        {
            "name": t["name"],
            "description": t.get("description") or "",
            "input_schema": t.get("parameters") or {"type": "object", "properties": {}},
        }
        for t in tools
    ]


class _MessagesReader(StreamReader["Anthropic"]):
    """A streamed message: usage at its start, text and tool-input pieces by block, cumulative usage, the stop."""

    def __init__(self, provider: Anthropic, model: str, on_text: TextSink, progress: StreamProgress) -> None:
        super().__init__(provider, model, on_text, progress)
        self.text: list[str] = []
        self.blocks: dict[int, dict[str, Any]] = {}
        self.raw_usage: dict[str, Any] = {}
        self.answered_by = model
        self.stopped = False
        self.response_id: str | None = None
        self.stop_reason: str | None = None

    def read(self, event: Any) -> bool:
        kind = event.type
        progress = self.progress
        if kind == "message_start":
            self.answered_by = event.message.model or self.answered_by
            self.response_id = getattr(event.message, "id", None) or self.response_id
            self.raw_usage = event.message.usage.to_dict()
            progress.usage, progress.cache_write_1h = anthropic_usage(_Namespace(self.raw_usage))
        elif kind == "content_block_start":
            block = event.content_block
            if block.type == "tool_use":
                self.blocks[event.index] = {"id": block.id, "name": block.name, "json": []}
            elif block.type == "text" and block.text:
                self.text.append(block.text)
                self.on_text(block.text)
        elif kind == "content_block_delta":
            delta = event.delta
            if delta.type == "text_delta":
                self.text.append(delta.text)
                self.on_text(delta.text)
            elif delta.type == "input_json_delta" and event.index in self.blocks:
                self.blocks[event.index]["json"].append(delta.partial_json)
        elif kind == "message_delta":
            self.stop_reason = getattr(getattr(event, "delta", None), "stop_reason", None) or self.stop_reason
            # Cumulative counts: overwrite what message_start said.
            self.raw_usage.update({k: v for k, v in event.usage.to_dict().items() if v is not None})
            progress.usage, progress.cache_write_1h = anthropic_usage(_Namespace(self.raw_usage))
        elif kind == "message_stop":
            self.stopped = True
        return self.stopped

    def turn(self) -> ModelTurn:
        if not self.stopped:
            raise self.provider._incomplete("message_stop")  # noqa: SLF001 - the reader's own provider
        calls = [
            ProviderCall(id=b["id"], name=b["name"], arguments=parse_arguments("".join(b["json"])))
            for _, b in sorted(self.blocks.items())
        ]
        raw_usage = self.raw_usage
        usage = anthropic_usage(_Namespace(raw_usage)) if raw_usage else None
        return self.provider._turn(  # noqa: SLF001 - the reader's own provider
            self.text,
            calls,
            self.answered_by,
            usage,
            raw_usage or None,
            response_id=self.response_id,
            stop_reason=self.stop_reason,
        )


class Anthropic(SDKProvider):
    """Anthropic's Messages API.

    Example::

        provider = Anthropic()            # claude-haiku-4-5 (or $DELITE_ANTHROPIC_MODEL); key from ANTHROPIC_API_KEY
        provider = Anthropic("claude-sonnet-4-5", max_tokens=2048)

    See :class:`~delite.providers._sdk.SDKProvider` for every option. ``max_tokens`` defaults to 4096
    (the API requires a limit). Thinking blocks are not sent back between calls.
    """

    vendor = "anthropic"
    price_vendor = "anthropic"
    env_key = "ANTHROPIC_API_KEY"
    env_base_url = "ANTHROPIC_BASE_URL"
    env_model = "DELITE_ANTHROPIC_MODEL"
    default_model = "claude-haiku-4-5"
    default_host = "api.anthropic.com"
    sdk_name = "anthropic"

    client_class = "Anthropic"
    async_client_class = "AsyncAnthropic"
    reader = _MessagesReader
    as_is = ("messages", "tools")
    required = ("messages",)

    def _endpoint(self, client: Any) -> Any:
        return client.messages.create

    def _request(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]], model: str) -> dict[str, Any]:
        system, wire = to_anthropic_messages(messages)
        request: dict[str, Any] = {
            "model": model,
            "max_tokens": self.max_tokens or DEFAULT_MAX_TOKENS,
            "messages": wire,
            **self._sampling(),
        }
        if system:
            request["system"] = system
        if tools:
            request["tools"] = to_anthropic_tools(tools)
        request.update(self.params)
        return request

    def _turn(
        self,
        text: list[str],
        calls: list[ProviderCall],
        model: str,
        usage: tuple[Usage, int] | None,
        raw: Any,
        *,
        response_id: object,
        stop_reason: object,
    ) -> ModelTurn:
        priced = Usage(known=False) if usage is None else self._price(model, usage[0], cache_write_1h=usage[1])
        return ModelTurn(
            content="".join(text) if text else None,
            tool_calls=calls,
            usage=priced,
            model=model,
            raw_usage=raw,
            response_id=response_id if isinstance(response_id, str) and response_id else None,
            finish_reasons=[stop_reason] if isinstance(stop_reason, str) and stop_reason else [],
        )

    def _parse(self, response: Any, model: str) -> ModelTurn:
        message = response
        text: list[str] = []
        calls: list[ProviderCall] = []
        for block in message.content:
            if block.type == "text":
                text.append(block.text)
            elif block.type == "tool_use":
                calls.append(ProviderCall(id=block.id, name=block.name, arguments=block.input))
        usage = anthropic_usage(message.usage)
        return self._turn(
            text,
            calls,
            message.model or model,
            usage,
            message.usage.to_dict(),
            response_id=getattr(message, "id", None),
            stop_reason=getattr(message, "stop_reason", None),
        )


class _Namespace:
    """Attribute access over the usage dict accumulated from stream events (nested dicts included)."""

    def __init__(self, data: dict[str, Any]) -> None:
        self._data = data

    def __getattr__(self, name: str) -> Any:
        value = self._data.get(name)
        return _Namespace(value) if isinstance(value, dict) else value
