"""``delite demo``: crash a run with SIGKILL and resume it in a fresh process, with nothing done twice.

The parent process starts a worker that runs an order-processing agent, kills it with SIGKILL while it is
mid-run, starts a second worker that resumes the execution by id, and then shows the execution's steps, a
ledger of charges (every charge exactly once) and the commands that inspect what it did.

The model is the scripted one shipped in delite, offline, whatever the environment holds. A real model is
used only when asked for with ``--model vendor:model`` (say ``openai:gpt-4o-mini``, with its API key in the
environment). Every failure ends the demo with one line on stderr: exit 1 when the demo failed (a model or
network error, a worker that crashed, a check that did not hold), 2 for a usage error (a bad ``--model``,
a missing API key or SDK, a data directory that cannot be created), 130 when interrupted.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from delite import Agent, FileStore, RetryPolicy, ScriptedProvider, current_call, tool
from delite.log.records import ToolFinished

PROMPT = "You process orders: charge each one, then report the total."
REAL_PROMPT = (
    "You process orders. Charge every order you are given with the charge tool, one call at a time (never two "
    "tool calls in one turn), with the exact order number and amount. When all are charged, report the total."
)
SCRIPTED = "scripted"
"""The ``--model`` value of the offline scripted model (the default)."""
ERROR_PREFIX = "demo-error: "
"""How a worker reports its failure to the parent: the last line of its stderr."""
# One tool call per turn keeps the run step by step, so the kill lands between charges.
REAL_TIMEOUT = 20.0
"""Seconds a real model's request may take in the demo before it is a (retried) error."""
REAL_RETRY = RetryPolicy(max_attempts=2, base_delay=1.0)
FIRST_STEP_DEADLINE = 2 * REAL_TIMEOUT + 20
"""Seconds the demo waits for the worker's first recorded charges before it says the model is not answering."""

SERIAL_TOOLS = {
    "openai": {"parallel_tool_calls": False},
    "openai-responses": {"parallel_tool_calls": False},
    "anthropic": {"tool_choice": {"type": "auto", "disable_parallel_tool_use": True}},
}


class DemoError(Exception):
    """A failure of the demo, shown as one line; ``exit_code`` 1 (the demo failed) or 2 (a usage error)."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        """Keep the message and the exit code."""
        super().__init__(message)
        self.exit_code = exit_code


def choose_model(model: str | None) -> tuple[str | None, str]:
    """The recipe of the real model to use (None: the scripted one) and how to describe it, from ``--model``.

    Raises:
        DemoError: the recipe is malformed, or its SDK or API key is missing (exit code 2); nothing ran.
    """
    chosen = (model or SCRIPTED).strip()
    if chosen == SCRIPTED:
        return None, "the scripted model shipped in delite (offline; --model vendor:model picks a real one)"
    from delite.errors import DeliteError
    from delite.providers import from_recipe

    try:
        from_recipe(chosen)  # checks the recipe, the SDK and the API key; no request is made
    except (DeliteError, ImportError) as e:
        raise DemoError(f"--model {chosen}: {one_line(e)}", exit_code=2) from e
    return chosen, f"{chosen} (a real model, asked for with --model; a run costs a fraction of a cent)"


def one_line(e: BaseException) -> str:
    """An exception as one line: its message's first line, or its type when it has none."""
    text = str(e).strip().splitlines()
    return text[0] if text else type(e).__name__


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
        fd = os.open(_ledger(data_dir), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)  # private, as the logs
        with os.fdopen(fd, "a") as f:
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
        # A model that does not answer fails the demo in about a minute (not the SDKs' ten-minute default).
        real = from_recipe(recipe, params=SERIAL_TOOLS.get(vendor, {}), timeout=REAL_TIMEOUT)
        return Agent(data_dir, provider=real, prompt=REAL_PROMPT, tools=[charge], agent_id="demo", retry=REAL_RETRY)
    provider = ScriptedProvider.tool_loop(
        steps, "charge", lambda i: {"order": 100 + i, "amount": _amount(i)}, answer=total
    )
    return Agent(data_dir, provider=provider, prompt=PROMPT, tools=[charge], agent_id="demo")


def _worker(data_dir: str, execution_id: str, steps: int, recipe: str | None) -> int:
    try:
        with build_agent(data_dir, steps, recipe) as agent:
            response = agent.run(_task(steps, recipe), execution_id=execution_id)
    except Exception as e:  # noqa: BLE001 - reported to the parent as one line
        print(f"{ERROR_PREFIX}{type(e).__name__}: {one_line(e)}", file=sys.stderr, flush=True)
        return 1
    usage = response.usage
    print(json.dumps({"answer": response.answer, "status": response.status.value, "cost": usage.cost}))
    if response.status.value != "completed":
        error = response.error or response.status.value
        print(f"{ERROR_PREFIX}the run ended {response.status.value}: {error}", file=sys.stderr, flush=True)
        return 1
    return 0


def _failure(stderr: str | None, returncode: int | None) -> str:
    """What a worker said when it failed: its one-line report, else the last line of its stderr."""
    lines = [line.strip() for line in (stderr or "").splitlines() if line.strip()]
    for line in reversed(lines):
        if line.startswith(ERROR_PREFIX):
            return line.removeprefix(ERROR_PREFIX)
    if lines:
        return lines[-1]
    return f"it exited with code {returncode}"


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


