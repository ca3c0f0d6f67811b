"""The turn shapes a custom provider callable may return, translated to the documented one.

A provider callable may return the documented dict (``content``, ``tool_calls``, ``usage``, ``model``), an
OpenAI chat completion (``{"choices": [{"message": ...}], "usage": {"prompt_tokens", ...}}``, as
``completion.model_dump()`` gives it), an OpenAI Responses object (``{"output": [...]}``) or an Anthropic
message (``{"content": [blocks], "usage": {"input_tokens", ...}}``). Content may be a string or a list of
content blocks: text blocks are joined, ``tool_use`` blocks become tool calls, thinking blocks are left out.
Tool calls may come without ids (delite's own call ids are used with the model then) and with arguments as a
JSON string. Anything else raises :class:`MalformedTurnError`, naming what was wrong: never an empty answer.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from delite.log.records import Usage

__all__ = ["MalformedTurnError", "documented_turn", "reported_usage"]

_SKIPPED_BLOCKS = frozenset({"thinking", "redacted_thinking", "reasoning"})
_TEXT_BLOCKS = frozenset({"text", "output_text"})
_HINT = (
    "return {'content': str | None, 'tool_calls': [{'id', 'name', 'arguments'}], 'usage': {...}}, "
    "a ModelTurn, an OpenAI chat completion or an Anthropic message"
)


class MalformedTurnError(ValueError):
    """A provider's turn that delite cannot read (the engine records it as a failed, retryable attempt)."""


def _kind(value: object) -> str:
    return "None" if value is None else type(value).__name__


def _arguments(value: object) -> Any:
    if isinstance(value, str):
        if not value.strip():
            return {}
        import json  # noqa: PLC0415 - the stdlib's json (and its regexes): only for arguments given as text

        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return value  # refused by the tool's validation, and the model is told why
    return {} if value is None else value


def _call(raw: object, where: str) -> dict[str, Any]:
    """One tool call: documented ``{id, name, arguments}``, OpenAI ``{id, function: {...}}``, Anthropic tool_use."""
    if not isinstance(raw, Mapping):
        raise MalformedTurnError(f"{where} has type {_kind(raw)}, not a tool call object")
    function = raw.get("function")
    if isinstance(function, Mapping):  # OpenAI chat: {"id", "type": "function", "function": {"name", "arguments"}}
        name, arguments = function.get("name"), _arguments(function.get("arguments"))
    elif raw.get("type") == "tool_use":  # Anthropic: {"type": "tool_use", "id", "name", "input"}
        name, arguments = raw.get("name"), _arguments(raw.get("input"))
    else:
        name, arguments = raw.get("name"), _arguments(raw.get("arguments"))
    call_id = raw.get("call_id", raw.get("id"))  # Responses: "call_id" answers the call, "id" names the item
    if call_id is None:
        call_id = ""
    if not isinstance(call_id, str):
        raise MalformedTurnError(f"{where}'s id has type {_kind(call_id)}, not a string")
    if not isinstance(name, str) or not name:
        raise MalformedTurnError(f"{where} has no tool name (got {_kind(name)})")
    return {"id": call_id, "name": name, "arguments": arguments}


def _kind_of(block: Mapping[str, Any]) -> str | None:
    """A block's or an item's ``type`` if it is text (anything else is no type delite knows, and may not hash)."""
    kind = block.get("type")
    return kind if isinstance(kind, str) else None


def _blocks(content: list[Any], calls: list[dict[str, Any]]) -> str | None:
    """The text of a list of content blocks; ``tool_use`` blocks are appended to ``calls``."""
    texts: list[str] = []
    for i, block in enumerate(content):
        if isinstance(block, str):
            texts.append(block)
            continue
        if not isinstance(block, Mapping):
            raise MalformedTurnError(f"content[{i}] has type {_kind(block)}, not a content block")
        kind = _kind_of(block)
        if kind in _TEXT_BLOCKS:
            text = block.get("text")
            if not isinstance(text, str):
                raise MalformedTurnError(f"content[{i}] is a text block whose text has type {_kind(text)}")
            texts.append(text)
        elif kind == "refusal":  # OpenAI Responses: the model's refusal is its answer
            refusal = block.get("refusal")
            if not isinstance(refusal, str):
                raise MalformedTurnError(f"content[{i}] is a refusal block whose refusal has type {_kind(refusal)}")
            texts.append(refusal)
        elif kind == "tool_use":
            calls.append(_call(block, f"content[{i}]"))
        elif kind in _SKIPPED_BLOCKS:
            continue
        else:
            raise MalformedTurnError(
                f"content[{i}] is a block of type {block.get('type')!r:.60} that delite does not understand "
                "(it reads 'text' and 'tool_use' blocks and leaves out thinking)"
            )
    return "".join(texts) if texts else None


def _count(usage: Mapping[str, Any], *path: str) -> int:
    value: Any = usage
    for key in path:
        value = value.get(key) if isinstance(value, Mapping) else None
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise MalformedTurnError(f"usage {'.'.join(path)} is {value!r:.40}, not a token count")
    return int(value)


