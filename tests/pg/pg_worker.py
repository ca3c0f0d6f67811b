"""A worker process for the PostgreSQL tests: a multi-step agent on a PostgresStore, or a claim held until killed.

Usage:
  python pg_worker.py run URL LEDGER EXECUTION_ID STEPS MODE K
      MODE: none (run to the end), tool-before / tool-after (SIGKILL inside the K-th tool body, before or
      after its side effect: a line "<idempotency key> <attempt>" in LEDGER)
  python pg_worker.py hold URL EXECUTION_ID
      claim the execution, print "claimed" and the claim connection's server pid, then wait to be killed
"""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

from delite import Agent, ScriptedProvider, current_call, tool
from delite.store._postgres import PostgresStore


def die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def run(url: str, ledger: Path, eid: str, *, steps: int, mode: str, k: int) -> int:
    calls = {"n": 0}

    @tool
    def step(i: int) -> str:
        """One step with a side effect."""
        calls["n"] += 1
        if mode == "tool-before" and calls["n"] == k:
            die()
        ctx = current_call()
        with ledger.open("a") as f:
            f.write(f"{ctx.idempotency_key} {ctx.attempt}\n")
            f.flush()
            os.fsync(f.fileno())
        if mode == "tool-after" and calls["n"] == k:
            die()
        return f"step {i} ok"

    def answer(messages: list[dict]) -> str:
        return "; ".join(m["content"] for m in messages if m["role"] == "tool")

    store = PostgresStore(url)
    try:
        agent = Agent(store=store, provider=ScriptedProvider.tool_loop(steps, "step", answer=answer), tools=[step])
        print(agent.run("do the steps", execution_id=eid).answer)
    finally:
        store.close()
    return 0


def hold(url: str, eid: str) -> int:
    store = PostgresStore(url)
    log = store.claim(eid)
    print("claimed", store.claim_pid, log.head, flush=True)
    time.sleep(600)
    return 1


def main() -> int:
    if sys.argv[1] == "run":
        url, ledger, eid, steps, mode, k = sys.argv[2:8]
        return run(url, Path(ledger), eid, steps=int(steps), mode=mode, k=int(k))
    return hold(sys.argv[2], sys.argv[3])


if __name__ == "__main__":
    raise SystemExit(main())
