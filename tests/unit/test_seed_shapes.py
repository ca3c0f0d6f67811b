"""The seeds' shapes as written: ``delite.agent``, ``Agent()`` without a data dir, ``Budget`` checked when built."""

from __future__ import annotations

import math
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

import delite
from delite import Agent, Budget, FileStore, ScriptedProvider
from delite.errors import UsageError
from delite.providers import call
from delite.state import Status


def test_delite_agent_module_reexports_the_seed_names() -> None:
    from delite.agent import Agent as SeedAgent
    from delite.agent import current_idempotency_key, tool

    assert SeedAgent is delite.Agent and tool is delite.tool
    assert current_idempotency_key is delite.current_idempotency_key
    seen: list[str] = []

    @tool(description="Charge a customer")
    def charge(amount: float) -> str:
        seen.append(current_idempotency_key())
        return "charged"

    with SeedAgent(provider=ScriptedProvider([call("charge", amount=1.0), "ok"]), tools=[charge]) as agent:
        assert agent.run("charge 1").answer == "ok"
    assert len(seen) == 1 and seen[0]


# -- Agent() without a data dir ------------------------------------------------------------------------------


def test_agent_without_a_data_dir_uses_dot_data_and_does_no_io(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    agent = Agent(provider=ScriptedProvider(["hello"]))
    assert list(tmp_path.iterdir()) == []  # building it wrote nothing
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # resolved when built: a later chdir does not move the data
    r = agent.run("hi")
    assert r.answer == "hello"
    assert (tmp_path / "data" / "executions" / f"{r.execution_id}.log").is_file()
    assert list(elsewhere.iterdir()) == []
    # The delite command's default is the same directory, so it sees the run without --data-dir.
    from delite_cli.main import cli

    monkeypatch.chdir(tmp_path)
    out = CliRunner().invoke(cli, ["status", "--json"])
    assert out.exit_code == 0 and r.execution_id in out.output


def test_agent_without_a_data_dir_honours_delite_data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DELITE_DATA_DIR", str(tmp_path / "store"))
    r = Agent(provider=ScriptedProvider(["hello"])).run("hi")
    assert (tmp_path / "store" / "executions" / f"{r.execution_id}.log").is_file()
    assert not (tmp_path / "data").exists()


def test_runtime_without_a_data_dir_shares_the_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from delite import Runtime

    monkeypatch.chdir(tmp_path)
    with Runtime(workers=2) as rt:
        agent = Agent(provider=ScriptedProvider(["hello"]), runtime=rt)
        eid = rt.go(agent, "hi")
        assert rt.wait(eid, timeout=60).answer == "hello"
    assert (tmp_path / "data" / "executions" / f"{eid}.log").is_file()
    assert Agent(provider=ScriptedProvider([])).response(eid).answer == "hello"  # a plain Agent sees it too


def test_recipe_agent_in_the_dendrux_shape(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-test")
    agent = Agent(provider="anthropic:claude-haiku-4-5", prompt="Be brief.")
    assert isinstance(agent.store, FileStore) and agent.store.layout.root == str(tmp_path / "data")
    assert list(tmp_path.iterdir()) == []


# -- Budget ----------------------------------------------------------------------------------------------------

BAD_BUDGETS: list[dict[str, Any]] = [
    {"max_llm_calls": -1},
    {"max_llm_calls": True},
    {"max_llm_calls": "10"},
    {"max_llm_calls": 2.0},
    {"max_tokens": -5},
    {"max_tokens": False},
    {"max_tool_calls": [1]},
    {"max_tool_calls": math.inf},
    {"max_dollars": -0.01},
    {"max_dollars": "-1"},
    {"max_dollars": math.nan},
    {"max_dollars": math.inf},
    {"max_dollars": "nan"},
    {"max_dollars": "Infinity"},
    {"max_dollars": "two dollars"},
    {"max_dollars": ""},
    {"max_dollars": True},
    {"max_dollars": Decimal("NaN")},
    {"max_dollars": Decimal(-3)},
    {"max_dollars": [2]},
    {"on_unknown_cost": "explode"},
    {"on_unknown_cost": None},
]


@pytest.mark.parametrize("options", BAD_BUDGETS, ids=repr)
def test_budget_validates_when_built(options: dict[str, Any]) -> None:
    with pytest.raises(UsageError, match="Budget"):
        Budget(**options)


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"max_llm_calls": 0},
        {"max_tokens": 10**9},
        {"max_dollars": 0},
        {"max_dollars": 2.5},
        {"max_dollars": "2.50"},
        {"max_dollars": Decimal("0.001")},
        {"on_unknown_cost": "ignore"},
    ],
    ids=repr,
)
def test_good_budgets_build(options: dict[str, Any]) -> None:
    b = Budget(**options)
    if "max_dollars" in options:
        assert b.dollars == Decimal(str(options["max_dollars"]))


