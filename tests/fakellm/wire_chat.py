"""OpenAI Chat Completions (``POST /v1/chat/completions``): JSON and SSE renderings of a scripted turn."""

from __future__ import annotations

import json
from typing import Any

from fakellm.script import Fault, Tokens, Turn

CREATED = 1760000000


def turn_index(body: dict[str, Any]) -> int:
    """Assistant messages since the last user message."""
    count = 0
    for message in reversed(body.get("messages") or []):
        role = message.get("role")
        if role == "user":
            break
        if role == "assistant":
            count += 1
    return count


def call_id(n: int, i: int, given: str | None) -> str:
    return given or f"call_{n}_{i}"


def usage(t: Tokens) -> dict[str, Any]:
    details: dict[str, Any] = {"cached_tokens": t.cached, "audio_tokens": 0}
    if t.cache_write:
        details["cache_write_tokens"] = t.cache_write
    return {
        "prompt_tokens": t.prompt,
        "completion_tokens": t.output,
        "total_tokens": t.prompt + t.output,
        "prompt_tokens_details": details,
        "completion_tokens_details": {
            "reasoning_tokens": t.reasoning,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


def finish_reason(turn: Turn) -> str:
    return turn.stop or ("tool_calls" if turn.calls else "stop")


def render_json(turn: Turn, model: str, n: int) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": turn.text, "refusal": None}
    if turn.calls:
        message["tool_calls"] = [
            {
                "id": call_id(n, i, c.id),
                "type": "function",
                "function": {"name": c.name, "arguments": json.dumps(c.arguments)},
            }
            for i, c in enumerate(turn.calls)
        ]
    return {
        "id": f"chatcmpl-{n}",
        "object": "chat.completion",
        "created": CREATED,
        "model": model,
        "choices": [{"index": 0, "finish_reason": finish_reason(turn), "logprobs": None, "message": message}],
        "usage": usage(turn.tokens),
    }


def pieces(text: str, parts: int = 3) -> list[str]:
    """Split text into up to ``parts`` non-empty pieces."""
    if not text:
        return []
    size = max(1, -(-len(text) // parts))
    return [text[i : i + size] for i in range(0, len(text), size)]


def _block(data: Any) -> bytes:
    return b"data: " + json.dumps(data).encode() + b"\n\n"


def render_chunks(turn: Turn, model: str, n: int, *, include_usage: bool) -> list[dict[str, Any]]:
    """The chunk objects of the stream, in order (the final ``[DONE]`` is not one of them)."""
    base = {"id": f"chatcmpl-{n}", "object": "chat.completion.chunk", "created": CREATED, "model": model}
    extra = {"usage": None} if include_usage else {}

    def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        choice = {"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}
        return {**base, "choices": [choice], **extra}

    chunks = [chunk({"role": "assistant", "content": None if turn.text is None else ""})]
    chunks += [chunk({"content": p}) for p in pieces(turn.text or "")]
    for i, c in enumerate(turn.calls):
        args = json.dumps(c.arguments)
        head = {
            "index": i,
            "id": call_id(n, i, c.id),
            "type": "function",
            "function": {"name": c.name, "arguments": ""},
        }
        chunks.append(chunk({"tool_calls": [head]}))
        chunks += [chunk({"tool_calls": [{"index": i, "function": {"arguments": p}}]}) for p in pieces(args, 2)]
    chunks.append(chunk({}, finish_reason(turn)))
    if include_usage:
        chunks.append({**base, "choices": [], "usage": usage(turn.tokens)})
    return chunks


def render_sse(turn: Turn, model: str, n: int, body: dict[str, Any]) -> list[bytes]:
    include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
    blocks = [_block(c) for c in render_chunks(turn, model, n, include_usage=include_usage)]
    return [*blocks, b"data: [DONE]\n\n"]


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
    return _block({"error": {"message": fault.message, "type": fault.error_type or "server_error", "code": None}})


def malformed_event() -> bytes:
    return b'data: {"id": "chatcmpl-broken", "choices": [\n\n'