def run_demo(data_dir: str | None, steps: int, model: str | None = None) -> int:
    """Run the demo; returns the process exit code (0 when every check holds; see the module for the others).

    Every failure is one line on stderr (``error: ...``), never a traceback.
    """
    workers: list[subprocess.Popen[str]] = []
    try:
        return _run(data_dir, steps, model, workers)
    except DemoError as e:
        _error(str(e))
        return e.exit_code
    except KeyboardInterrupt:
        _error("interrupted")
        return 130
    except Exception as e:  # noqa: BLE001 - the demo ends with one line, whatever went wrong
        _error(f"the demo failed: {type(e).__name__}: {one_line(e)}")
        return 1
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
                worker.wait()


def _error(message: str) -> None:
    from delite_cli._safe import clean

    print(f"error: {clean(message, newlines=False)}", file=sys.stderr, flush=True)


def _run(data_dir: str | None, steps: int, model: str | None, workers: list[subprocess.Popen[str]]) -> int:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    from delite.store import new_execution_id
    from delite.store._open import describe, looks_like_url

    if data_dir is not None and looks_like_url(data_dir):
        raise DemoError(
            f"the demo runs on a data directory (its ledger is a file beside the logs), not {describe(data_dir)}",
            exit_code=2,
        )
    recipe, described = choose_model(model)
    console = Console(highlight=False)
    data_dir = os.path.abspath(data_dir or tempfile.mkdtemp(prefix="delite-demo-"))
    try:  # private like every folder delite makes (0700 whatever the umask), so `delite health` finds it clean
        if not os.path.isdir(data_dir):
            os.makedirs(data_dir, mode=0o700)
            os.chmod(data_dir, 0o700)
    except OSError as e:
        raise DemoError(f"cannot use {data_dir} as the data directory: {e.strerror or e}", exit_code=2) from e
    store = FileStore(data_dir)
    eid = new_execution_id()
    console.print(f"[bold]delite demo[/] - data directory {escape(data_dir)}")
    console.print(f"Model: {escape(described)}")
    console.print(f"1. A worker process starts execution {eid}: {steps} orders to charge.")
    worker = _spawn(data_dir, eid, steps, recipe)
    workers.append(worker)
    kill_after = max(1, steps // 2)
    deadline = time.monotonic() + FIRST_STEP_DEADLINE
    while _finished_calls(store, eid) < kill_after and worker.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    if worker.poll() is None and _finished_calls(store, eid) == 0:
        worker.kill()
        worker.communicate()
        raise DemoError(f"the model did not answer within {FIRST_STEP_DEADLINE:.0f} seconds ({described})")
    time.sleep(0.05)  # land inside the next charge
    if worker.poll() is not None:
        _, err = worker.communicate()
        if worker.returncode != 0:
            raise DemoError(f"the worker failed before it could be killed: {_failure(err, worker.returncode)}")
        raise DemoError("the run finished before the worker could be killed; try more --steps")
    os.kill(worker.pid, signal.SIGKILL)
    worker.communicate()
    done = _finished_calls(store, eid)
    console.print(f"2. SIGKILL sent to worker pid {worker.pid} after {done} of {steps} charges were recorded.")
    console.print(f"3. A new worker process resumes execution {eid} by id.")
    resumed = _spawn(data_dir, eid, steps, recipe)
    workers.append(resumed)
    try:
        out, err = resumed.communicate(timeout=300)
    except subprocess.TimeoutExpired:
        raise DemoError("the resumed worker did not finish within 300 seconds") from None
    if resumed.returncode != 0:
        raise DemoError(f"the resumed worker failed: {_failure(err, resumed.returncode)}")
    result = json.loads(out.strip().splitlines()[-1])

    agent = build_agent(data_dir, steps, recipe)
    state = agent.get(eid)
    table = Table(title=f"Execution {eid}: {state.status.value}, {state.steps} model calls, {state.resumes} resume(s)")
    for column in ("call", "tool", "arguments", "result", "attempts"):
        table.add_column(column)
    for cs in state.calls.values():
        outcome = cs.finished.result if cs.finished is not None else None
        table.add_row(
            escape(cs.call.id),
            escape(cs.call.name),
            escape(json.dumps(cs.call.arguments)),
            escape(json.dumps(outcome)),
            str(cs.attempts),
        )
    console.print(table)

    ledger = _read_ledger(data_dir)
    keys = [e["key"] for e in ledger]
    unique = len(set(keys))
    in_doubt = [cs.call.id for cs in state.calls.values() if cs.attempts > 1]
    console.print(f"Answer: {escape(str(result['answer']))}")
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
    console.print("\nSee what it did (run these from any directory):")
    for command in inspect_commands(data_dir, eid):
        console.print(f"  {command}", markup=False, soft_wrap=True)
    if not ok:
        raise DemoError("a check did not hold: an order was not charged exactly once (see above)")
    return 0


def inspect_commands(data_dir: str, execution_id: str) -> list[str]:
    """The ``delite`` commands that show an execution of ``data_dir``, quoted for a POSIX shell."""
    where = f"--data-dir {shlex.quote(data_dir)}"
    html = shlex.quote(os.path.join(data_dir, f"{execution_id}.html"))
    return [
        f"delite status {where}",
        f"delite inspect {execution_id} {where}",
        f"delite steps {execution_id} {where}",
        f"delite export {execution_id} {where} --format html -o {html}",
    ]


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
