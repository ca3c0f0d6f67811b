from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest
from _stores import log_size, store_at

from delite import Agent, Budget, ScriptedProvider, Status, tool
from delite.errors import (
    AlreadyDecidedError,
    DriftError,
    ExecutionAlreadyActiveError,
    ExecutionAlreadyTerminalError,
    ExecutionNotSuspendedError,
    IdempotencyConflictError,
    InvalidToolResultError,
    ProviderError,
    SuspendKindMismatchError,
)
from delite.log.records import DecisionRecorded, DriftAccepted, ToolFinished
from delite.providers import call
from delite.tools import Clarification


@pytest.fixture
def data_dir(any_data_dir: Any) -> Any:
    """Every test here runs on the file store and on PostgreSQL (the files_only ones on files alone)."""
    return any_data_dir


def tool_outputs(messages: list[dict[str, Any]]) -> str:
    return " | ".join(m["content"] for m in messages if m["role"] == "tool")


@pytest.fixture
def ran() -> list[str]:
    return []


@pytest.fixture
def transfer(ran: list[str]) -> Any:
    @tool(description="Move money", requires_confirmation=True)
    def transfer(amount: int) -> str:
        ran.append(f"transfer {amount}")
        return f"moved {amount}"

    return transfer


# -- approval -----------------------------------------------------------------------------------------------


def test_approval_suspends_before_the_tool_runs(data_dir: Path, transfer: Any, ran: list[str]) -> None:
    agent = Agent(data_dir, provider=ScriptedProvider([call("transfer", amount=5), tool_outputs]), tools=[transfer])
    r = agent.run("move 5")
    assert r.is_suspended and r.status is Status.WAITING_APPROVAL and str(r.status) == "waiting_approval"
    reason = r.suspend_reason
    assert reason is not None and reason.kind == "approval"
    assert reason.confirmation_id == "c1.0"
    assert (reason.calls[0].name, reason.calls[0].arguments) == ("transfer", {"amount": 5})
    assert ran == []
    agent.approve(r.execution_id, reason.confirmation_id)
    assert ran == []  # approve records; resume continues
    done = agent.resume(r.execution_id)
    assert done.answer == "moved 5" and ran == ["transfer 5"]


def test_rejected_call_never_runs_and_the_model_is_told_why(data_dir: Path, transfer: Any, ran: list[str]) -> None:
    agent = Agent(data_dir, provider=ScriptedProvider([call("transfer", amount=5), tool_outputs]), tools=[transfer])
    r = agent.run("move 5")
    agent.reject(r.execution_id, "c1.0", reason="over the limit")
    done = agent.resume(r.execution_id)
    assert done.answer == "Error: the call was rejected by a human: over the limit" and ran == []
    finished = [x for x in store_at(data_dir).read(r.execution_id).records if isinstance(x, ToolFinished)]
    assert finished[0].source == "rejected"


def test_submit_approval_decides_every_call_and_continues(data_dir: Path, transfer: Any, ran: list[str]) -> None:
    two = {
        "tool_calls": [
            {"name": "transfer", "arguments": {"amount": 1}},
            {"name": "transfer", "arguments": {"amount": 2}},
        ]
    }
    agent = Agent(data_dir, provider=ScriptedProvider([two, tool_outputs]), tools=[transfer])
    r = agent.run("move")
    assert r.suspend_reason is not None and r.suspend_reason.confirmation_ids == ["c1.0", "c1.1"]
    done = agent.submit_approval(r.execution_id, approved=True)
    assert done.answer == "moved 1 | moved 2" and ran == ["transfer 1", "transfer 2"]


