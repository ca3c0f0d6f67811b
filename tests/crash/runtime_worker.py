"""A worker hosting a Runtime, for the kill -9 test: start many executions at once, or recover them.

Usage: python runtime_worker.py DATA_DIR start N    start executions e00..e(N-1) and wait for them
       python runtime_worker.py DATA_DIR recover    a new Runtime: resume what a dead process left running

Every tool body appends "<idempotency key> <attempt>" to DATA_DIR/ledger.txt (fsynced) before it returns.
In ``start``, execution e<k> parks in its tool call number ``park_at(k)`` (a different step for each): the body
appends "<execution id> <call id>" to DATA_DIR/parked.txt (fsynced) and then blocks, before its side effect,
until the process is killed. The test kills the process once every execution has parked, so all of them are
in flight, each at a known step, whatever the machine's speed.
``recover`` prints one JSON line: {"recovered": [ids], "answers": {id: answer}}.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any

from delite import Agent, Runtime, ScriptedProvider, current_call, tool

STEPS = 12


def park_at(execution_id: str) -> int:
    """The step (0-based tool call) at which execution e<k> parks in ``start``."""
    return int(execution_id[1:]) % STEPS


def append_line(path: Path, line: str) -> None:
    with path.open("a") as f:
        f.write(line + "\n")
        f.flush()
        os.fsync(f.fileno())


def build(rt: Runtime, data_dir: str, *, park: bool = False) -> Agent:
    ledger = Path(data_dir) / "ledger.txt"
    parked = Path(data_dir) / "parked.txt"

    @tool
    def work(i: int) -> str:
        """A step with a side effect."""
        ctx = current_call()
        if park and i == park_at(ctx.execution_id):
            append_line(parked, f"{ctx.execution_id} {ctx.call_id}")
            threading.Event().wait()  # in flight until the process is killed
        time.sleep(0.01)
        with ledger.open("a") as f:
            f.write(f"{ctx.idempotency_key} {ctx.attempt}\n")
            f.flush()
            os.fsync(f.fileno())
        return f"{ctx.execution_id}/{i}"

    def answer(messages: list[dict[str, Any]]) -> str:
        return ",".join(m["content"] for m in messages if m["role"] == "tool")

    provider = ScriptedProvider.tool_loop(STEPS, "work", answer=answer, delay=0.02)
    return Agent(data_dir, runtime=rt, agent_id="worker", provider=provider, tools=[work])


def main() -> int:
    data_dir, mode, *rest = sys.argv[1:]
    start = mode == "start"
    # Each parked body holds a worker thread: enough threads for every execution to park at once.
    rt = Runtime(data_dir, workers=32 if start else 8)
    agent = build(rt, data_dir, park=start)
    if start:
        ids = [rt.go(agent, "do the work", execution_id=f"e{i:02d}") for i in range(int(rest[0]))]
        print("started", flush=True)
        for eid in ids:
            rt.wait(eid)
        rt.shutdown()
        return 0
    rt.start()
    recovered = list(rt.recovered)
    answers = {eid: rt.wait(eid, timeout=120).answer for eid in recovered}
    rt.shutdown()
    print(json.dumps({"recovered": recovered, "answers": answers}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
