"""A web app that runs delite agents across requests: the code of docs/recipes/web.md.

The Agent is a disposable executor, built per request (construction does no I/O); the run is the durable
thing, found again by id in the data directory, so any worker process can answer any request. What is costly
is built once per worker and shared: the providers (their SDK clients keep connection pools) and the data
directory. The app owns the conversation (``history``) and the configurations its runs were started with; a
run records its configuration's id in its metadata (``config_id``), so it is continued with the same prompt,
tools and provider even after the user changed their selection. Endpoints are ``async`` and use delite's
async API; every delite error maps to its HTTP status in one place.

Needs: ``pip install -e ".[web]"`` (Starlette and uvicorn), run from the repository root.
Run it:  DELITE_DATA_DIR=./data uvicorn examples.web.app:app
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from delite import Agent, Response, ScriptedProvider, tool
from delite.errors import DeliteError, ExecutionNotFoundError, UsageError
from delite.providers import call

# ---- once per worker (startup): the shared, expensive parts ---------------------------------------------


def data_dir() -> str:
    """The data directory every worker shares (runs, and the app's own run configurations)."""
    return os.environ.get("DELITE_DATA_DIR", "./data")


@tool(description="Refund an order", requires_confirmation=True)
def refund(order_id: int, amount: float) -> dict[str, Any]:
    """Refund an order (needs a human's approval)."""
    return {"order_id": order_id, "refunded": amount}


@tool(description="Show the customer a confirmation dialog in their browser", target="client")
def confirm_with_customer(message: str) -> str:
    """Runs in the customer's browser; the client posts the result back (a client tool has no body here)."""


@tool(description="Look up an order's status")
def order_status(order_id: int) -> str:
    """Read-only, safe to run at any time."""
    return f"order {order_id} shipped"


TOOLS = {t.name: t for t in (refund, confirm_with_customer, order_status)}


def _answer(messages: list[dict[str, Any]]) -> str:
    return "Done: " + " / ".join(m["content"] for m in messages if m["role"] == "tool")


# One provider per (vendor, model), shared by every request. Scripted models keep the example offline; a real
# app builds e.g. {"anthropic:claude-haiku-4-5": Anthropic("claude-haiku-4-5")} here, once.
PROVIDERS: dict[str, Any] = {
    "scripted:refund": ScriptedProvider([call("refund", order_id=42, amount=19.99), _answer]),
    "scripted:confirm": ScriptedProvider([call("confirm_with_customer", message="Cancel order 42?"), _answer]),
    "scripted:clarify": ScriptedProvider([call("ask_human", question="Which order?"), _answer]),
    "scripted:status": ScriptedProvider([call("order_status", order_id=7), _answer]),
}


@dataclass(frozen=True)
class Config:
    """What an agent is built from: the provider, the prompt and the tool selection."""

    provider: str
    prompt: str = "You are a support agent."
    tools: tuple[str, ...] = ("refund", "confirm_with_customer", "order_status")

    @property
    def id(self) -> str:
        """A stable id for this configuration (its content hash)."""
        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:16]


# The flows a client may pick (in a chat app: the user's current vendor/model and tool selection).
FLOWS = {name: Config(provider=f"scripted:{name}") for name in ("refund", "confirm", "clarify", "status")}


def save_config(config: Config) -> str:
    """Keep a run's configuration where every worker finds it (the app's store; here, a file per id)."""
    root = Path(data_dir())
    folder = root / "app-configs"
    # Private like everything in a data directory (delite leaves a directory that exists as it is, so the
    # app must not be the one to create it world-readable): 0700 folders, 0600 files, whatever the umask.
    for directory in (*reversed(root.parents), root, folder):
        if not directory.exists():
            directory.mkdir(mode=0o700, exist_ok=True)
    path = folder / f"{config.id}.json"
    if not path.exists():
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with open(fd, "w", encoding="utf-8") as fh:
            fh.write(json.dumps(asdict(config)))
        tmp.replace(path)
    return config.id


def load_config(config_id: str) -> Config:
    """The configuration a run was started with."""
    path = Path(data_dir()) / "app-configs" / f"{config_id}.json"
    try:
        raw = json.loads(path.read_text())
    except FileNotFoundError:
        raise UsageError(f"unknown configuration {config_id!r}") from None
    return Config(provider=raw["provider"], prompt=raw["prompt"], tools=tuple(raw["tools"]))


# ---- per request ------------------------------------------------------------------------------------------


def build_agent(config: Config) -> Agent:
    """A fresh Agent for this request: cheap (no I/O), from shared providers and tools."""
    return Agent(
        data_dir(),
        provider=PROVIDERS[config.provider],
        prompt=config.prompt,
        tools=[TOOLS[name] for name in config.tools],
        agent_id=config.provider,
    )


async def agent_for(execution_id: str) -> Agent:
    """The agent to continue a run with: built from the configuration the run recorded, not today's."""
    state = await Agent(data_dir()).aget(execution_id)
    config_id = state.metadata.get("config_id")
    if not isinstance(config_id, str):
        raise UsageError(f"execution {execution_id!r} was not started by this app")
    return build_agent(load_config(config_id))