def test_per_call_decisions(data_dir: Path, transfer: Any, ran: list[str]) -> None:
    two = {
        "tool_calls": [
            {"name": "transfer", "arguments": {"amount": 1}},
            {"name": "transfer", "arguments": {"amount": 2}},
        ]
    }
    agent = Agent(data_dir, provider=ScriptedProvider([two, tool_outputs]), tools=[transfer])
    r = agent.run("move")
    done = agent.submit_approval(r.execution_id, decisions={"c1.0": False, "c1.1": True}, rejection_reason="no")
    assert done.answer == "Error: the call was rejected by a human: no | moved 2" and ran == ["transfer 2"]


def test_bad_decisions_change_nothing(data_dir: Path, transfer: Any) -> None:
    agent = Agent(data_dir, provider=ScriptedProvider([call("transfer", amount=5), "ok"]), tools=[transfer])
    r = agent.run("move 5")
    size = log_size(data_dir, r.execution_id)
    with pytest.raises(InvalidToolResultError) as info:
        agent.approve(r.execution_id, "c9.9")
    assert info.value.http_status == 400
    with pytest.raises(SuspendKindMismatchError) as mismatch:
        agent.submit_input(r.execution_id, "hello")
    assert mismatch.value.http_status == 409
    with pytest.raises(SuspendKindMismatchError):
        agent.submit_tool_results(r.execution_id, {"c1.0": 1})
    assert log_size(data_dir, r.execution_id) == size
    agent.approve(r.execution_id, "c1.0")
    with pytest.raises(AlreadyDecidedError) as second:
        agent.approve(r.execution_id, "c1.0")
    assert second.value.http_status == 409
    assert agent.resume(r.execution_id).answer == "ok"
    with pytest.raises(ExecutionAlreadyTerminalError):
        agent.approve(r.execution_id, "c1.0")


def test_require_approval_by_name(data_dir: Path, ran: list[str]) -> None:
    @tool
    def delete(path: str) -> str:
        """Delete a file."""
        ran.append(path)
        return "deleted"

    agent = Agent(
        data_dir,
        provider=ScriptedProvider([call("delete", path="/x"), "done"]),
        tools=[delete],
        require_approval=["delete"],
    )
    r = agent.run("rm")
    assert r.status is Status.WAITING_APPROVAL and ran == []
    assert agent.submit_approval(r.execution_id, approved=True).answer == "done" and ran == ["/x"]


# -- client tools -------------------------------------------------------------------------------------------


@pytest.fixture
def read_cell() -> Any:
    @tool(description="Read a spreadsheet cell in the user's browser", target="client")
    def read_cell(cell: str) -> str:
        raise AssertionError("a client tool has no body on the server")

    return read_cell


def test_client_tool_round_trip(data_dir: Path, read_cell: Any) -> None:
    agent = Agent(data_dir, provider=ScriptedProvider([call("read_cell", cell="B2"), tool_outputs]), tools=[read_cell])
    r = agent.run("what is in B2?")
    assert r.status is Status.WAITING_CLIENT_TOOL
    assert r.suspend_reason is not None
    pending = r.suspend_reason.calls[0]
    assert (pending.call_id, pending.name, pending.arguments) == ("c1.0", "read_cell", {"cell": "B2"})
    size = log_size(data_dir, r.execution_id)
    for bad in ({"c1.0": 1, "c7.7": 2}, {}, {"nope": 1}):
        with pytest.raises(InvalidToolResultError):
            agent.submit_tool_results(r.execution_id, bad)
    assert log_size(data_dir, r.execution_id) == size
    done = agent.submit_tool_results(r.execution_id, {"c1.0": {"value": 42}})
    assert done.answer == '{"value":42}'
    with pytest.raises(ExecutionAlreadyTerminalError):
        agent.submit_tool_results(r.execution_id, {"c1.0": 1})


def test_client_tool_needing_approval_asks_first(data_dir: Path) -> None:
    @tool(target="client", requires_confirmation=True)
    def wipe_device(device: str) -> str:
        """Wipe a device."""
        raise AssertionError

    agent = Agent(
        data_dir, provider=ScriptedProvider([call("wipe_device", device="d1"), tool_outputs]), tools=[wipe_device]
    )
    r = agent.run("wipe")
    assert r.status is Status.WAITING_APPROVAL
    r = agent.submit_approval(r.execution_id, approved=True)
    assert r.status is Status.WAITING_CLIENT_TOOL
    assert agent.submit_tool_results(r.execution_id, {"c1.0": "wiped"}).answer == "wiped"


