"""The Starlette app: three vendor endpoints served from a script, with faults, and a control endpoint."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from fakellm import wire_chat, wire_messages, wire_responses
from fakellm.script import Fault, Script, Turn, decode

APIS: dict[str, ModuleType] = {
    "/v1/chat/completions": wire_chat,
    "/v1/responses": wire_responses,
    "/v1/messages": wire_messages,
}
NAMES = {"/v1/chat/completions": "chat", "/v1/responses": "responses", "/v1/messages": "messages"}
HEADERS = ("authorization", "x-api-key", "anthropic-version", "x-stainless-retry-count", "content-type")


class DroppedConnectionError(Exception):
    """Raised inside a streaming body: the server closes the connection without finishing the body."""


@dataclass
class State:
    """What the server was told to say and what it was asked."""

    script: Script = field(default_factory=Script)
    used_faults: dict[int, int] = field(default_factory=dict)
    requests: list[dict[str, Any]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def load(self, script: Script) -> None:
        with self.lock:
            self.script = script
            self.used_faults = {}
            self.requests = []

    def next_fault(self, index: int) -> Fault | None:
        with self.lock:
            faults = self.script.turns[index].faults
            used = self.used_faults.get(index, 0)
            if used >= len(faults):
                return None
            self.used_faults[index] = used + 1
            return faults[used]


def _status_response(api: ModuleType, fault: Fault) -> Response:
    headers = {}
    if fault.retry_after is not None:
        headers["retry-after"] = fault.retry_after
    if fault.retry_after_ms is not None:
        headers["retry-after-ms"] = fault.retry_after_ms
    if fault.should_retry is not None:
        headers["x-should-retry"] = fault.should_retry
    return JSONResponse(api.error_body(fault.status, fault), status_code=fault.status, headers=headers)


async def _events(
    api: ModuleType, blocks: list[bytes], fault: Fault | None, entry: dict[str, Any]
) -> AsyncIterator[bytes]:
    kind = fault.kind if fault else None
    for i, block in enumerate(blocks):
        if fault is not None and i == min(fault.after, len(blocks) - 1):
            if kind == "stall":
                await asyncio.sleep(fault.seconds)
            elif kind == "drop":
                entry["outcome"] = "dropped"
                raise DroppedConnectionError
            elif kind == "truncate":
                entry["outcome"] = "truncated"
                return
            elif kind == "malformed":
                yield api.malformed_event()
                entry["outcome"] = "malformed"
                return
            elif kind == "stream_error":
                yield api.stream_error(fault)
                entry["outcome"] = "stream_error"
                return
        if kind == "slow":
            await asyncio.sleep(fault.seconds if fault else 0)
        yield block
        entry["events_sent"] = i + 1
    entry["outcome"] = "complete"


async def _json_body(body: bytes, fault: Fault | None, entry: dict[str, Any]) -> AsyncIterator[bytes]:
    yield body[: len(body) // 2]
    entry["outcome"] = "dropped"
    raise DroppedConnectionError


def build_app(state: State) -> Starlette:
    """The app; ``state`` is shared with the test (in-thread) or the control endpoint (subprocess)."""

    async def model_call(request: Request) -> Response:
        path = request.url.path
        api = APIS[path]
        body = await request.json()
        index = api.turn_index(body)
        stream = body.get("stream") is True
        entry: dict[str, Any] = {
            "api": NAMES[path],
            "turn": index,
            "stream": stream,
            "body": body,
            "headers": {h: request.headers.get(h) for h in HEADERS if h in request.headers},
            "fault": None,
            "events_sent": 0,
            "outcome": "pending",
        }
        with state.lock:
            state.requests.append(entry)
            turns = state.script.turns
            model = state.script.model or body.get("model") or "fake-model"
        if index >= len(turns):
            entry["outcome"] = "exhausted"
            return JSONResponse(
                api.error_body(400, Fault(kind="status", message=f"no turn {index} in the script")), 400
            )
        turn: Turn = turns[index]
        fault = state.next_fault(index)
        entry["fault"] = fault.kind if fault else None
        if fault is not None and fault.kind == "status":
            entry["outcome"] = f"status {fault.status}"
            return _status_response(api, fault)
        if not stream:
            if fault is not None and fault.kind == "stall":
                await asyncio.sleep(fault.seconds)
            if fault is not None and fault.kind == "malformed":
                entry["outcome"] = "malformed"
                return Response(b'{"id": "broken", "choices": [', media_type="application/json")
            data = json.dumps(api.render_json(turn, model, index)).encode()
            if fault is not None and fault.kind == "drop":
                return StreamingResponse(_json_body(data, fault, entry), media_type="application/json")
            entry["outcome"] = "complete"
            return Response(data, media_type="application/json")
        blocks = api.render_sse(turn, model, index, body)
        return StreamingResponse(_events(api, blocks, fault, entry), media_type="text/event-stream")

    async def load_script(request: Request) -> Response:
        state.load(decode(await request.body()))
        return JSONResponse({"turns": len(state.script.turns)})

    async def requests(_request: Request) -> Response:
        with state.lock:
            return JSONResponse(state.requests)

    routes = [Route(path, model_call, methods=["POST"]) for path in APIS]
    routes += [
        Route("/_control/script", load_script, methods=["POST"]),
        Route("/_control/requests", requests, methods=["GET"]),
    ]
    return Starlette(routes=routes)
