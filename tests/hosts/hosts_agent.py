"""The agent that worker processes on the namespace "hosts" serve (``--agent hosts_agent:build``).

Every tool body that gets to its side effect appends ``<idempotency key> <attempt> <pid> <host>`` to the
ledger ``$HOSTS_DIR/ledger.txt`` (fsynced; ``<host>`` is ``$HOSTS_NAME``), so a test counts exactly which calls
ran, how often, on which host, and with which key. The model is scripted by the execution's input:

* ``job N``: three ``work`` calls, then ``done N``;
* ``park N``: ``work(0)``, ``work(1)``, ``work(2)``, then ``parked done N``. In a process with ``HOSTS_PARK=1``,
  ``work(1)`` on its first attempt writes ``<execution id> <key> <pid>`` to ``$HOSTS_DIR/parked.txt`` and
  blocks before its side effect until ``$HOSTS_DIR/release`` exists (or the process dies);
* ``once N``: like ``park`` but the middle call is ``once(1)``, a tool declared ``retry_in_doubt=False``:
  after a crash inside it the execution waits for an operator instead of running it again;
* ``pay N``: one ``pay`` call that needs a human's approval, then ``paid N``.

A tool's result names the host that ran it (``worked 1 on h2``), so the log shows who finished each call.
``$HOSTS_MODEL_DELAY`` is the model's latency in seconds (default 0.005).
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from delite import Agent, ScriptedProvider, current_call, tool
from delite.providers import call
from delite.store import Store

AGENT_ID = "hosts"


def _dir() -> Path:
    return Path(os.environ["HOSTS_DIR"])


def append_line(path: Path, line: str) -> None:
    """Append one line and fsync it (a ledger entry survives the process's SIGKILL right after)."""
    with path.open("a") as f:
        f.write(line + "\n")
        f.flush()
        os.fsync(f.fileno())


def effect() -> None:
    """The side effect of a tool call: one ledger line."""
    ctx = current_call()
    host = os.environ.get("HOSTS_NAME", "root")
    append_line(_dir() / "ledger.txt", f"{ctx.idempotency_key} {ctx.attempt} {os.getpid()} {host}")


def maybe_park(i: int) -> None:
    """The middle call of ``park``/``once`` blocks in a ``HOSTS_PARK=1`` process, first attempt only."""
    ctx = current_call()
    if i == 1 and os.environ.get("HOSTS_PARK") == "1" and ctx.attempt == 1:
        append_line(_dir() / "parked.txt", f"{ctx.execution_id} {ctx.idempotency_key} {os.getpid()}")
        release = _dir() / "release"
        while not release.exists():
            time.sleep(0.05)


@tool
def work(i: int) -> str:
    """A step with a side effect."""
    maybe_park(i)
    effect()
    return f"worked {i} on {os.environ.get('HOSTS_NAME', 'root')}"


@tool(retry_in_doubt=False)
def once(i: int) -> str:
    """A step never run twice blindly: after a crash inside it, an operator decides."""
    maybe_park(i)
    effect()
    return f"once {i} on {os.environ.get('HOSTS_NAME', 'root')}"


@tool(requires_confirmation=True)
def pay(amount: int) -> str:
    """Pay (needs a human's approval)."""
    effect()
    return f"paid {amount}"


class HostsModel:
    """Replies from the script named by the conversation's first user message."""

    name = "hosts-model"

    def __call__(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]], model: str | None) -> Any:
        first = str(next(m["content"] for m in messages if m["role"] == "user"))
        kind, _, n = first.partition(" ")
        script: list[Any]
        if kind == "job":
            script = [call("work", i=0), call("work", i=1), call("work", i=2), f"done {n}"]
        elif kind == "park":
            script = [call("work", i=0), call("work", i=1), call("work", i=2), f"parked done {n}"]
        elif kind == "once":
            script = [call("work", i=0), call("once", i=1), call("work", i=2), f"once done {n}"]
        elif kind == "pay":
            script = [call("pay", amount=int(n)), f"paid {n}"]
        else:
            script = [f"unknown {first}"]
        delay = float(os.environ.get("HOSTS_MODEL_DELAY", "0.005"))
        time.sleep(delay)
        return ScriptedProvider(script)(messages, tools, model)


def build(where: str | Store) -> Agent:
    """The agent ``hosts`` on a store or a data directory / URL."""
    store = where if isinstance(where, Store) else None
    return Agent(
        None if store is not None else where,
        store=store,
        provider=HostsModel(),
        tools=[work, once, pay],
        agent_id=AGENT_ID,
        prompt="You are a test agent on several hosts.",
    )
