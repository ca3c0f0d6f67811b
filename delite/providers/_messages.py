"""The neutral conversation shape every provider accepts, and helpers to translate it.

Messages are OpenAI chat dicts: ``{"role": "system" | "user" | "assistant" | "tool", ...}``. An assistant
message may carry ``tool_calls`` (``[{"id", "type": "function", "function": {"name", "arguments"}}]``,
arguments a JSON string); a tool message carries ``tool_call_id``, ``content`` and optionally
``"is_error": True``. ``content`` is a string, None, or a list of chat content parts (``{"type": "text",
"text"}``, ``{"type": "image_url", "image_url": {"url"}}``). Tools are ``{"name", "description",
"parameters"}`` with a JSON-schema ``parameters``. The app's ``history`` uses the same shape.
"""

from __future__ import annotations

import json
from typing import Any

__all__ = ["ToolUse", "dump_arguments", "parse_arguments", "system_text", "text_of", "tool_calls_of"]


def parse_arguments(text: str | None) -> Any:
    """A tool call's JSON arguments as a value; empty means none; invalid JSON stays the raw string.

    The raw string then fails the tool's validation, and the model is told so, instead of the run failing.
    """
    if text is None or not text.strip():
        return {}
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def dump_arguments(arguments: Any) -> str:
    """Arguments as the JSON string the OpenAI APIs carry."""
    if isinstance(arguments, str):
        return arguments
    return json.dumps({} if arguments is None else arguments, ensure_ascii=False, separators=(",", ":"))


def text_of(content: Any) -> str:
    """The text of a message's content (a string, None, or a list of content parts)."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(str(p.get("text", "")) for p in content if isinstance(p, dict) and p.get("type") == "text")
    return str(content)


def system_text(messages: list[dict[str, Any]]) -> str | None:
    """Every system (or developer) message's text, joined; None when there is none."""
    parts = [text_of(m.get("content")) for m in messages if m.get("role") in ("system", "developer")]
    return "\n\n".join(p for p in parts if p) or None


class ToolUse:
    """One tool call of an assistant message, in neutral form."""

    __slots__ = ("arguments", "id", "name")

    def __init__(self, id: str, name: str, arguments: Any) -> None:  # noqa: A002 - the wire field's name
        """Build from the call's id, tool name and parsed arguments."""
        self.id = id
        self.name = name
        self.arguments = arguments


def tool_calls_of(message: dict[str, Any]) -> list[ToolUse]:
    """An assistant message's tool calls, with arguments parsed."""
    out = []
    for i, call in enumerate(message.get("tool_calls") or []):
        function = call.get("function") or {}
        raw = function.get("arguments")
        arguments = parse_arguments(raw) if isinstance(raw, str) or raw is None else raw
        out.append(ToolUse(str(call.get("id") or f"call_{i}"), str(function.get("name", "")), arguments))
    return out
