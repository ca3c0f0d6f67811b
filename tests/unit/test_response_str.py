"""``print(response)`` (the seed's Quick Start) says something for every outcome: the answer, or why there is none."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from delite import Agent, Budget, ScriptedProvider, tool
from delite.providers import call


@pytest.fixture
def data_dir(any_data_dir: Any) -> Any:
    """Every test here runs on the file store and on PostgreSQL (the files_only ones on files alone)."""
    return any_data_dir


@tool(description="Transfer money", requires_confirmation=True)
def transfer_funds(amount: float) -> dict[str, bool]:
    return {"ok": True}


def test_a_completed_response_prints_its_answer(data_dir: Path) -> None:
    r = Agent(data_dir, provider=ScriptedProvider(["It is sunny."])).run("weather?")
    assert str(r) == "It is sunny." and f"{r}" == "It is sunny."
    empty = Agent(data_dir, provider=ScriptedProvider([""]), agent_id="terse").run("say nothing")
    assert empty.answer == "" and str(empty) == ""  # an empty answer is still the answer


def test_a_response_without_an_answer_prints_its_status_and_why(data_dir: Path) -> None:
    agent = Agent(data_dir, provider=ScriptedProvider([call("transfer_funds", amount=5.0), "done"]))
    agent.add_tool(transfer_funds)
    r = agent.run("Transfer $5")
    assert str(r) == "[waiting_approval] approval: transfer_funds(c1.0)"
    assert str(agent.cancel(r.execution_id)) == "[cancelled]"
    agent.budget = Budget(max_llm_calls=0)
    limited = agent.run("again")
    assert str(limited).startswith(f"[{limited.status.value}] budget: ") and "max_llm_calls" in str(limited)