# -- human input --------------------------------------------------------------------------------------------


def test_built_in_question_tool(data_dir: Path) -> None:
    script = [call("ask_human", question="Which city?"), lambda m: f"Weather for {m[-1]['content']}"]
    agent = Agent(data_dir, provider=ScriptedProvider(script))
    r = agent.run("weather please")
    assert r.status is Status.WAITING_HUMAN_INPUT
    assert r.suspend_reason is not None and r.suspend_reason.question == "Which city?"
    with pytest.raises(SuspendKindMismatchError):
        agent.approve(r.execution_id, "c1.0")
    assert agent.submit_input(r.execution_id, "Paris").answer == "Weather for Paris"
    with pytest.raises(ExecutionAlreadyTerminalError):
        agent.submit_input(r.execution_id, "again")


def test_tool_returning_a_clarification(data_dir: Path, ran: list[str]) -> None:
    @tool
    def book(flight: str) -> Any:
        """Book a flight."""
        ran.append(flight)
        return Clarification(f"Window or aisle for {flight}?")

    agent = Agent(data_dir, provider=ScriptedProvider([call("book", flight="LH1"), tool_outputs]), tools=[book])
    r = agent.run("book LH1")
    assert r.status is Status.WAITING_HUMAN_INPUT
    assert r.suspend_reason is not None and r.suspend_reason.question == "Window or aisle for LH1?"
    assert agent.resume(r.execution_id).status is Status.WAITING_HUMAN_INPUT  # not in doubt: waiting
    assert agent.submit_input(r.execution_id, "aisle").answer == "aisle"
    assert ran == ["LH1"]


# -- contracts ----------------------------------------------------------------------------------------------


def _contract_agent(data_dir: Path, ran: list[str], amount: int) -> Agent:
    @tool
    def charge(amount: int) -> str:
        """Charge."""
        ran.append(f"charge {amount}")
        return f"charged {amount}"

    agent = Agent(data_dir, provider=ScriptedProvider([call("charge", amount=amount), tool_outputs]), tools=[charge])

    @agent.contract("max-charge")
    def check(step_name: str, args: dict[str, Any]) -> None:
        if "charge" in step_name and args.get("amount", 0) > 1000:
            raise ValueError("Charges over $1000 need VP approval")

    return agent


def test_contract_stops_the_call_and_can_be_overridden(data_dir: Path, ran: list[str]) -> None:
    agent = _contract_agent(data_dir, ran, 5000)
    r = agent.run("charge 5000")
    assert r.status is Status.SUSPENDED and r.suspend_reason is not None
    assert r.suspend_reason.kind == "contract" and ran == []
    assert "max-charge" in r.suspend_reason.message and "VP approval" in r.suspend_reason.message
    assert agent.submit_approval(r.execution_id, approved=True).answer == "charged 5000"
    assert ran == ["charge 5000"]
    decision = [x for x in store_at(data_dir).read(r.execution_id).records if isinstance(x, DecisionRecorded)]
    assert decision[0].approved


def test_contract_rejection(data_dir: Path, ran: list[str]) -> None:
    agent = _contract_agent(data_dir, ran, 5000)
    r = agent.run("charge 5000")
    done = agent.submit_approval(r.execution_id, approved=False, rejection_reason="VP said no")
    assert done.answer == "Error: the call was rejected by a human: VP said no" and ran == []


def test_contract_that_passes(data_dir: Path, ran: list[str]) -> None:
    agent = _contract_agent(data_dir, ran, 10)
    assert agent.run("charge 10").answer == "charged 10"


# -- budgets ------------------------------------------------------------------------------------------------


