"""A worker process for the crash tests: runs a multi-step agent, optionally killing itself at a chosen point.

Usage: python worker.py DATA_DIR EXECUTION_ID STEPS MODE K

MODE is one of:
  none          run to the end
  after-write   SIGKILL right after the K-th log write returned (a record is on disk, the next is not)
  torn-write    write half of the K-th log write, then SIGKILL (a torn tail)
  tool-before   SIGKILL inside the K-th tool body, before its side effect
  tool-after    SIGKILL inside the K-th tool body, after its side effect
The side effect is a line in DATA_DIR/ledger.txt: "<idempotency key> <attempt>".
DELITE_TEST_API=async runs it through ``agent.arun`` instead of ``agent.run``.
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

from delite import Agent, ScriptedProvider, current_call, tool
from delite.log import _os as log_os


def die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def main() -> int:
    data_dir, eid, steps, mode, k = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], int(sys.argv[5])
    ledger = Path(data_dir) / "ledger.txt"
    writes = {"n": 0}
    tool_calls = {"n": 0}
    real_write = log_os.write_all

    def write_all(fd: int, data: bytes) -> None:
        writes["n"] += 1
        if mode == "torn-write" and writes["n"] == k:
            real_write(fd, data[: max(1, len(data) // 2)])
            die()
        real_write(fd, data)
        if mode == "after-write" and writes["n"] == k:
            die()

    log_os.write_all = write_all

    @tool
    def step(i: int) -> str:
        """One step with a side effect."""
        tool_calls["n"] += 1
        if mode == "tool-before" and tool_calls["n"] == k:
            die()
        ctx = current_call()
        with ledger.open("a") as f:
            f.write(f"{ctx.idempotency_key} {ctx.attempt}\n")
            f.flush()
            os.fsync(f.fileno())
        if mode == "tool-after" and tool_calls["n"] == k:
            die()
        return f"step {i} ok"

    def answer(messages: list[dict]) -> str:
        return "; ".join(m["content"] for m in messages if m["role"] == "tool")

    provider = ScriptedProvider.tool_loop(steps, "step", answer=answer)
    with Agent(data_dir, provider=provider, tools=[step]) as agent:
        if os.environ.get("DELITE_TEST_API") == "async":  # the same run through the async API
            import asyncio

            r = asyncio.run(agent.arun("do the steps", execution_id=eid))
        else:
            r = agent.run("do the steps", execution_id=eid)
    print(r.answer)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
