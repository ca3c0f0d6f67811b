"""``delite demo``: crash a run with SIGKILL and resume it in a fresh process, with nothing done twice.

The parent process starts a worker that runs an order-processing agent (scripted model, offline), kills it
with SIGKILL while it is mid-run, starts a second worker that resumes the execution by id, and then shows the
execution's steps and a ledger of charges: every charge exactly once.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from delite import Agent, FileStore, ScriptedProvider, current_call, tool
from delite.log.records import ToolFinished

PROMPT = "You process orders: charge each one, then report the total."


def _ledger(data_dir: str) -> Path:
    return Path(data_dir) / "demo-ledger.jsonl"


def _read_ledger(data_dir: str) -> list[dict[str, Any]]:
    path = _ledger(data_dir)
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def build_agent(data_dir: str, steps: int) -> Agent:
    """The demo's agent: a scripted model that charges ``steps`` orders, and a charge tool."""

    @tool(description="Charge an order. Safe to retry: deduplicated by idempotency key, like a payment API.")
    def charge(order: int, amount: float) -> dict[str, Any]:
        key = current_call().idempotency_key
        time.sleep(0.15)  # a slow payment API: gives the demo time to kill the worker mid-run
        entries = _read_ledger(data_dir)
        with _ledger(data_dir).open("a") as f:
            f.write(json.dumps({"key": key, "order": order, "amount": amount, "pid": os.getpid()}) + "\n")
            f.flush()
            os.fsync(f.fileno())
        duplicate = any(e["key"] == key for e in entries)
        return {"order": order, "charged": amount, "deduplicated": duplicate}

    def total(messages: list[dict[str, Any]]) -> str:
        amounts = [json.loads(m["content"])["charged"] for m in messages if m.get("role") == "tool"]
        return f"Charged {len(amounts)} orders, ${sum(amounts):.2f} in total."

    provider = ScriptedProvider.tool_loop(
        steps, "charge", lambda i: {"order": 100 + i, "amount": round(10 + 2.5 * i, 2)}, answer=total
    )
    return Agent(data_dir, provider=provider, prompt=PROMPT, tools=[charge], agent_id="demo")


def _worker(data_dir: str, execution_id: str, steps: int) -> int:
    with build_agent(data_dir, steps) as agent:
        response = agent.run(f"Charge orders 100-{100 + steps - 1}", execution_id=execution_id)
    print(json.dumps({"answer": response.answer, "status": response.status.value}))
    return 0


def _spawn(data_dir: str, execution_id: str, steps: int) -> subprocess.Popen[str]:
    cmd = [sys.executable, "-m", "delite_cli.demo", "worker", data_dir, execution_id, str(steps)]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _finished_calls(store: FileStore, execution_id: str) -> int:
    try:
        records = store.read(execution_id).records
    except Exception:  # noqa: BLE001 - the log may not exist yet
        return 0
    return sum(1 for r in records if isinstance(r, ToolFinished))


def run_demo(data_dir: str | None, steps: int) -> int:
    """Run the demo; returns the process exit code (0 when every check holds)."""
    from rich.console import Console
    from rich.table import Table

    console = Console(highlight=False)
    data_dir = data_dir or tempfile.mkdtemp(prefix="delite-demo-")
    store = FileStore(data_dir)
    from delite.store import new_execution_id

    eid = new_execution_id()
    console.print(f"[bold]delite demo[/] - data directory {data_dir}")
    console.print("Model: the scripted model shipped in delite (offline)")
    console.print(f"1. A worker process starts execution {eid}: {steps} orders to charge.")
    worker = _spawn(data_dir, eid, steps)
    kill_after = max(1, steps // 2)
    deadline = time.monotonic() + 60
    while _finished_calls(store, eid) < kill_after and worker.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.05)  # land inside the next charge
    if worker.poll() is not None:
        detail = worker.stderr.read() if worker.stderr else ""
        console.print("[red]the worker ended before it could be killed[/]", detail)
        return 1
    os.kill(worker.pid, signal.SIGKILL)
    worker.wait()
    done = _finished_calls(store, eid)
    console.print(f"2. SIGKILL sent to worker pid {worker.pid} after {done} of {steps} charges were recorded.")
    console.print(f"3. A new worker process resumes execution {eid} by id.")
    resumed = _spawn(data_dir, eid, steps)
    out, err = resumed.communicate(timeout=120)
    if resumed.returncode != 0:
        console.print(f"[red]the resumed worker failed:[/]\n{err}")
        return 1
    result = json.loads(out.strip().splitlines()[-1])

    agent = build_agent(data_dir, steps)
    state = agent.get(eid)
    table = Table(title=f"Execution {eid}: {state.status.value}, {state.steps} model calls, {state.resumes} resume(s)")
    for column in ("call", "tool", "arguments", "result", "attempts"):
        table.add_column(column)
    for cs in state.calls.values():
        outcome = cs.finished.result if cs.finished is not None else None
        table.add_row(cs.call.id, cs.call.name, json.dumps(cs.call.arguments), json.dumps(outcome), str(cs.attempts))
    console.print(table)

    ledger = _read_ledger(data_dir)
    keys = [e["key"] for e in ledger]
    unique = len(set(keys))
    in_doubt = [cs.call.id for cs in state.calls.values() if cs.attempts > 1]
    console.print(f"Answer: {result['answer']}")
    console.print(
        f"Charges that reached the payment side: {len(keys)}; distinct idempotency keys: {unique}; orders: {steps}."
    )
    console.print("Completed calls were replayed from the log after the crash; none of them ran again.")
    if in_doubt:
        console.print(
            f"In doubt: {', '.join(in_doubt)} (the kill landed inside the tool, after its intent was logged). "
            "It ran again with the same idempotency key"
            + (
                ", and the payment side deduplicated the repeat."
                if len(keys) > unique
                else "; the first attempt had not reached the payment side."
            )
        )
    ok = unique == steps and result["status"] == "completed"
    console.print("[green]OK: every order charged exactly once.[/]" if ok else "[red]MISMATCH[/]")
    return 0 if ok else 1


def _main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m delite_cli.demo")
    sub = parser.add_subparsers(dest="cmd", required=True)
    w = sub.add_parser("worker")
    w.add_argument("data_dir")
    w.add_argument("execution_id")
    w.add_argument("steps", type=int)
    args = parser.parse_args(argv)
    return _worker(args.data_dir, args.execution_id, args.steps)


if __name__ == "__main__":
    raise SystemExit(_main(sys.argv[1:]))
