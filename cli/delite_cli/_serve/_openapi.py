"""The OpenAPI 3.1 schema of ``delite serve``'s JSON API (served at ``/api/openapi.json``).

The response bodies are the read API's records (``docs/export-format.md``): an execution's summary and detail,
a page, an export, an event. Errors are ``{"error": {"type", "message", "status"}}`` with the HTTP status of
``docs/reference/errors.md`` (``type`` is the class name of delite's error).
"""

from __future__ import annotations

from typing import Any

from delite._version import __version__
from delite_cli._serve._query import MAX_LIMIT, STATUSES

__all__ = ["ERRORS", "schema"]

ERRORS = {
    "400": "bad input: UsageError, InvalidExecutionIdError, AmbiguousExecutionIdError, InvalidToolResultError",
    "401": "no token, or a wrong one",
    "403": "a cross-site request (a cookie without the CSRF header, or another Origin)",
    "404": "ExecutionNotFoundError",
    "409": "the execution's state refused the call: ExecutionStateError and its kind (AlreadyDecidedError: someone "
    "else answered first), DriftError, ReplayMismatchError",
    "413": "the request body is over the limit (8 MiB); nothing was read into the log",
    "500": "StoreError and its kind, or a fault of the server (its error output says what)",
}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _errors(*codes: str) -> dict[str, Any]:
    return {code: _json(_ref("Error"), ERRORS[code]) for code in codes}


_ID = {
    "name": "id",
    "in": "path",
    "required": True,
    "schema": {"type": "string"},
    "description": "An execution id, or a unique prefix or suffix of one.",
}
_FILTERS: list[dict[str, Any]] = [
    {
        "name": "status",
        "in": "query",
        "schema": {"type": "array", "items": {"enum": list(STATUSES)}},
        "style": "form",
        "explode": True,
        "description": "Only these statuses (repeatable; waiting: every waiting one).",
    },
    {"name": "agent", "in": "query", "schema": {"type": "string"}, "description": "Only this agent id."},
    {
        "name": "meta",
        "in": "query",
        "schema": {"type": "array", "items": {"type": "string"}},
        "explode": True,
        "description": "KEY=VALUE metadata (repeatable; a VALUE that is JSON matches as that value).",
    },
    {"name": "since", "in": "query", "schema": {"type": "string"}, "description": "30m, 2h, 7d ago, or an ISO date."},
    {"name": "until", "in": "query", "schema": {"type": "string"}, "description": "Created before this."},
    {"name": "parent", "in": "query", "schema": {"type": "string"}, "description": "Sub-agents of this execution."},
]
_PAGING: list[dict[str, Any]] = [
    {
        "name": "q",
        "in": "query",
        "schema": {"type": "string"},
        "description": "Search: an id (or a unique piece of one) first, then text in ids, inputs, answers, errors "
        "and metadata.",
    },
    {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 0, "maximum": MAX_LIMIT, "default": 50}},
    {"name": "offset", "in": "query", "schema": {"type": "integer", "minimum": 0, "default": 0}},
]


def _action(summary: str, body: dict[str, Any] | None, *, created: bool = False) -> dict[str, Any]:
    op: dict[str, Any] = {
        "summary": summary,
        "parameters": [_ID],
        "security": [{"bearer": []}, {"cookie": []}],
        "responses": {
            "201" if created else "200": _json(_ref("ActionResult"), "recorded (and advancing, with an agent)"),
            **_errors("400", "401", "403", "404", "409", "413", "500"),
        },
    }
    if body is not None:
        required = bool(body.get("required"))  # an action whose fields are all optional takes an empty body
        op["requestBody"] = {"required": required, "content": {"application/json": {"schema": body}}}
    return {"post": op}


def _obj(properties: dict[str, Any], required: list[str] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"type": "object", "properties": properties, "additionalProperties": False}
    if required:
        out["required"] = required
    return out


def _get(summary: str, schema: dict[str, Any], params: list[dict[str, Any]], *codes: str) -> dict[str, Any]:
    return {
        "get": {
            "summary": summary,
            "parameters": params,
            "security": [{"bearer": []}, {"cookie": []}],
            "responses": {"200": _json(schema, "ok"), **_errors("401", *codes, "500")},
        }
    }


def schema() -> dict[str, Any]:
    """The whole schema: every route of ``/api``, each operation with an ``operationId``."""
    doc = _schema()
    for path, operations in doc["paths"].items():
        for method, op in operations.items():
            words = [w.strip("{}").replace("-", "_").replace(".", "_") for w in path.split("/")[2:]]
            op.setdefault("operationId", "_".join([method, *words]))
    return doc


