"""``delite demo``: crash a run with SIGKILL and resume it in a fresh process, with nothing done twice.

The parent process starts a worker that runs an order-processing agent, kills it with SIGKILL while it is
mid-run, starts a second worker that resumes the execution by id, and then shows the execution's steps and a
ledger of charges: every charge exactly once.

The model is the scripted one shipped in delite (offline), or a real one when ``OPENAI_API_KEY`` or
``ANTHROPIC_API_KEY`` is set (``DELITE_DEMO_MODEL`` picks another recipe, such as
``anthropic:claude-haiku-4-5``; ``DELITE_DEMO_MODEL=scripted`` forces the offline model).
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
REAL_PROMPT = (
    "You process orders. Charge every order you are given with the charge tool, one call at a time (never two "
    "tool calls in one turn), with the exact order number and amount. When all are charged, report the total."
)
DEFAULT_MODELS = {"OPENAI_API_KEY": "openai:gpt-4o-mini", "ANTHROPIC_API_KEY": "anthropic:claude-haiku-4-5"}
# One tool call per turn keeps the run step by step, so the kill lands between charges.
SERIAL_TOOLS = {
    "openai": {"parallel_tool_calls": False},
    "openai-responses": {"parallel_tool_calls": False},
    "anthropic": {"tool_choice": {"type": "auto", "disable_parallel_tool_use": True}},
}


def choose_model() -> tuple[str | None, str]:
    """The recipe of the real model to use (None: the scripted one), and why, from the environment."""
    chosen = os.environ.get("DELITE_DEMO_MODEL", "").strip()
    if chosen == "scripted":
        return None, "the scripted model shipped in delite (offline; DELITE_DEMO_MODEL=scripted)"
    if chosen:
        return chosen, f"{chosen} (a real model: DELITE_DEMO_MODEL is set)"
    for env, recipe in DEFAULT_MODELS.items():
        if os.environ.get(env):
            return recipe, f"{recipe} (a real model: {env} is set; a run costs a fraction of a cent)"
    return None, "the scripted model shipped in delite (offline; OPENAI_API_KEY or ANTHROPIC_API_KEY picks a real one)"


def _amount(i: int) -> float:
    return round(10 + 2.5 * i, 2)


def _task(steps: int, recipe: str | None) -> str:
    if recipe is None:
        return f"Charge orders 100-{100 + steps - 1}"
    orders = "; ".join(f"order {100 + i}: ${_amount(i):.2f}" for i in range(steps))
    return f"Charge these orders: {orders}."


def _ledger(data_dir: str) -> Path:
    return Path(data_dir) / "demo-ledger.jsonl"


def _read_ledger(data_dir: str) -> list[dict[str, Any]]:
    path = _ledger(data_dir)
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def build_agent(data_dir: str, steps: int, recipe: str | None = None) -> Agent:
    """The demo's agent: a model that charges ``steps`` orders (scripted, or ``recipe``), and a charge tool."""

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

    if recipe is not None:
        from delite.providers import from_recipe

        vendor = recipe.partition(":")[0]
        real = from_recipe(recipe, params=SERIAL_TOOLS.get(vendor, {}))
        return Agent(data_dir, provider=real, prompt=REAL_PROMPT, tools=[charge], agent_id="demo")
    provider = ScriptedProvider.tool_loop(
        steps, "charge", lambda i: {"order": 100 + i, "amount": _amount(i)}, answer=total
    )
    return Agent(data_dir, provider=provider, prompt=PROMPT, tools=[charge], agent_id="demo")


def _worker(data_dir: str, execution_id: str, steps: int, recipe: str | None) -> int:
    with build_agent(data_dir, steps, recipe) as agent:
        response = agent.run(_task(steps, recipe), execution_id=execution_id)
    usage = response.usage
    print(json.dumps({"answer": response.answer, "status": response.status.value, "cost": usage.cost}))
    return 0


def _spawn(data_dir: str, execution_id: str, steps: int, recipe: str | None) -> subprocess.Popen[str]:
    cmd = [sys.executable, "-m", "delite_cli.demo", "worker", data_dir, execution_id, str(steps)]
    if recipe is not None:
        cmd += ["--model", recipe]
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
    recipe, described = choose_model()
    console.print(f"[bold]delite demo[/] - data directory {data_dir}")
    console.print(f"Model: {described}")
    console.print(f"1. A worker process starts execution {eid}: {steps} orders to charge.")
    worker = _spawn(data_dir, eid, steps, recipe)
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
    resumed = _spawn(data_dir, eid, steps, recipe)
    out, err = resumed.communicate(timeout=120)
    if resumed.returncode != 0:
        console.print(f"[red]the resumed worker failed:[/]\n{err}")
        return 1
    result = json.loads(out.strip().splitlines()[-1])

    agent = build_agent(data_dir, steps, recipe)
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
    if recipe is not None:
        cost = f"${result['cost']}" if result.get("cost") is not None else "unknown (no price for this model)"
        console.print(f"Model calls: {state.steps}; cost: {cost}.")
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
    charged = sum(1 for cs in state.calls.values() if cs.call.name == "charge" and cs.finished is not None)
    ok = unique == charged and result["status"] == "completed" and (recipe is not None or charged == steps)
    console.print("[green]OK: every order charged exactly once.[/]" if ok else "[red]MISMATCH[/]")
    return 0 if ok else 1


def _main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m delite_cli.demo")
    sub = parser.add_subparsers(dest="cmd", required=True)
    w = sub.add_parser("worker")
    w.add_argument("data_dir")
    w.add_argument("execution_id")
    w.add_argument("steps", type=int)
    w.add_argument("--model", default=None)
    args = parser.parse_args(argv)
    return _worker(args.data_dir, args.execution_id, args.steps, args.model)


if __name__ == "__main__":
    raise SystemExit(_main(sys.argv[1:]))