def as_json(r: Response) -> dict[str, Any]:
    """A response as the client sees it."""
    reason = r.suspend_reason
    return {
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


async def start(_: str, body: dict[str, Any]) -> dict[str, Any]:
    """A new turn: the client's current selection, the app's history, a model chosen per message."""
    flow = body.get("flow", "refund")
    if flow not in FLOWS:
        raise BadRequestError(f"unknown flow {flow!r}: choose one of {', '.join(FLOWS)}")
    config = FLOWS[flow]
    agent = build_agent(config)
    r = await agent.arun(
        body["text"],
        history=body.get("history"),  # the app owns the conversation
        metadata={"thread_id": body.get("thread_id"), "config_id": save_config(config)},
        model=body.get("model"),  # switch model per turn; recorded per call
        idempotency_key=body.get("idempotency_key"),
    )
    return as_json(r)


async def approval(eid: str, body: dict[str, Any]) -> dict[str, Any]:
    """Approve or reject the pending calls, then continue the run."""
    agent = await agent_for(eid)
    if body.get("decisions") is not None:  # a null field is an absent one, as read_body checks it
        return as_json(await agent.asubmit_approval(eid, decisions=body["decisions"]))
    # Passed as sent: delite refuses anything but a JSON true/false (400), never reading "false" as a yes.
    r = await agent.asubmit_approval(eid, approved=body.get("approved"), rejection_reason=body.get("rejection_reason"))
    return as_json(r)


async def tool_results(eid: str, body: dict[str, Any]) -> dict[str, Any]:
    """The results of client-side tools, then continue."""
    return as_json(await (await agent_for(eid)).asubmit_tool_results(eid, body["results"]))


async def human_input(eid: str, body: dict[str, Any]) -> dict[str, Any]:
    """A human's answer to the model's question, then continue."""
    return as_json(await (await agent_for(eid)).asubmit_input(eid, body["text"]))


async def cancel(eid: str, _: dict[str, Any]) -> dict[str, Any]:
    """Cancel the run."""
    return as_json(await Agent(data_dir()).acancel(eid))


async def show(eid: str, _: dict[str, Any]) -> dict[str, Any]:
    """The run's current state, without advancing it."""
    return as_json(await Agent(data_dir()).aresponse(eid))


class BadRequestError(Exception):
    """A malformed request (not JSON, not an object, a field missing or of the wrong type): answered 400."""

    http_status = 400


Fields = Mapping[str, type]


async def read_body(request: Request, needs: Fields, may: Fields) -> dict[str, Any]:
    """The request's JSON object, checked before anything is done with it.

    ``needs``: fields that must be there (``"a|b"``: one of them), ``may``: optional ones; each of the given
    type. A body that is not JSON, not an object, or lacks a field or has one of another type is a
    :class:`BadRequestError`.
    """
    if request.method != "POST":
        return {}
    try:
        body = json.loads(await request.body(), object_pairs_hook=_no_duplicates)
    except _DuplicateKeyError as e:  # {"c1.0": 1, "c1.0": 2}: two answers for one call, never "the last wins"
        raise BadRequestError(str(e)) from None
    except ValueError:  # not JSON, or not UTF-8
        raise BadRequestError("the request body is not valid JSON") from None
    if not isinstance(body, dict):
        raise BadRequestError(f"the request body must be a JSON object, not {type(body).__name__}")
    for spec, kind in (*needs.items(), *may.items()):
        names = spec.split("|")
        present = [name for name in names if body.get(name) is not None]
        if not present and spec in needs:
            raise BadRequestError(f"the request body needs {' or '.join(repr(n) for n in names)}")
        for name in present:
            if not isinstance(body[name], kind):
                wanted = _NAMES.get(kind, kind.__name__)
                raise BadRequestError(f"{name!r} must be {wanted}, not {type(body[name]).__name__}")
    return body


class _DuplicateKeyError(ValueError):
    pass


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object, refusing a key given twice (Python's ``json`` keeps the last one without a word)."""
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise _DuplicateKeyError(f"the key {key!r:.80} is given twice in the request body")
        out[key] = value
    return out


_NAMES: dict[type, str] = {str: "a string", dict: "an object", list: "a list"}


def route(
    handler: Callable[[str, dict[str, Any]], Awaitable[dict[str, Any]]],
    needs: Fields | None = None,
    may: Fields | None = None,
) -> Callable[[Request], Awaitable[JSONResponse]]:
    """Wrap a handler ``(execution_id, body) -> dict``: read and check the JSON body (400 when malformed, see
    :func:`read_body`) and map every delite error to its status."""

    async def endpoint(request: Request) -> JSONResponse:
        eid = request.path_params.get("eid", "")
        try:
            body = await read_body(request, needs or {}, may or {})
            return JSONResponse(await handler(eid, body))
        except (DeliteError, BadRequestError) as e:
            return JSONResponse({"error": type(e).__name__, "message": public(e)}, status_code=e.http_status)

    return endpoint


def public(e: Exception) -> str:
    """The message for the client: a "not found" without the server's data directory in it."""
    if isinstance(e, ExecutionNotFoundError):
        return f"execution {e.execution_id!r} not found"
    return str(e)


TURN: Fields = {"flow": str, "history": list, "thread_id": str, "model": str, "idempotency_key": str}

app = Starlette(
    routes=[
        Route("/runs", route(start, needs={"text": str}, may=TURN), methods=["POST"]),
        Route("/runs/{eid}", route(show), methods=["GET"]),
        Route(
            "/runs/{eid}/approval",
            route(approval, needs={"approved|decisions": object}, may={"decisions": dict, "rejection_reason": str}),
            methods=["POST"],
        ),
        Route("/runs/{eid}/tool-results", route(tool_results, needs={"results": dict}), methods=["POST"]),
        Route("/runs/{eid}/input", route(human_input, needs={"text": str}), methods=["POST"]),
        Route("/runs/{eid}/cancel", route(cancel), methods=["POST"]),
    ]
)
