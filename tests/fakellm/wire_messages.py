"""Anthropic Messages (``POST /v1/messages``): JSON and SSE renderings of a scripted turn."""

from __future__ import annotations

import json
from typing import Any

from fakellm.script import Fault, Tokens, Turn
from fakellm.wire_chat import pieces

ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    529: "overloaded_error",
}


def _only_tool_results(message: dict[str, Any]) -> bool:
    content = message.get("content")
    return isinstance(content, list) and bool(content) and all(b.get("type") == "tool_result" for b in content)


def turn_index(body: dict[str, Any]) -> int:
    """Assistant messages since the last user message that is not only tool results."""
    count = 0
    for message in reversed(body.get("messages") or []):
        role = message.get("role")
        if role == "assistant":
            count += 1
        elif role == "user" and not _only_tool_results(message):
            break
    return count


def usage(t: Tokens, *, output: int | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "input_tokens": t.input,
        "output_tokens": t.output if output is None else output,
        "cache_creation_input_tokens": t.cache_write,
        "cache_read_input_tokens": t.cached,
        "cache_creation": {
            "ephemeral_5m_input_tokens": t.cache_write - t.cache_write_1h,
            "ephemeral_1h_input_tokens": t.cache_write_1h,
        },
        "service_tier": "standard",
    }
    if t.reasoning and output is None:
        out["output_tokens_details"] = {"thinking_tokens": t.reasoning}
    return out


def _blocks(turn: Turn, n: int) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = []
    if turn.text is not None:
        blocks.append({"type": "text", "text": turn.text})
    blocks += [
        {"type": "tool_use", "id": c.id or f"toolu_{n}_{i}", "name": c.name, "input": c.arguments}
        for i, c in enumerate(turn.calls)
    ]
    return blocks


def stop_reason(turn: Turn) -> str:
    if turn.stop is not None:
        return {"length": "max_tokens"}.get(turn.stop, turn.stop)
    return "tool_use" if turn.calls else "end_turn"


def render_json(turn: Turn, model: str, n: int) -> dict[str, Any]:
    return {
        "id": f"msg_{n}",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": _blocks(turn, n),
        "stop_reason": stop_reason(turn),
        "stop_sequence": None,
        "usage": usage(turn.tokens),
    }


def render_events(turn: Turn, model: str, n: int) -> list[dict[str, Any]]:
    start = {**render_json(turn, model, n), "content": [], "stop_reason": None, "usage": usage(turn.tokens, output=1)}
    events: list[dict[str, Any]] = [{"type": "message_start", "message": start}]
    for index, block in enumerate(_blocks(turn, n)):
        if block["type"] == "text":
            events.append(
                {"type": "content_block_start", "index": index, "content_block": {"type": "text", "text": ""}}
            )
            if index == 0:
                events.append({"type": "ping"})
            events += [
                {"type": "content_block_delta", "index": index, "delta": {"type": "text_delta", "text": p}}
                for p in pieces(block["text"])
            ]
        else:
            events.append({"type": "content_block_start", "index": index, "content_block": {**block, "input": {}}})
            events += [
                {
                    "type": "content_block_delta",
                    "index": index,
                    "delta": {"type": "input_json_delta", "partial_json": p},
                }
                for p in pieces(json.dumps(block["input"]), 2)
            ]
        events.append({"type": "content_block_stop", "index": index})
    events.append(
        {
            "type": "message_delta",
            "delta": {"stop_reason": stop_reason(turn), "stop_sequence": None},
            "usage": {"output_tokens": turn.tokens.output}
            | ({"output_tokens_details": {"thinking_tokens": turn.tokens.reasoning}} if turn.tokens.reasoning else {}),
        }
    )
    events.append({"type": "message_stop"})
    return events


def _block(event: dict[str, Any]) -> bytes:
    return f"event: {event['type']}\ndata: {json.dumps(event)}\n\n".encode()


def render_sse(turn: Turn, model: str, n: int, body: dict[str, Any]) -> list[bytes]:
    return [_block(e) for e in render_events(turn, model, n)]


def error_body(status: int, fault: Fault) -> dict[str, Any]:
    kind = fault.error_type or ERROR_TYPES.get(status, "api_error")
    return {"type": "error", "error": {"type": kind, "message": fault.message}, "request_id": "req_fake"}


def stream_error(fault: Fault) -> bytes:
    return _block(
        {"type": "error", "error": {"type": fault.error_type or "overloaded_error", "message": fault.message}}
    )


def malformed_event() -> bytes:
    return b'event: content_block_delta\ndata: {"type": "content_block_delta", "index": 0, "delta\n\n'
