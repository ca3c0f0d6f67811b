"""The agents the telemetry tests run, shared by the tests and the worker process they SIGKILL."""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from delite import Agent, ScriptedProvider, Usage, current_call, delegate, tool
from delite.providers import ModelTurn, call


@tool(description="Look something up")
def lookup(q: str) -> dict[str, Any]:
    return {"q": q, "found": True}


@tool(description="Charge a card")
def charge(amount: int) -> str:
    if os.environ.get("DELITE_TEST_DIE") == "1" and current_call().attempt == 1:
        os.kill(os.getpid(), signal.SIGKILL)  # the intent is durable, the result is not: the call is in doubt
    return f"charged {amount}"


@tool(description="Refund an order", requires_confirmation=True)
def refund(order_id: int) -> str:
    return f"refunded {order_id}"


def priced(turn: dict[str, Any] | str, cost: str) -> ModelTurn:
    """A scripted turn that reports a usage with a cost (as a priced provider would)."""
    if isinstance(turn, str):
        turn = {"content": turn}
    calls = turn.get("tool_calls", [])
    return ModelTurn(
        content=turn.get("content"),
        tool_calls=[{"name": c["name"], "arguments": c["arguments"]} for c in calls],
        usage=Usage(input_tokens=100, output_tokens=20, cached_input_tokens=30, cost=cost),
        model="scripted-1",
    )


@tool(description="Take a nap")
def nap(seconds: float) -> str:
    ready = os.environ.get("DELITE_TEST_READY")
    if ready:
        Path(ready).write_text("napping")
    time.sleep(seconds)
    return "rested"


def napping_agent(data_dir: str | Path) -> Agent:
    return Agent(
        data_dir, provider=ScriptedProvider([call("nap", seconds=60), "rested"]), tools=[nap], agent_id="napper"
    )


def crash_agent(data_dir: str | Path) -> Agent:
    model = ScriptedProvider([call("lookup", q="a"), call("charge", amount=5), "done"])
    return Agent(data_dir, provider=model, tools=[lookup, charge], agent_id="payer")


def approval_agent(data_dir: str | Path) -> Agent:
    model = ScriptedProvider([call("refund", order_id=7), "refunded"])
    return Agent(data_dir, provider=model, tools=[refund], agent_id="refunder")


def tree_agents(data_dir: str | Path) -> Agent:
    """A parent whose ``research`` tool delegates to a child agent that looks something up."""
    child = Agent(
        data_dir,
        provider=ScriptedProvider([call("lookup", q="deep"), "child answer"]),
        tools=[lookup],
        agent_id="researcher",
    )

    @tool(description="Research a question with a sub-agent")
    def research(question: str) -> str:
        return delegate(child, question).answer

    model = ScriptedProvider([call("research", question="why"), "parent answer"])
    return Agent(data_dir, provider=model, tools=[research], agent_id="lead")


class FileExporter(SpanExporter):
    """Writes each ended span as a JSON line, flushed and synced: what a killed process exported survives it."""

    def __init__(self, path: str) -> None:
        self.path = path

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        with open(self.path, "a", encoding="utf-8") as f:
            f.writelines(json.dumps(span_dict(s)) + "\n" for s in spans)
            f.flush()
            os.fsync(f.fileno())
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        pass


def span_dict(s: ReadableSpan) -> dict[str, Any]:
    ctx = s.get_span_context()
    assert ctx is not None
    return {
        "name": s.name,
        "trace_id": f"{ctx.trace_id:032x}",
        "span_id": f"{ctx.span_id:016x}",
        "parent_id": f"{s.parent.span_id:016x}" if s.parent is not None else None,
        "attributes": dict(s.attributes or {}),
        "start": s.start_time,
        "end": s.end_time,
        "links": [f"{link.context.trace_id:032x}/{link.context.span_id:016x}" for link in s.links],
        "events": [e.name for e in s.events],
    }
