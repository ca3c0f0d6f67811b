"""A process that runs, resumes or approves an execution with an MCP server (the crash and approval tests).

    worker.py run|resume|approve DATA_DIR EXECUTION_ID SERVER_JSON

SERVER_JSON: ``{"url": ...}`` or ``{"command": [...]}``, plus ``trusted`` / ``requires_confirmation`` /
``tool`` (the tool the script calls, default ``block``) / ``on_drift``. Prints the response's status and
answer as JSON on its last line.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from delite import Agent, MCPServer
from delite.providers import ScriptedProvider, call


def main() -> None:
    mode, data_dir, eid, spec_text = sys.argv[1:5]
    spec = json.loads(spec_text)
    where: dict[str, Any] = {"url": spec["url"]} if "url" in spec else {"command": spec["command"]}
    server = MCPServer(
        "srv",
        **where,
        trusted=spec.get("trusted", False),
        requires_confirmation=spec.get("requires_confirmation", False),
        connect_timeout=5.0,
    )
    tool = spec.get("tool", "block")

    def answer(messages: list[dict[str, Any]]) -> str:
        return f"result: {messages[-1]['content']}"

    provider = ScriptedProvider([call(f"srv__{tool}", tag="t1"), answer])
    with Agent(data_dir, provider=provider, tools=[server], on_drift=spec.get("on_drift", "error")) as agent:
        if mode == "run":
            r = agent.run("go", execution_id=eid)
        elif mode == "resume":
            r = agent.resume(eid)
        else:
            r = agent.submit_approval(eid, approved=True)
        kind = r.suspend_reason.kind if r.suspend_reason is not None else None
        print(json.dumps({"status": r.status.value, "answer": getattr(r, "answer", None), "kind": kind}))
    server.close()


if __name__ == "__main__":
    main()
