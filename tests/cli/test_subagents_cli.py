"""The delite command on sub-agents: list a parent's children, show the link both ways, answer through the parent."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from delite import Agent, ScriptedProvider, delegate, tool
from delite.providers import call
from delite.store import Store

BOTH_STORES = True  # parents, children and answers through the parent: the same on any store


def _team(where: Path | Store) -> Agent:
    data, store = (None, where) if isinstance(where, Store) else (where, None)

    @tool(requires_confirmation=True)
    def pay(invoice: str) -> str:
        """Pay an invoice."""
        return f"paid {invoice}"

    child = Agent(
        data,
        store=store,
        agent_id="accountant",
        provider=ScriptedProvider([call("pay", invoice="I-1"), "paid"]),
        tools=[pay],
    )

    @tool
    def settle(invoice: str) -> str:
        """Delegate to the accountant."""
        return delegate(child, f"settle {invoice}").answer or ""

    return Agent(
        data,
        store=store,
        agent_id="manager",
        provider=ScriptedProvider([call("settle", invoice="I-1"), "ok"]),
        tools=[settle],
    )


def test_status_parent_inspect_and_approve_through_the_parent(run: Any, tmp_path: Path) -> None:
    data = tmp_path / "data"
    r = _team(data).run("settle I-1", execution_id="m")
    assert r.status.value == "waiting_approval"

    listed = run("status", "--data-dir", data, "--parent", "m", "--json")
    assert listed.exit_code == 0, listed.output
    page = json.loads(listed.stdout)
    assert [(e["id"], e["parent_id"], e["parent_call"]) for e in page["executions"]] == [("m:c1.0", "m", "c1.0")]

    parent = run("inspect", "m", "--data-dir", data)
    assert "Sub-agents" in parent.stdout and "m:c1.0" in parent.stdout and "accountant" in parent.stdout
    assert "m:c1.0/c1.0" in parent.stdout  # the child's pending call, listed on the parent
    child = run("inspect", "m:c1.0", "--data-dir", data)
    assert "Parent" in child.stdout and "call c1.0, depth 1" in child.stdout
    detail = json.loads(run("inspect", "m", "--data-dir", data, "--json").stdout)
    assert [(c["call_id"], c["status"], c["child_id"]) for c in detail["pending_calls"]] == [
        ("c1.0", "waiting_child", "m:c1.0")
    ]

    approved = run("approve", "m", "m:c1.0/c1.0", "--data-dir", data)  # recorded in the child's log
    assert approved.exit_code == 0, approved.output
    assert _team(run.data(data).store).resume("m").answer == "ok"
