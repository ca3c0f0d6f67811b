"""A worker process for the answer races: every kind of answer, given by the API, the Runtime or the CLI.

Usage: python answer_worker.py DATA_DIR SCENARIO COMMAND [ARG...]

Scenarios: ``approval`` (a gated ``transfer``), ``client`` (a client tool ``read_cell``), ``human`` (the model
asks a question), ``doubt`` (``pay``, not safe to retry, dies inside its body on the first attempt when
``DELITE_TEST_DIE=1``: the call is then in doubt).

Commands: ``start EID [TEXT]``; ``resume EID``; an answer, ``approve``/``reject`` EID, ``results EID JSON``,
``input EID TEXT``, ``resolve EID result JSON`` / ``resolve EID error TEXT`` / ``resolve EID rerun``, given
through ``DELITE_TEST_VIA`` (retrying while another process holds the execution when
``DELITE_TEST_RETRY_BUSY=1``): ``record`` (the API with ``advance=False``, the default), ``advance`` (the API,
continuing the run), ``runtime`` (``Runtime.signal``/``submit_*``/``resolve``, which record, then resume in
the background); ``cli ARG...`` runs the ``delite`` command in this process (its exit code is the process's).

Prints one JSON line: the response (``{"status", "answer", "kind", "ids"}``) or the error (``{"error": class
name, "http": status, "state": whether it is an ExecutionStateError}``). Tool bodies append to
DATA_DIR/ledger.txt. With ``DELITE_TEST_GO_FILE`` set, the worker writes ``<go file>.<pid>.ready`` once it
is built and waits for the go file, so racing processes all start acting together.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

from delite import (
    Agent,
    DeliteError,
    ExecutionAlreadyClaimedError,
    ExecutionStateError,
    Response,
    Runtime,
    ScriptedProvider,
    current_call,
    tool,
)
from delite.providers import call


def outputs(messages: list[dict[str, Any]]) -> str:
    return " | ".join(m["content"] for m in messages if m["role"] == "tool")


def build(data_dir: str, scenario: str | None = None, runtime: Runtime | None = None) -> Agent:
    """The scenario's agent (also the ``--agent answer_worker:build`` factory: scenario from the environment)."""
    scenario = scenario or os.environ["DELITE_TEST_SCENARIO"]
    ledger = Path(data_dir) / "ledger.txt"

    def effect(name: str) -> None:
        with ledger.open("a") as f:
            f.write(f"{name} {current_call().idempotency_key} {current_call().attempt}\n")
            f.flush()
            os.fsync(f.fileno())

    @tool(requires_confirmation=True)
    def transfer(amount: int) -> str:
        """Move money."""
        effect("transfer")
        return f"moved {amount}"

    @tool(target="client")
    def read_cell(cell: str) -> str:
        """Read a cell in the user's spreadsheet."""
        raise AssertionError("client tool")

    @tool(retry_in_doubt=False)
    def pay(amount: int) -> str:
        """Pay (not safe to retry blindly)."""
        if os.environ.get("DELITE_TEST_DIE") == "1":
            os.kill(os.getpid(), signal.SIGKILL)
        effect("pay")
        return f"paid {amount}"

    scripts: dict[str, Any] = {
        "approval": [call("transfer", amount=5), outputs],
        "client": [call("read_cell", cell="B2"), outputs],
        "human": [call("ask_human", question="Which city?"), outputs],
        "doubt": [call("pay", amount=5), outputs],
    }
    return Agent(
        data_dir,
        provider=ScriptedProvider(scripts[scenario]),
        tools=[transfer, read_cell, pay],
        agent_id=scenario,
        runtime=runtime,
    )


def line_up() -> None:
    """Say this process is ready, then wait for the go file (no sleep stands in for a barrier)."""
    go = os.environ.get("DELITE_TEST_GO_FILE")
    if not go:
        return
    Path(f"{go}.{os.getpid()}.ready").touch()
    while not os.path.exists(go):
        time.sleep(0.001)


def answer(target: Any, command: str, eid: str, args: list[str], *, advance: bool | None) -> Any:
    """Give one answer through ``target`` (an Agent, with ``advance``, or a Runtime, with None)."""
    kw: dict[str, Any] = {} if advance is None else {"advance": advance}
    if command in ("approve", "reject"):
        if advance is None:
            return target.signal(eid, "c1.0", command == "approve")
        return target.decide(eid, {"c1.0": command == "approve"}, **kw)
    if command == "results":
        return target.submit_tool_results(eid, {"c1.0": json.loads(args[0])}, **kw)
    if command == "input":
        return target.submit_input(eid, args[0], **kw)
    if command == "resolve":
        how = args[0]
        if how == "rerun":
            return target.resolve(eid, "c1.0", rerun=True, **kw)
        if how == "error":
            return target.resolve(eid, "c1.0", error=args[1], **kw)
        return target.resolve(eid, "c1.0", result=json.loads(args[1]), **kw)
    raise SystemExit(f"unknown command {command}")


def answer_while_busy(agent: Agent, command: str, eid: str, args: list[str], *, advance: bool) -> Any:
    """Answer; with ``DELITE_TEST_RETRY_BUSY=1``, try again while another process holds the execution.

    A client that retries on "busy" is what turns a lost race into a second answer when nothing checks
    for one: every retry here must end in the winner's answer being found, never in a second one.
    """
    deadline = time.monotonic() + 60
    while True:
        try:
            return answer(agent, command, eid, args, advance=advance)
        except ExecutionAlreadyClaimedError:
            if os.environ.get("DELITE_TEST_RETRY_BUSY") != "1" or time.monotonic() > deadline:
                raise
            time.sleep(0.001)


def main() -> int:
    data_dir, scenario, command, *args = sys.argv[1:]
    if command == "cli":
        from delite_cli.main import cli

        os.environ["DELITE_TEST_SCENARIO"] = scenario
        line_up()
        cli.main(args=args, prog_name="delite")  # exits with the command's code
        return 0
    via = os.environ.get("DELITE_TEST_VIA", "record")
    runtime = Runtime(data_dir) if via == "runtime" else None
    agent = build(data_dir, scenario, runtime)
    line_up()
    try:
        if command == "start":
            r = agent.run(args[1] if len(args) > 1 else f"{scenario} please", execution_id=args[0])
        elif command == "resume":
            r = agent.resume(args[0])
        elif runtime is not None:
            answer(runtime, command, args[0], args[1:], advance=None)
            r = runtime.wait(args[0], timeout=60)
        else:
            r = answer_while_busy(agent, command, args[0], args[1:], advance=via == "advance")
    except DeliteError as e:
        state = isinstance(e, ExecutionStateError)
        print(json.dumps({"error": type(e).__name__, "http": e.http_status, "state": state, "message": str(e)}))
        return 0
    finally:
        if runtime is not None:
            runtime.shutdown()
    report(r)
    return 0


def report(r: Response) -> None:
    reason = r.suspend_reason
    ids = reason.confirmation_ids if reason else []
    print(
        json.dumps({"status": r.status.value, "answer": r.answer, "kind": reason.kind if reason else None, "ids": ids})
    )


if __name__ == "__main__":
    raise SystemExit(main())
