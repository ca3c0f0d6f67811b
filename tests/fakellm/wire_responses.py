"""OpenAI Responses (``POST /v1/responses``): JSON and SSE renderings of a scripted turn."""

from __future__ import annotations

import json
from typing import Any

from fakellm.script import Fault, Tokens, Turn
from fakellm.wire_chat import CREATED, pieces

_ASSISTANT_TYPES = {"function_call", "reasoning"}


def _is_assistant(item: Any) -> bool:
    return isinstance(item, dict) and (item.get("type") in _ASSISTANT_TYPES or item.get("role") == "assistant")


def _is_user(item: Any) -> bool:
    return isinstance(item, dict) and item.get("role") == "user"


def turn_index(body: dict[str, Any]) -> int:
    """Assistant turns (runs of assistant items) since the last user message."""
    items = body.get("input")
    if not isinstance(items, list):
        return 0
    last_user = max((i for i, item in enumerate(items) if _is_user(item)), default=-1)
    count, inside = 0, False
    for item in items[last_user + 1 :]:
        if _is_assistant(item):
            if not inside:
                count += 1
            inside = True
        else:
            inside = False
    return count


def usage(t: Tokens) -> dict[str, Any]:
    details: dict[str, Any] = {"cached_tokens": t.cached, "cache_write_tokens": t.cache_write}
    return {
        "input_tokens": t.prompt,
        "input_tokens_details": details,
        "output_tokens": t.output,
        "output_tokens_details": {"reasoning_tokens": t.reasoning},
        "total_tokens": t.prompt + t.output,
    }


def _items(turn: Turn, n: int) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    if turn.text is not None:
        items.append(
            {
                "type": "message",
                "id": f"msg_{n}",
                "role": "assistant",
                "status": "completed",
                "content": [{"type": "output_text", "text": turn.text, "annotations": [], "logprobs": []}],
            }
        )
    for i, c in enumerate(turn.calls):
        items.append(
            {
                "type": "function_call",
                "id": f"fc_{n}_{i}",
                "call_id": c.id or f"call_{n}_{i}",
                "name": c.name,
                "arguments": json.dumps(c.arguments),
                "status": "completed",
            }
        )
    return items


def _response(turn: Turn, model: str, n: int, *, final: bool) -> dict[str, Any]:
    incomplete = turn.stop in ("length", "max_output_tokens")
    status = ("incomplete" if incomplete else "completed") if final else "in_progress"
    return {
        "id": f"resp_{n}",
        "object": "response",
        "created_at": CREATED,
        "model": model,
        "status": status,
        "error": None,
        "incomplete_details": {"reason": "max_output_tokens"} if final and incomplete else None,
        "output": _items(turn, n) if final else [],
        "parallel_tool_calls": True,
        "tool_choice": "auto",
        "tools": [],
        "usage": usage(turn.tokens) if final else None,
    }


def render_json(turn: Turn, model: str, n: int) -> dict[str, Any]:
    return _response(turn, model, n, final=True)


def render_events(turn: Turn, model: str, n: int) -> list[dict[str, Any]]:
    """The stream's events, in order, with their sequence numbers."""
    events: list[dict[str, Any]] = [
        {"type": "response.created", "response": _response(turn, model, n, final=False)},
        {"type": "response.in_progress", "response": _response(turn, model, n, final=False)},
    ]
    for index, item in enumerate(_items(turn, n)):
        if item["type"] == "message":
            text = item["content"][0]["text"]
            events.append(
                {
                    "type": "response.output_item.added",
                    "output_index": index,
                    "item": {**item, "content": [], "status": "in_progress"},
                }
            )
            ref = {"item_id": item["id"], "output_index": index, "content_index": 0}
            events.append(
                {
                    "type": "response.content_part.added",
                    **ref,
                    "part": {"type": "output_text", "text": "", "annotations": []},
                }
            )
            events += [{"type": "response.output_text.delta", **ref, "delta": p, "logprobs": []} for p in pieces(text)]
            events.append({"type": "response.output_text.done", **ref, "text": text, "logprobs": []})
            events.append(
                {
                    "type": "response.content_part.done",
                    **ref,
                    "part": {"type": "output_text", "text": text, "annotations": []},
                }
            )
        else:
            events.append(
                {
                    "type": "response.output_item.added",
                    "output_index": index,
                    "item": {**item, "arguments": "", "status": "in_progress"},
                }
            )
            ref = {"item_id": item["id"], "output_index": index}
            events += [
                {"type": "response.function_call_arguments.delta", **ref, "delta": p}
                for p in pieces(item["arguments"], 2)
            ]
            events.append({"type": "response.function_call_arguments.done", **ref, "arguments": item["arguments"]})
        events.append({"type": "response.output_item.done", "output_index": index, "item": item})
    final = _response(turn, model, n, final=True)
    events.append(
        {"type": "response.incomplete" if final["status"] == "incomplete" else "response.completed", "response": final}
    )
    return [{**e, "sequence_number": i} for i, e in enumerate(events)]


def _block(event: dict[str, Any]) -> bytes:
    return f"event: {event['type']}\ndata: {json.dumps(event)}\n\n".encode()


def render_sse(turn: Turn, model: str, n: int, body: dict[str, Any]) -> list[bytes]:
    return [_block(e) for e in render_events(turn, model, n)]


def error_body(status: int, fault: Fault) -> dict[str, Any]:
    kinds = {400: "invalid_request_error", 401: "invalid_api_key", 404: "not_found", 429: "rate_limit_exceeded"}
    return {
        "error": {
            "message": fault.message,
            "type": fault.error_type or kinds.get(status, "server_error"),
            "param": None,
            "code": None,
        }
    }


def stream_error(fault: Fault) -> bytes:
    event = {
        "type": "error",
        "code": fault.error_type or "server_error",
        "message": fault.message,
        "param": None,
        "sequence_number": 99,
    }
    return _block(event)


def malformed_event() -> bytes:
    return b'event: response.output_text.delta\ndata: {"type": "response.output_text.delta", "delta\n\n'
