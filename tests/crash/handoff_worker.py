"""A worker process for the hand-off tests: each invocation is a fresh process sharing only the data directory.

Usage: python handoff_worker.py DATA_DIR SCENARIO COMMAND [ARG...]

Prints one JSON line: the response ({"status", "answer", "kind", "ids", "question"}) or the error
({"error": class name, "http": status}). Side effects go to DATA_DIR/ledger.txt, one line per tool body run.
In scenario ``slow`` (200 steps) the tool call number HOLD_AT waits, after its side effect, until the file
DATA_DIR/release exists, so a test can act while the run is known to be in flight.
Set DELITE_TEST_DIE=before|after to SIGKILL this process inside the first gated tool body, before or after
its side effect. DELITE_TEST_API=async runs each command through the async API (``arun``, ``asubmit_*``...).
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

from delite import Agent, Budget, ScriptedProvider, current_call, tool
from delite.errors import DeliteError
from delite.providers import call

HOLD_AT = 3  # in scenario "slow", the tool call (0-based) that waits for DATA_DIR/release to exist


def outputs(messages: list[dict[str, Any]]) -> str:
    return " | ".join(m["content"] for m in messages if m["role"] == "tool")


def build(data_dir: str, scenario: str) -> Agent:
    ledger = Path(data_dir) / "ledger.txt"
    die = os.environ.get("DELITE_TEST_DIE")

    def effect(name: str) -> None:
        if die == "before":
            os.kill(os.getpid(), signal.SIGKILL)
        with ledger.open("a") as f:
            f.write(f"{name} {current_call().idempotency_key} {current_call().attempt}\n")
            f.flush()
            os.fsync(f.fileno())
        if die == "after":
            os.kill(os.getpid(), signal.SIGKILL)

    @tool(requires_confirmation=True)
    def transfer(amount: int) -> str:
        """Move money."""
        effect("transfer")
        return f"moved {amount}"

    @tool(target="client")
    def read_cell(cell: str) -> str:
        """Read a cell in the user's spreadsheet."""
        raise AssertionError("client tool")

    @tool
    def charge(amount: int) -> str:
        """Charge a card."""
        effect("charge")
        return f"charged {amount}"

    @tool
    def work(i: int) -> str:
        """A unit of paid work."""
        with ledger.open("a") as f:
            f.write(f"work {current_call().idempotency_key} {current_call().attempt}\n")
        if scenario == "slow" and i == HOLD_AT:
            # Hold the run here, in a tool body, until the driver says so (it cancels meanwhile).
            release = Path(data_dir) / "release"
            deadline = time.monotonic() + 120
            while not release.exists() and time.monotonic() < deadline:
                time.sleep(0.001)
        return f"w{i}"

    scripts: dict[str, Any] = {
        "approval": ScriptedProvider([call("transfer", amount=5), outputs]),
        "client": ScriptedProvider([call("read_cell", cell="B2"), outputs]),
        "human": ScriptedProvider([call("ask_human", question="Which city?"), lambda m: f"city={m[-1]['content']}"]),
        "contract": ScriptedProvider([call("charge", amount=5000), outputs]),
        "budget": ScriptedProvider.tool_loop(4, "work"),
        "slow": ScriptedProvider.tool_loop(200, "work"),
    }
    agent = Agent(data_dir, provider=scripts[scenario], tools=[transfer, read_cell, charge, work], agent_id=scenario)

    @agent.contract("max-charge")
    def limit(step_name: str, args: dict[str, Any]) -> None:
        if step_name == "charge" and args["amount"] > 1000:
            raise ValueError("over $1000 needs a VP")

    if scenario == "budget" and os.environ.get("DELITE_TEST_BUDGET"):
        agent.budget = Budget(max_llm_calls=int(os.environ["DELITE_TEST_BUDGET"]))
    return agent


def main() -> int:
    data_dir, scenario, command, *args = sys.argv[1:]
    go = os.environ.get("DELITE_TEST_GO_FILE")
    agent = build(data_dir, scenario)
    if go:  # line up racing processes: every one is imported and built before any acts
        print("ready", flush=True)  # the driver creates the go file once every racer said so
        deadline = time.monotonic() + 120
        while not os.path.exists(go):
            if time.monotonic() > deadline:
                raise SystemExit("never told to go")
            time.sleep(0.001)
    if os.environ.get("DELITE_TEST_API") == "async":
        return _run_async(agent, scenario, command, args)
    try:
        if command == "start":
            r = agent.run(f"{scenario} please", execution_id=args[0])
        elif command == "approve-all":
            r = agent.submit_approval(args[0], approved=True)
        elif command == "reject-all":
            r = agent.submit_approval(args[0], approved=False, rejection_reason=args[1])
        elif command == "approve":
            r = agent.approve(args[0], args[1])
        elif command == "tool-results":
            r = agent.submit_tool_results(args[0], json.loads(args[1]))
        elif command == "input":
            r = agent.submit_input(args[0], args[1])
        elif command == "resume":
            r = agent.resume(args[0])
        elif command == "cancel":
            r = agent.cancel(args[0])
        else:
            raise SystemExit(f"unknown command {command}")
    except DeliteError as e:
        print(json.dumps({"error": type(e).__name__, "http": e.http_status, "message": str(e)}))
        return 0
    report(r)
    return 0


def _run_async(agent: Agent, scenario: str, command: str, args: list[str]) -> int:
    """The same commands through the async API (DELITE_TEST_API=async)."""
    import asyncio

    calls: dict[str, Any] = {
        "start": lambda: agent.arun(f"{scenario} please", execution_id=args[0]),
        "approve-all": lambda: agent.asubmit_approval(args[0], approved=True),
        "reject-all": lambda: agent.asubmit_approval(args[0], approved=False, rejection_reason=args[1]),
        "approve": lambda: agent.adecide(args[0], {args[1]: True}, advance=False),
        "tool-results": lambda: agent.asubmit_tool_results(args[0], json.loads(args[1])),
        "input": lambda: agent.asubmit_input(args[0], args[1]),
        "resume": lambda: agent.aresume(args[0]),
        "cancel": lambda: agent.acancel(args[0]),
    }
    try:
        r = asyncio.run(calls[command]())
    except DeliteError as e:
        print(json.dumps({"error": type(e).__name__, "http": e.http_status, "message": str(e)}))
        return 0
    report(r)
    return 0


def report(r: Any) -> None:
    reason = r.suspend_reason
    print(
        json.dumps(
            {
                "status": r.status.value,
                "answer": r.answer,
                "kind": reason.kind if reason else None,
                "ids": reason.confirmation_ids if reason else [],
                "question": reason.question if reason else None,
            }
        )
    )


if __name__ == "__main__":
    raise SystemExit(main())