def test_budget_suspends_and_resumes_when_raised(data_dir: Path, ran: list[str]) -> None:
    @tool
    def work(i: int) -> str:
        """Work."""
        ran.append(str(i))
        return "ok"

    agent = Agent(
        data_dir, provider=ScriptedProvider.tool_loop(5, "work"), tools=[work], budget=Budget(max_llm_calls=2)
    )
    r = agent.run("go")
    assert r.status is Status.SUSPENDED and r.suspend_reason is not None
    assert r.suspend_reason.kind == "budget" and r.suspend_reason.limit == "max_llm_calls"
    assert r.suspend_reason.spent["llm_calls"] == 2 and ran == ["0", "1"]
    assert agent.resume(r.execution_id).is_suspended  # still exhausted: nothing new happens
    agent.budget = Budget(max_llm_calls=100, max_tool_calls=4)
    r = agent.resume(r.execution_id)
    assert r.suspend_reason is not None and r.suspend_reason.limit == "max_tool_calls"
    agent.budget = None
    assert agent.resume(r.execution_id).answer == "done"
    assert ran == ["0", "1", "2", "3", "4"]  # no paid work replayed


def test_dollar_budget_with_unknown_cost_refuses_to_spend_blind(data_dir: Path) -> None:
    agent = Agent(
        data_dir, provider=ScriptedProvider([call("ask_human", question="?"), "x"]), budget=Budget(max_dollars="1.00")
    )
    r = agent.run("go")
    assert r.status is Status.WAITING_HUMAN_INPUT
    r = agent.submit_input(r.execution_id, "a")
    assert r.suspend_reason is not None and r.suspend_reason.limit == "max_dollars"


# -- cancel -------------------------------------------------------------------------------------------------


def test_cancel_suspended_and_terminal(data_dir: Path, transfer: Any, ran: list[str]) -> None:
    agent = Agent(data_dir, provider=ScriptedProvider([call("transfer", amount=5), "x"]), tools=[transfer])
    r = agent.run("move")
    assert agent.cancel(r.execution_id).status is Status.CANCELLED
    with pytest.raises(ExecutionAlreadyTerminalError):
        agent.approve(r.execution_id, "c1.0")
    assert agent.resume(r.execution_id).status is Status.CANCELLED and ran == []
    assert agent.cancel(r.execution_id).status is Status.CANCELLED  # a no-op that reports the status


def test_cancel_while_running_stops_at_the_next_step_boundary(data_dir: Path) -> None:
    steps: list[int] = []
    agent_box: dict[str, Agent] = {}

    @tool
    def work(i: int) -> str:
        """Work."""
        steps.append(i)
        if i == 1:
            # Another caller cancels while this step runs (the claim is held, so the request is a marker).
            t = threading.Thread(target=agent_box["a"].cancel, args=("job",))
            t.start()
            t.join()
        return "ok"

    agent = Agent(data_dir, provider=ScriptedProvider.tool_loop(5, "work"), tools=[work])
    agent_box["a"] = agent
    r = agent.run("go", execution_id="job")
    assert r.status is Status.CANCELLED and steps == [0, 1]
    assert not store_at(data_dir).cancel_requested("job")


# -- drift --------------------------------------------------------------------------------------------------