def _schema() -> dict[str, Any]:
    decision = _obj(
        {
            "calls": {"type": "array", "items": {"type": "string"}, "description": "Call ids (default: the only one)."},
            "all": {"type": "boolean", "description": "Every pending call."},
            "reason": {"type": ["string", "null"]},
        }
    )
    any_json: dict[str, Any] = {"description": "any JSON value"}
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "delite serve",
            "version": __version__,
            "description": "See and act on delite executions. State-changing requests need the token: "
            "'Authorization: Bearer TOKEN' (for programs), or the cookie set at login plus the 'X-Delite-CSRF' "
            "header (for the pages). Errors carry the HTTP status of docs/reference/errors.md.",
        },
        "components": {
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "cookie": {"type": "apiKey", "in": "cookie", "name": "delite_serve_PORT"},
            },
            "schemas": {
                "Error": _obj(
                    {
                        "error": _obj(
                            {"type": {"type": "string"}, "message": {"type": "string"}, "status": {"type": "integer"}},
                            ["type", "message", "status"],
                        )
                    },
                    ["error"],
                ),
                "ActionResult": {
                    "type": "object",
                    "required": ["execution_id", "action", "status", "advancing"],
                    "properties": {
                        "execution_id": {"type": "string"},
                        "action": {"type": "string"},
                        "status": {"type": "string"},
                        "advancing": {"type": "boolean", "description": "this server's agent is advancing it now"},
                        "note": {"type": ["string", "null"], "description": "who advances it, when not this server"},
                        "calls": {"type": "array", "items": {"type": "string"}},
                        "cancel_pending": {"type": "boolean"},
                        "forked_from": {"type": "string"},
                        "fork_step": {"type": "integer"},
                    },
                },
                "ExecutionSummary": {"type": "object", "description": "See docs/export-format.md (execution)."},
                "Page": {
                    "type": "object",
                    "properties": {
                        "items": {"type": "array", "items": _ref("ExecutionSummary")},
                        "total": {"type": "integer"},
                        "offset": {"type": "integer"},
                        "limit": {"type": ["integer", "null"]},
                    },
                },
                "Execution": {
                    "type": "object",
                    "description": "The detail (docs/export-format.md), its pending calls and sub-agents.",
                    "properties": {
                        "execution": {"type": "object"},
                        "pending": {"type": "array", "items": {"type": "string"}},
                        "children": {"type": "array", "items": _ref("ExecutionSummary")},
                        "advancing": {"type": "boolean"},
                    },
                },
                "Export": {"type": "object", "description": "Format delite-export/1 (docs/export-format.md)."},
                "Event": {
                    "type": "object",
                    "properties": {
                        "seq": {"type": "integer"},
                        "offset": {"type": ["integer", "null"]},
                        "kind": {"type": "string"},
                        "at": {"type": "number"},
                        "record": {"type": "object"},
                    },
                },
                "Usage": {"type": "object", "description": "Rows per agent and per day, and the total."},
            },
        },
        "paths": {
            "/api/openapi.json": {
                "get": {
                    "summary": "This schema (needs no token)",
                    "security": [],
                    "responses": {"200": {"description": "OpenAPI 3.1", "content": {"application/json": {}}}},
                }
            },
            "/api/executions": _get("List executions, newest first", _ref("Page"), [*_FILTERS, *_PAGING], "400"),
            "/api/usage": _get("Usage and cost per agent and per day", _ref("Usage"), [*_FILTERS, _PAGING[0]], "400"),
            "/api/executions/{id}": _get("One execution", _ref("Execution"), [_ID], "400", "404"),
            "/api/executions/{id}/export": _get("The whole execution", _ref("Export"), [_ID], "400", "404"),
            "/api/executions/{id}/events": _get(
                "The records after a sequence number",
                {"type": "array", "items": _ref("Event")},
                [_ID, {"name": "after", "in": "query", "schema": {"type": "integer", "minimum": 0}}],
                "400",
                "404",
            ),
            "/api/executions/{id}/stream": {
                "get": {
                    "summary": "Server-sent events: one 'record' event per record (id: its sequence number), then "
                    "'end' once it completed or was cancelled; resumes after Last-Event-ID (or ?after=).",
                    "parameters": [_ID],
                    "security": [{"bearer": []}, {"cookie": []}],
                    "responses": {
                        "200": {"description": "the stream", "content": {"text/event-stream": {}}},
                        **_errors("400", "401", "404", "500"),
                    },
                }
            },
            "/api/executions/{id}/approve": _action("Approve pending calls", decision),
            "/api/executions/{id}/reject": _action("Reject pending calls (the reason is shown to the model)", decision),
            "/api/executions/{id}/input": _action(
                "Answer the question it waits on", _obj({"text": {"type": "string"}}, ["text"])
            ),
            "/api/executions/{id}/tool-results": _action(
                "Give client tool results",
                _obj({"results": {"type": "object", "additionalProperties": any_json}}, ["results"]),
            ),
            "/api/executions/{id}/resolve": _action(
                "Settle an in-doubt call: exactly one of result, error, rerun",
                _obj(
                    {
                        "call_id": {"type": "string"},
                        "result": any_json,
                        "error": {"type": "string"},
                        "rerun": {"type": "boolean"},
                    },
                    ["call_id"],
                ),
            ),
            "/api/executions/{id}/resume": _action(
                "Continue it with the server's agent (needs --agent)", _obj({"model": {"type": ["string", "null"]}})
            ),
            "/api/executions/{id}/cancel": _action("Cancel it", _obj({"reason": {"type": "string"}})),
            "/api/executions/{id}/fork": _action(
                "Start a new execution from its first steps",
                _obj({"at": {"type": "integer", "minimum": 0}, "id": {"type": ["string", "null"]}}, ["at"]),
                created=True,
            ),
        },
    }
