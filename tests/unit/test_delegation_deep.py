"""An answer to a call two or more sub-agents down reaches it: the parents in between run on.

The answer is recorded in the deepest sub-agent's log; the parent in between shows nothing new in its own. A
parent asked whether its child still waited looked only at the child's own log, so a tree three deep (top,
manager, clerk) approved from the top stayed waiting for ever, however often it was resumed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from delite import Agent, ScriptedProvider, delegate, tool
from delite.providers import call


def _tree(data: Path, levels: int, log: dict[str, list[str]]) -> Agent:
    """An agent whose one tool delegates to a middle agent, ``levels - 2`` times down, to a clerk that pays."""

    @tool(requires_confirmation=True)
    def pay(invoice: str) -> str:
        """Pay an invoice (needs approval)."""
        log["paid"].append(invoice)
        return f"paid {invoice}"

    @tool
    def ask(question: str) -> str:
        """Ask a human."""
        from delite import Clarification

        log["asked"].append(question)
        return Clarification(question)  # type: ignore[return-value]

    def agent(level: int) -> Agent:
        if level == levels:
            script: list[Any] = [call("pay", invoice="A-1"), call("ask", question="receipt?"), lambda m: "clerk done"]
            return Agent(data, agent_id=f"a{level}", tools=[pay, ask], provider=ScriptedProvider(script))

        @tool
        def hand_down(task: str) -> str:
            """Hand the task down."""
            log["bodies"].append(f"a{level}")
            return delegate(agent(level + 1), task).answer or ""

        script = [call("hand_down", task="pay A-1"), lambda m: f"a{level}: " + str(m[-1]["content"])]
        return Agent(data, agent_id=f"a{level}", tools=[hand_down], provider=ScriptedProvider(script))

    return agent(1)


@pytest.mark.parametrize("levels", [2, 3, 4])
def test_answers_deep_in_the_tree_are_taken_up_by_a_resume_from_the_top(tmp_path: Path, levels: int) -> None:
    log: dict[str, list[str]] = {"paid": [], "asked": [], "bodies": []}
    top = _tree(tmp_path, levels, log)
    r = top.run("go", execution_id="P")
    deepest = "P" + ":c1.0" * (levels - 1)
    assert r.status == "waiting_approval" and r.suspend_reason is not None
    assert r.suspend_reason.confirmation_ids == [f"{deepest}/c1.0"]
    bodies = list(log["bodies"])
    again = top.resume("P")  # nothing answered: still waiting, and no body of the tree runs again
    assert again.status == "waiting_approval" and log["bodies"] == bodies and log["paid"] == []
    top.approve("P", f"{deepest}/c1.0")  # recorded in the deepest log only
    asked = top.resume("P")
    assert log["paid"] == ["A-1"], asked
    assert asked.status == "waiting_human_input" and asked.suspend_reason is not None
    assert asked.suspend_reason.confirmation_ids == [f"{deepest}/c2.0"] and asked.suspend_reason.question == "receipt?"
    done = top.submit_input("P", "here")
    expected = "".join(f"a{level}: " for level in range(1, levels)) + "clerk done"
    assert done.status == "completed" and done.answer == expected, done
    assert log["paid"] == ["A-1"] and log["asked"] == ["receipt?"]  # each body that acts ran once
