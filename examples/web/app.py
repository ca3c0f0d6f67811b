"""A small web app that runs delite agents across requests.

The Agent is built per request (construction does no I/O); the run is the durable thing, found again by id
in the data directory, so any worker process can answer any request. Every delite error maps to its HTTP
status in one place.

Run it:  DELITE_DATA_DIR=./data uvicorn examples.web.app:app
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from delite import Agent, Response, ScriptedProvider, tool
from delite.errors import DeliteError
from delite.providers import call


@tool(description="Refund an order", requires_confirmation=True)
def refund(order_id: int, amount: float) -> dict[str, Any]:
    """Refund an order (needs a human's approval)."""
    return {"order_id": order_id, "refunded": amount}


@tool(description="Show the customer a confirmation dialog in their browser", target="client")
def confirm_with_customer(message: str) -> str:
    """Runs in the customer's browser; the client posts the result back."""
    raise NotImplementedError  # pragma: no cover - never called: client tools have no server body


def _answer(messages: list[dict[str, Any]]) -> str:
    return "Done: " + " / ".join(m["content"] for m in messages if m["role"] == "tool")


# A scripted model keeps the example offline; a real app passes e.g. provider="anthropic:claude-haiku-4-5".
MODELS = {
    "refund": lambda: ScriptedProvider([call("refund", order_id=42, amount=19.99), _answer]),
    "confirm": lambda: ScriptedProvider([call("confirm_with_customer", message="Cancel order 42?"), _answer]),
    "clarify": lambda: ScriptedProvider([call("ask_human", question="Which order?"), _answer]),
}


def build_agent(flow: str) -> Agent:
    """One Agent per request, configured for the flow the run was started with."""
    data_dir = os.environ.get("DELITE_DATA_DIR", "./data")
    return Agent(data_dir, provider=MODELS[flow](), tools=[refund, confirm_with_customer], agent_id=flow)


def _flow_of(execution_id: str) -> str:
    # The flow is stored in the execution's metadata when it starts: resume with the same configuration.
    probe = Agent(os.environ.get("DELITE_DATA_DIR", "./data"), provider=MODELS["refund"]())
    return str(probe.get(execution_id).metadata.get("flow", "refund"))


def _json(r: Response) -> JSONResponse:
    reason = r.suspend_reason
    return JSONResponse(
        {
            "execution_id": r.execution_id,
            "status": r.status.value,
            "answer": r.answer,
            "suspend_reason": None
            if reason is None
            else {
                "kind": reason.kind,
                "question": reason.question,
                "calls": [{"id": c.call_id, "name": c.name, "arguments": c.arguments} for c in reason.calls],
            },
        }
    )


def route(handler: Callable[[str, dict[str, Any]], Response]) -> Callable[[Request], Awaitable[JSONResponse]]:
    """Wrap a sync handler ``(execution_id, body) -> Response``: read the JSON body, run the handler in a worker
    thread (delite's sync API blocks on disk and model calls), and map every delite error to its status."""

    async def endpoint(request: Request) -> JSONResponse:
        body = await request.json() if request.method == "POST" else {}
        eid = request.path_params.get("eid", "")
        try:
            return _json(await run_in_threadpool(handler, eid, body))
        except DeliteError as e:
            return JSONResponse({"error": type(e).__name__, "message": str(e)}, status_code=e.http_status)

    return endpoint


def start(_: str, body: dict[str, Any]) -> Response:
    flow = body.get("flow", "refund")
    agent = build_agent(flow)
    return agent.run(body["text"], metadata={"flow": flow}, idempotency_key=body.get("idempotency_key"))


def approval(eid: str, body: dict[str, Any]) -> Response:
    agent = build_agent(_flow_of(eid))
    if "decisions" in body:
        return agent.submit_approval(eid, decisions=body["decisions"])
    return agent.submit_approval(eid, approved=bool(body["approved"]), rejection_reason=body.get("rejection_reason"))


def tool_results(eid: str, body: dict[str, Any]) -> Response:
    return build_agent(_flow_of(eid)).submit_tool_results(eid, body["results"])


def human_input(eid: str, body: dict[str, Any]) -> Response:
    return build_agent(_flow_of(eid)).submit_input(eid, body["text"])


def cancel(eid: str, _: dict[str, Any]) -> Response:
    return build_agent(_flow_of(eid)).cancel(eid)


def show(eid: str, _: dict[str, Any]) -> Response:
    return build_agent(_flow_of(eid)).response(eid)


app = Starlette(
    routes=[
        Route("/runs", route(start), methods=["POST"]),
        Route("/runs/{eid}", route(show), methods=["GET"]),
        Route("/runs/{eid}/approval", route(approval), methods=["POST"]),
        Route("/runs/{eid}/tool-results", route(tool_results), methods=["POST"]),
        Route("/runs/{eid}/input", route(human_input), methods=["POST"]),
        Route("/runs/{eid}/cancel", route(cancel), methods=["POST"]),
    ]
)
