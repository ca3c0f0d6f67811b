"""``rt.close()`` (or ``shutdown()``) called from inside one of the runtime's own runs is refused, not a hang.

So is ``rt.wait()`` on the execution whose tool calls it.

It waited for every run to stop, the one it was called from included: a tool that closed its runtime (sync, in
a worker thread, or async, on the runtime's loop) hung forever. Each case runs in a process of its own, so a
hang fails the test by its timeout rather than hanging the suite.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

CHILD = textwrap.dedent(
    """
    import json, sys
    from delite import Agent, Runtime, ScriptedProvider, current_call, tool
    from delite.providers import call

    data_dir, kind = sys.argv[1], sys.argv[2]
    seen = []
    rt = Runtime(data_dir)

    def attempt():
        try:
            if kind == "wait-self":
                rt.wait(current_call().execution_id)  # no timeout: it waited for itself forever
            else:
                rt.close()
            seen.append("closed")
        except Exception as e:
            seen.append(type(e).__name__)
        if kind == "sync-then-stop":
            rt.shutdown(wait=False)  # allowed from inside: the runtime stops once this run reaches its boundary

    if kind == "async":
        @tool
        async def stop_it() -> str:
            "Close the runtime from inside a run."
            attempt()
            return "asked"
    else:
        @tool
        def stop_it() -> str:
            "Close the runtime from inside a run."
            attempt()
            return "asked"

    agent = Agent(data_dir, runtime=rt, provider=ScriptedProvider([call("stop_it"), "done"]), tools=[stop_it])
    eid = rt.go(agent, "go")
    status = str(rt.wait(eid, timeout=30).status)
    rt.close()
    print(json.dumps({"status": status, "seen": seen}))
    """
)


@pytest.mark.parametrize(
    ("kind", "status"),
    [("sync", "completed"), ("async", "completed"), ("sync-then-stop", "running"), ("wait-self", "completed")],
)
def test_closing_the_runtime_from_its_own_tool_is_a_usage_error(tmp_path: Path, kind: str, status: str) -> None:
    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(tmp_path / "data"), kind],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out == {"status": status, "seen": ["UsageError"]}, out
