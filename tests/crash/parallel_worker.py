"""A worker for the parallel-call crash tests: one turn asks for three calls at once, the next for one more.

Usage: python parallel_worker.py DATA_DIR API MODE K

API is ``sync`` or ``async``. MODE is one of:
  none          run to the end (resuming the execution if it exists)
  after-write   SIGKILL right after the K-th log write returned
  mid-batch     SIGKILL inside the second call of the batch, after its side effect, once the first call's
                result is durable and while the third call, which has acted, is still running
Each body appends "<idempotency key> <attempt>" to DATA_DIR/ledger.txt (fsynced) before it returns.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

from delite import Agent, ScriptedProvider, current_call, tool
from delite.log import _os as log_os
from delite.log.records import ToolFinished
from delite.store import FileStore

EID = "par"


def die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def main() -> int:
    data_dir, api, mode, k = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    ledger = Path(data_dir) / "ledger.txt"
    writes = {"n": 0}
    real_write = log_os.write_all

    def write_all(fd: int, data: bytes) -> None:
        real_write(fd, data)
        writes["n"] += 1
        if mode == "after-write" and writes["n"] == k:
            die()

    log_os.write_all = write_all

    def finished(call_id: str) -> bool:
        return any(isinstance(r, ToolFinished) and r.call_id == call_id for r in FileStore(data_dir).read(EID).records)

    def effect() -> None:
        ctx = current_call()
        with ledger.open("a") as f:
            f.write(f"{ctx.idempotency_key} {ctx.attempt}\n")
            f.flush()
            os.fsync(f.fileno())

    @tool
    def pay(n: int) -> str:
        """Pay order n."""
        call_id = current_call().call_id
        if mode == "mid-batch" and call_id == "c1.1":
            # The barrier: the first call's result is durable and the third call has acted.
            deadline = time.monotonic() + 60
            while not finished("c1.0") or not ledger.exists() or ":c1.2 " not in ledger.read_text():
                if time.monotonic() > deadline:
                    raise SystemExit("the first call never finished or the third never acted")
                time.sleep(0.001)
            effect()
            die()
        if mode == "mid-batch" and call_id == "c1.2":
            effect()
            threading.Event().wait(60)  # still running when the process dies (the call above kills it)
        effect()
        return f"paid {n}"

    def answer(messages: list[dict[str, Any]]) -> str:
        return "; ".join(m["content"] for m in messages if m["role"] == "tool")

    three = {"tool_calls": [{"name": "pay", "arguments": {"n": n}} for n in (1, 2, 3)]}
    script = ScriptedProvider([three, {"tool_calls": [{"name": "pay", "arguments": {"n": 4}}]}, answer])
    agent = Agent(data_dir, provider=script, tools=[pay])
    if api == "async":
        r = asyncio.run(agent.arun("pay them", execution_id=EID))
    else:
        r = agent.run("pay them", execution_id=EID)
    print(r.answer)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