@pytest.mark.parametrize("value", [{"max_llm_calls": 3}, 5, "Budget(max_llm_calls=3)", object()], ids=repr)
def test_assigning_a_non_budget_is_a_usage_error(data_dir: Path, value: Any) -> None:
    agent = Agent(data_dir, provider=ScriptedProvider(["x"]))
    agent.budget = Budget(max_llm_calls=3)
    with pytest.raises(UsageError, match="must be a Budget"):
        agent.budget = value
    assert agent.budget == Budget(max_llm_calls=3)  # unchanged
    with pytest.raises(UsageError, match="must be a Budget"):
        Agent(data_dir, provider=ScriptedProvider(["x"]), budget=value)
    agent.budget = None
    assert agent.budget is None


def test_unknown_cost_is_never_reported_as_max_dollars_reached(data_dir: Path) -> None:
    # ScriptedProvider's calls have no price: their cost is unknown.
    ran: list[int] = []

    @delite.tool
    def work(i: int) -> str:
        """One step."""
        ran.append(i)
        return "ok"

    agent = Agent(
        data_dir,
        provider=ScriptedProvider([call("work", i=0), call("work", i=1), "done"]),
        tools=[work],
        budget=Budget(max_dollars="1.00"),
    )
    r = agent.run("go")
    assert r.status is Status.SUSPENDED and r.suspend_reason is not None
    reason = r.suspend_reason
    assert reason.kind == "budget" and reason.limit == "max_dollars"
    assert "reached" not in reason.message and "cost unknown" in reason.message and "on_unknown_cost" in reason.message
    assert reason.spent["dollars"] is None and ran == [0]  # one unpriced call, then it stops before the next
    # The documented way on: accept unknown costs (the limit then covers priced calls only).
    agent.budget = Budget(max_dollars="1.00", on_unknown_cost="ignore")
    done = agent.resume(r.execution_id)
    assert done.answer == "done" and ran == [0, 1]


def test_a_reached_dollar_limit_still_says_reached() -> None:
    from delite.state._model import Totals

    b = Budget(max_dollars="0.50")
    spent = Totals(cost=Decimal("0.75"), llm_calls=2)
    assert b.exhausted(spent) == "max_dollars" and b.explain("max_dollars", spent) == "budget limit max_dollars reached"
    partly_unknown = Totals(cost=Decimal("0.10"), cost_known=False, llm_calls=2)
    assert b.exhausted(partly_unknown) == "max_dollars" and "cost unknown" in b.explain("max_dollars", partly_unknown)
    assert Budget(max_dollars="0.50", on_unknown_cost="ignore").exhausted(partly_unknown) is None
    over_anyway = Totals(cost=Decimal("0.60"), cost_known=False, llm_calls=2)
    assert Budget(max_dollars="0.50", on_unknown_cost="ignore").exhausted(over_anyway) == "max_dollars"
    assert "reached" in b.explain("max_dollars", over_anyway)  # the known part alone reaches it


# -- Response kinds: what the type checkers are told is what runs ------------------------------------------------


def test_the_seed_one_liner_and_the_response_kinds(data_dir: Path) -> None:
    from delite import NotSuspendedResponse, Response, SuspendedResponse

    @delite.tool(description="Transfer money", requires_confirmation=True)
    def transfer_funds(amount: float) -> str:
        return f"moved {amount}"

    agent = Agent(data_dir, provider=ScriptedProvider([call("transfer_funds", amount=5.0), "done"]))
    agent.add_tool(transfer_funds)
    response = agent.run("Transfer $5")
    assert isinstance(response, SuspendedResponse) and isinstance(response, Response)
    if response.is_suspended:
        agent.approve(response.execution_id, response.suspend_reason.confirmation_id)
    response = agent.resume(response.execution_id)
    assert isinstance(response, NotSuspendedResponse) and response.suspend_reason is None
    assert response.answer == "done" and not response.is_suspended
    again = agent.response(response.execution_id)
    assert again == response and type(again) is NotSuspendedResponse


def test_a_budget_suspension_has_no_confirmation_id_to_approve(data_dir: Path) -> None:
    agent = Agent(data_dir, provider=ScriptedProvider(["x"]), budget=Budget(max_llm_calls=0))
    r = agent.run("go")
    assert r.is_suspended and r.suspend_reason is not None and r.suspend_reason.kind == "budget"
    assert r.suspend_reason.confirmation_ids == []
    with pytest.raises(UsageError, match="nothing to approve"):
        _ = r.suspend_reason.confirmation_id


def test_a_typed_run_returns_its_output_type(data_dir: Path) -> None:
    from dataclasses import dataclass

    @dataclass
    class Quote:
        price: float

    agent = Agent(data_dir, provider=ScriptedProvider(['{"price": 9.5}']))
    r = agent.run("quote", output_type=Quote)
    assert r.output == Quote(price=9.5) and type(r).__name__ == "NotSuspendedResponse"
