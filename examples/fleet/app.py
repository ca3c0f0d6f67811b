"""A fleet to try on one machine (the README's "Many machines"): an agent served by ``delite worker`` processes.

The model is scripted (offline, no API key): each execution charges three orders, one tool call each, then
answers. A charge takes ``FLEET_CHARGE_SECONDS`` (default 1), so there is time to kill a worker inside one, and is
written to a ledger (``FLEET_LEDGER``, default ``./fleet-ledger.jsonl``) under the call's idempotency key, as a
payment API that deduplicates by key would: a call retried after its worker died finds its charge made, if it
was, and does not charge again. The ledger also notes every start of a call, so the report shows which calls
ran more than once (the ones a worker was inside when it was killed).

    delite worker --agent examples.fleet.app:build     # serve the agent (start as many as you like)
    python -m examples.fleet.app enqueue 12            # enqueue 12 executions; prints their ids
    python -m examples.fleet.app report                # executions completed, charges made, calls retried

The store is ``DELITE_DATA_DIR`` (a data directory, or a ``postgresql://`` URL), as for the ``delite`` command.
"""

from __future__ import annotations

import fcntl
import json
import os
import sys
import time
from collections import Counter
from typing import Any

from delite import Agent, DataDir, ScriptedProvider, current_idempotency_key, tool
from delite.providers import call

AGENT_ID = "fleet-demo"


def _ledger() -> str:
    return os.environ.get("FLEET_LEDGER") or "fleet-ledger.jsonl"


def _entries(path: str) -> list[dict[str, Any]]:
    try:
        with open(path, encoding="utf-8") as fh:
            return [json.loads(line) for line in fh if line.strip()]
    except FileNotFoundError:
        return []


def _append(entry: dict[str, Any], *, decide: bool = False) -> dict[str, Any]:
    """Append to the ledger under a lock; with ``decide``, first say whether this key was charged already."""
    fd = os.open(_ledger(), os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o600)
    with os.fdopen(fd, "r+", encoding="utf-8") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)  # one process at a time decides whether this key was charged
        if decide:
            fh.seek(0)
            earlier = [json.loads(line) for line in fh if line.strip()]
            done = any(e["key"] == entry["key"] and e["event"] == "charged" for e in earlier)
            entry = {**entry, "event": "deduplicated" if done else "charged"}
        fh.write(json.dumps(entry) + "\n")
        fh.flush()
    return entry


@tool
def charge(order: int) -> str:
    """Charge one order (a deduplicating payment API: one charge per idempotency key)."""
    key = current_idempotency_key()
    _append({"key": key, "order": order, "event": "started", "pid": os.getpid()})
    time.sleep(float(os.environ.get("FLEET_CHARGE_SECONDS") or 1))
    entry = _append({"key": key, "order": order, "pid": os.getpid()}, decide=True)
    return f"order {order}: {'charged' if entry['event'] == 'charged' else 'already charged'}"


def build(data_dir: str | None = None) -> Agent:
    """The agent (a factory for ``delite worker --agent``: it is given ``--data-dir``, a path or a URL)."""
    script = [call("charge", order=1), call("charge", order=2), call("charge", order=3), "Charged three orders."]
    return Agent(
        data_dir, provider=ScriptedProvider(script), tools=[charge], agent_id=AGENT_ID, prompt="Charge the orders."
    )


def report() -> dict[str, int]:
    """Executions of this agent by status, charges made, and calls that ran more than once."""
    entries = _entries(_ledger())
    attempts = Counter(e["key"] for e in entries if e["event"] == "started")
    charged = Counter(e["key"] for e in entries if e["event"] == "charged")
    with DataDir(os.environ.get("DELITE_DATA_DIR") or "./data") as data:
        summaries = data.list(agent=AGENT_ID, limit=None).items
    statuses = Counter(s.status for s in summaries)
    return {
        "executions": len(summaries),
        "completed": statuses.get("completed", 0),
        "charges": sum(charged.values()),
        "charged_twice": sum(1 for n in charged.values() if n > 1),
        "calls_retried": sum(1 for n in attempts.values() if n > 1),
    }


def main(argv: list[str]) -> int:
    """``enqueue N`` or ``report``."""
    if len(argv) == 2 and argv[0] == "enqueue" and argv[1].isdigit():
        with build() as agent:
            for i in range(int(argv[1])):
                print(agent.enqueue(f"charge batch {i + 1}"))
        return 0
    if argv == ["report"]:
        r = report()
        print(
            f"{r['completed']} of {r['executions']} executions completed; {r['charges']} charges, "
            f"{r['charged_twice']} made twice; {r['calls_retried']} calls ran again after their worker died "
            "(same idempotency key, deduplicated)"
        )
        return 0
    print("usage: python -m examples.fleet.app enqueue N | report", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