def test_drift_is_detected_in_each_direction(data_dir: Path, transfer: Any) -> None:
    provider = ScriptedProvider([call("transfer", amount=5), "ok"])
    agent = Agent(data_dir, provider=provider, tools=[transfer], prompt="v1")
    r = agent.run("move")

    with pytest.raises(DriftError) as info:
        Agent(data_dir, provider=provider, tools=[transfer], prompt="v2").resume(r.execution_id)
    assert info.value.changes == [("prompt", "v1", "v2")] and info.value.http_status == 409

    @tool
    def extra(x: int) -> int:
        """Extra."""
        return x

    with pytest.raises(DriftError) as added:
        Agent(data_dir, provider=provider, tools=[transfer, extra], prompt="v1").resume(r.execution_id)
    assert added.value.changes[0][0] == "tool extra" and added.value.changes[0][1] == "(absent)"

    with pytest.raises(DriftError) as removed:
        Agent(data_dir, provider=provider, tools=[], prompt="v1").resume(r.execution_id)
    assert removed.value.changes[0][0] == "tool transfer" and removed.value.changes[0][2] == "(absent)"

    @tool(description="Move money", requires_confirmation=True)
    def transfer2(amount: float, memo: str = "") -> str:
        return "x"

    transfer2.name = "transfer"
    with pytest.raises(DriftError) as changed:
        Agent(data_dir, provider=provider, tools=[transfer2], prompt="v1").resume(r.execution_id)
    assert "memo" in changed.value.changes[0][2]

    # Nothing was written by the refused resumes.
    assert agent.get(r.execution_id).status is Status.WAITING_APPROVAL


def test_drift_policies_record_the_decision(data_dir: Path, transfer: Any) -> None:
    provider = ScriptedProvider([call("transfer", amount=5), "ok"])
    r = Agent(data_dir, provider=provider, tools=[transfer], prompt="v1").run("move")
    lenient = Agent(data_dir, provider=provider, tools=[transfer], prompt="v2", on_drift="warn")
    with pytest.warns(RuntimeWarning, match="prompt"):
        assert lenient.submit_approval(r.execution_id, approved=True).answer == "ok"
    drift = [x for x in store_at(data_dir).read(r.execution_id).records if isinstance(x, DriftAccepted)]
    assert drift[0].changes == [["prompt", "v1", "v2"]] and drift[0].policy == "warn"


def test_model_override_is_not_drift(data_dir: Path, transfer: Any) -> None:
    provider = ScriptedProvider([call("transfer", amount=5), "ok"])
    r = Agent(data_dir, provider=provider, tools=[transfer]).run("move", model="big-model")
    assert (
        Agent(data_dir, provider=provider, tools=[transfer]).submit_approval(r.execution_id, approved=True).is_complete
    )


# -- run-level idempotency ----------------------------------------------------------------------------------


def test_idempotency_key(data_dir: Path, ran: list[str]) -> None:
    @tool
    def work(i: int) -> str:
        """Work."""
        ran.append(str(i))
        return "ok"

    agent = Agent(data_dir, provider=ScriptedProvider.tool_loop(2, "work"), tools=[work])
    first = agent.run("go", idempotency_key="req-1")
    again = agent.run("go", idempotency_key="req-1")
    assert again.execution_id == first.execution_id and again.answer == "done" and ran == ["0", "1"]
    with pytest.raises(IdempotencyConflictError) as info:
        agent.run("something else", idempotency_key="req-1")
    assert info.value.execution_id == first.execution_id and info.value.http_status == 409
    assert agent.get(first.execution_id).idempotency_key == "req-1"


def test_idempotency_key_while_active(data_dir: Path) -> None:
    box: dict[str, Any] = {}

    @tool
    def work(i: int) -> str:
        """Work."""
        try:
            box["agent"].run("go", idempotency_key="k")
        except ExecutionAlreadyActiveError as e:
            box["error"] = e
        return "ok"

    agent = Agent(data_dir, provider=ScriptedProvider.tool_loop(1, "work"), tools=[work])
    box["agent"] = agent
    assert agent.run("go", idempotency_key="k").answer == "done"
    assert box["error"].http_status == 409


def test_submit_on_a_running_or_failed_execution(data_dir: Path) -> None:
    def broken(messages: Any, tools: Any, model: Any) -> dict[str, Any]:
        raise ValueError("model down")

    agent = Agent(data_dir, provider=broken)
    with pytest.raises(ProviderError, match="model down"):
        agent.run("x", execution_id="f")
    with pytest.raises(ExecutionNotSuspendedError):
        agent.submit_input("f", "hi")
