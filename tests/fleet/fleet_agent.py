"""The agents that ``delite worker`` processes serve in the fleet tests (``--agent fleet_agent:build``).

Every tool body appends ``<idempotency key> <attempt> <pid>`` to ``DATA_DIR/ledger.txt`` (fsynced) as its side
effect, so a test can count exactly which calls ran, how often, and where. The model is scripted by the
execution's input (``DATA_DIR`` is ``$FLEET_FILES`` when set, as it must be on a database store):
``job N`` makes three ``work`` calls; ``pay N`` one ``pay`` call that needs approval;
``slow N`` one ``slow`` call that marks ``DATA_DIR/slow.txt`` when it starts and takes ``FLEET_SLOW`` seconds
(default 2) before its side effect; ``park N`` two ``work`` calls, the first of which, in a process with
``FLEET_PARK=1`` and on its first attempt, writes ``<execution id>`` to ``DATA_DIR/parked.txt`` and blocks
before its side effect until the process is killed.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Any

from delite import Agent, ScriptedProvider, current_call, tool
from delite.providers import call
from delite.store import Store


def append_line(path: Path, line: str) -> None:
    with path.open("a") as f:
        f.write(line + "\n")
        f.flush()
        os.fsync(f.fileno())


def _tools(data: Path) -> list[Any]:
    ledger = data / "ledger.txt"

    def effect() -> None:
        ctx = current_call()
        append_line(ledger, f"{ctx.idempotency_key} {ctx.attempt} {os.getpid()}")

    @tool
    def work(i: int) -> str:
        """A step with a side effect."""
        ctx = current_call()
        if i == 0 and os.environ.get("FLEET_PARK") == "1" and ctx.attempt == 1 and "park" in ctx.execution_id:
            append_line(data / "parked.txt", ctx.execution_id)
            threading.Event().wait()  # in flight until the process is killed
        time.sleep(0.01)
        effect()
        return f"worked {i}"

    @tool(requires_confirmation=True)
    def pay(amount: int) -> str:
        """Pay (needs a human's approval)."""
        effect()
        return f"paid {amount}"

    @tool
    def slow(i: int) -> str:
        """A long step: marks its start, then takes a while before its side effect."""
        append_line(data / "slow.txt", current_call().execution_id)
        time.sleep(float(os.environ.get("FLEET_SLOW", "2")))
        effect()
        return f"slow {i}"

    return [work, pay, slow]


class FleetModel:
    """Replies from the script named by the conversation's first user message."""

    name = "fleet-model"

    def __call__(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]], model: str | None) -> Any:
        first = str(next(m["content"] for m in messages if m["role"] == "user"))
        kind, _, n = first.partition(" ")
        script: list[Any]
        if kind == "job":
            script = [call("work", i=0), call("work", i=1), call("work", i=2), f"done {n}"]
        elif kind == "pay":
            script = [call("pay", amount=int(n)), f"paid {n}"]
        elif kind == "slow":
            script = [call("slow", i=0), call("work", i=1), f"slow done {n}"]
        elif kind == "park":
            script = [call("work", i=0), call("work", i=1), f"parked done {n}"]
        else:
            script = [f"unknown {first}"]
        return ScriptedProvider(script, delay=0.005)(messages, tools, model)


def _agent(where: str | Store, agent_id: str) -> Agent:
    files = os.environ.get("FLEET_FILES")  # where the ledger goes when the store is not a directory
    data = Path(files) if files else Path(str(where))
    return Agent(
        None if isinstance(where, Store) else where,
        store=where if isinstance(where, Store) else None,
        provider=FleetModel(),
        tools=_tools(data),
        agent_id=agent_id,
        prompt="You are a fleet test agent.",
    )


def build(where: str | Store) -> Agent:
    """The agent ``fleet`` (what ``--agent fleet_agent:build`` serves)."""
    return _agent(where, "fleet")


def build_other(where: str | Store) -> Agent:
    """Another agent, ``other``, configured alike: a worker serving only ``fleet`` never takes its executions."""
    return _agent(where, "other")