def _usage(usage: object) -> tuple[Any, Any]:
    """Usage in delite's buckets, from the documented, OpenAI chat, OpenAI Responses or Anthropic shape.

    Returns the usage and, when it was translated from a vendor's shape, the vendor's dict (kept as raw_usage).
    """
    if not isinstance(usage, Mapping):
        return usage, None  # None, a Usage, or a wrong type (refused by the caller)
    if "prompt_tokens" in usage or "completion_tokens" in usage:  # OpenAI chat completions
        cached = _count(usage, "prompt_tokens_details", "cached_tokens")
        written = _count(usage, "prompt_tokens_details", "cache_write_tokens")
        buckets = {
            "input_tokens": max(_count(usage, "prompt_tokens") - cached - written, 0),
            "cached_input_tokens": cached,
            "cache_write_tokens": written,
            "output_tokens": _count(usage, "completion_tokens"),
            "reasoning_tokens": _count(usage, "completion_tokens_details", "reasoning_tokens"),
        }
    elif "cache_read_input_tokens" in usage or "cache_creation_input_tokens" in usage:  # Anthropic
        buckets = {
            "input_tokens": _count(usage, "input_tokens"),
            "cached_input_tokens": _count(usage, "cache_read_input_tokens"),
            "cache_write_tokens": _count(usage, "cache_creation_input_tokens"),
            "output_tokens": _count(usage, "output_tokens"),
            "reasoning_tokens": _count(usage, "output_tokens_details", "thinking_tokens"),
        }
    elif "input_tokens_details" in usage or "output_tokens_details" in usage:  # OpenAI Responses
        cached = _count(usage, "input_tokens_details", "cached_tokens")
        written = _count(usage, "input_tokens_details", "cache_write_tokens")
        buckets = {
            "input_tokens": max(_count(usage, "input_tokens") - cached - written, 0),
            "cached_input_tokens": cached,
            "cache_write_tokens": written,
            "output_tokens": _count(usage, "output_tokens"),
            "reasoning_tokens": _count(usage, "output_tokens_details", "reasoning_tokens"),
        }
    else:
        return dict(usage), None
    return buckets, dict(usage)


def _chat_completion(data: Mapping[str, Any]) -> dict[str, Any]:
    choices = data.get("choices")
    if not isinstance(choices, list) or not choices:
        raise MalformedTurnError(f"'choices' is {_kind(choices)} {choices!r:.60}, not a list with a choice in it")
    choice = choices[0]
    message = choice.get("message") if isinstance(choice, Mapping) else None
    if not isinstance(message, Mapping):
        raise MalformedTurnError("choices[0] has no 'message' object")
    if choice.get("finish_reason") == "content_filter":
        raise MalformedTurnError("no answer: it was withheld by the content filter")
    content = message.get("content")
    if content is None and isinstance(message.get("refusal"), str):
        content = message["refusal"]  # the model's refusal is its answer, never an empty one
    return {
        "content": content,
        "tool_calls": message.get("tool_calls") or [],
        "usage": data.get("usage"),
        "model": data.get("model"),
    }


def _responses(data: Mapping[str, Any]) -> dict[str, Any]:
    output = data.get("output")
    if not isinstance(output, list):
        raise MalformedTurnError(f"'output' has type {_kind(output)}, not a list of output items")
    content: list[Any] = []
    calls: list[Any] = []
    for i, item in enumerate(output):
        if not isinstance(item, Mapping):
            raise MalformedTurnError(f"output[{i}] has type {_kind(item)}, not an output item")
        kind = _kind_of(item)
        if kind == "message":
            parts = item.get("content")
            content.extend(parts if isinstance(parts, list) else [parts])
        elif kind == "function_call":
            calls.append(item)
        elif kind not in _SKIPPED_BLOCKS:
            raise MalformedTurnError(
                f"output[{i}] is an item of type {item.get('type')!r:.60} that delite does not understand"
            )
    return {"content": content, "tool_calls": calls, "usage": data.get("usage"), "model": data.get("model")}


def reported_usage(value: Mapping[str, Any]) -> Any:
    """The usage a turn reported (top level, in any shape this module reads), or None when it cannot be read."""
    try:
        usage, _ = _usage(value.get("usage"))
    except MalformedTurnError:
        return None
    return usage if isinstance(usage, Mapping | Usage) else None


def documented_turn(value: Mapping[str, Any]) -> dict[str, Any]:
    """The documented turn dict for any shape this module reads; :class:`MalformedTurnError` for the rest."""
    if "choices" in value:
        data = _chat_completion(value)
    elif "output" in value and "content" not in value:
        data = _responses(value)
    elif "content" in value or "tool_calls" in value:
        data = dict(value)
    else:
        keys = ", ".join(repr(k)[:40] for k in list(value)[:8]) or "none"
        raise MalformedTurnError(f"a dict delite does not recognise (keys: {keys}); {_HINT}")
    raw_calls = data.get("tool_calls")
    if raw_calls is None:
        raw_calls = []
    if not isinstance(raw_calls, list):
        raise MalformedTurnError(f"tool_calls has type {_kind(raw_calls)}, not a list")
    calls = [_call(c, f"tool_calls[{i}]") for i, c in enumerate(raw_calls)]
    content = data.get("content")
    if isinstance(content, list):
        content = _blocks(content, calls)
    elif content is not None and not isinstance(content, str):
        raise MalformedTurnError(f"content has type {_kind(content)}, not a string, a list of content blocks or None")
    model = data.get("model")
    if model is not None and not isinstance(model, str):
        raise MalformedTurnError(f"model has type {_kind(model)}, not a string")
    usage, vendor_usage = _usage(data.get("usage"))
    if usage is not None and not isinstance(usage, Mapping | Usage):
        raise MalformedTurnError(f"usage has type {_kind(usage)}, not an object of token counts")
    raw_usage = data.get("raw_usage", vendor_usage)
    if raw_usage is not None and not isinstance(raw_usage, Mapping):
        raise MalformedTurnError(f"raw_usage has type {_kind(raw_usage)}, not an object")
    return {"content": content, "tool_calls": calls, "usage": usage, "model": model, "raw_usage": raw_usage}
