"""The operating commands: they record through the Agent API, and continue the run with --agent."""

from __future__ import annotations

import json
from pathlib import Path

BOTH_STORES = True  # every command reads and acts through the store seam: the same on files and in memory
AGENT = "scenario_agent:build"
REPORT_KEYS = {"execution_id", "action", "advanced", "status", "answer", "suspend_reason", "steps", "usage", "error"}


def status_of(run, data: Path, eid: str) -> str:
    return run.data(data).execution(eid).detail.status


def test_approve_records_then_resume_with_the_agent_finishes(run, data: Path) -> None:
    r = run("approve", "approve-1", "--data-dir", data, "--reason", "looks right")
    assert r.exit_code == 0, r.output
    assert "recorded: approved c1.0 for execution approve-1 (status waiting_approval until resumed)" in r.stdout
    assert "  delite resume approve-1 --agent MODULE:FACTORY" in r.stdout
    call = run.data(data).execution("approve-1").tool_calls[0]
    assert call.decision is not None and call.decision.approved and call.decision.reason == "looks right"
    assert call.status == "pending"  # recorded, nothing ran
    shown = run("inspect", "approve-1", "--data-dir", data).stdout
    assert 'c1.0  pay({"amount":42.5})  [approved: recorded, runs on resume]' in shown

    r = run("resume", "approve-1", "--data-dir", data, "--agent", AGENT, "--json")
    assert r.exit_code == 0, r.output
    d = json.loads(r.stdout)
    assert set(d) == REPORT_KEYS
    assert (d["status"], d["answer"], d["advanced"]) == ("completed", "Paid.", True)
    assert run.data(data).execution("approve-1").tool_calls[0].result == "paid 42.5"


def test_approve_with_the_agent_continues_at_once(run, data: Path) -> None:
    r = run("approve", "appr", "c1.0", "--data-dir", data, "--agent", AGENT, "--json")
    d = json.loads(r.stdout)
    assert (d["status"], d["answer"], d["calls"]) == ("completed", "Paid.", ["c1.0"])


def test_agent_from_the_environment(run, data: Path, monkeypatch) -> None:
    monkeypatch.setenv("DELITE_AGENT", AGENT)
    assert json.loads(run("approve", "approve-1", "--data-dir", data, "--json").stdout)["advanced"] is True


def test_reject_tells_the_model(run, data: Path) -> None:
    r = run("reject", "approve-1", "--all", "--data-dir", data, "--reason", "too much", "--agent", AGENT)
    assert r.exit_code == 0, r.output
    assert "rejected c1.0: execution approve-1 is now completed" in r.stdout
    call = run.data(data).execution("approve-1").tool_calls[0]
    assert call.status == "rejected" and "too much" in (call.error or "")


def test_submit_input_records_the_answer(run, data: Path) -> None:
    r = run("submit-input", "input-1", "Lisbon", "--data-dir", data, "--json")
    d = json.loads(r.stdout)
    assert d["advanced"] is False and d["status"] == "waiting_human_input"
    assert run.data(data).execution("input-1").tool_calls[0].human_input == "Lisbon"
    r = run("resume", "input-1", "--data-dir", data, "--agent", AGENT, "--json")
    assert json.loads(r.stdout)["answer"] == "Booked Lisbon."


def test_submit_input_from_stdin(run, data: Path) -> None:
    r = run("submit-input", "input-1", "-", "--data-dir", data, "--agent", AGENT, "--json", stdin="Porto")
    assert json.loads(r.stdout)["answer"] == "Booked Porto."


def test_submit_tool_results_from_a_file_and_from_stdin(run, data: Path, tmp_path: Path) -> None:
    results = tmp_path / "results.json"
    results.write_text(json.dumps({"c1.0": "Paris"}))
    r = run("submit-tool-results", "client-1", results, "--data-dir", data)
    assert r.exit_code == 0, r.output
    call = run.data(data).execution("client-1").tool_calls[0]
    assert (call.status, call.result, call.source) == ("ok", "Paris", "client")
    r = run("resume", "client-1", "--data-dir", data, "--agent", AGENT, "--json")
    assert json.loads(r.stdout)["answer"] == "You are in Paris."


def test_submit_tool_results_on_stdin_continues_with_the_agent(run, data: Path) -> None:
    r = run("submit-tool-results", "client-1", "--data-dir", data, "--agent", AGENT, "--json", stdin='{"c1.0": "Oslo"}')
    assert json.loads(r.stdout)["answer"] == "You are in Oslo."


def test_resolve_with_a_result(run, data: Path) -> None:
    r = run("resolve", "doubt-1", "c1.0", "--result", '"moved 100 (checked by hand)"', "--data-dir", data)
    assert r.exit_code == 0, r.output
    call = run.data(data).execution("doubt-1").tool_calls[0]
    assert (call.status, call.source, call.result) == ("ok", "operator", "moved 100 (checked by hand)")


def test_resolve_rerun_with_the_agent_runs_the_call_again(run, data: Path) -> None:
    r = run("resolve", "doubt-1", "c1.0", "--rerun", "--data-dir", data, "--agent", AGENT, "--json")
    d = json.loads(r.stdout)
    assert (d["status"], d["answer"]) == ("completed", "Transferred.")
    call = run.data(data).execution("doubt-1").tool_calls[0]
    assert call.attempts == 2 and call.retries == 1 and call.result == "moved 100"


def test_resolve_with_an_error(run, data: Path) -> None:
    r = run("resolve", "doubt-1", "c1.0", "--error", "the bank says no", "--data-dir", data, "--json")
    assert json.loads(r.stdout)["advanced"] is False
    assert run.data(data).execution("doubt-1").tool_calls[0].error == "the bank says no"


def test_cancel(run, data: Path) -> None:
    r = run("cancel", "client-1", "--data-dir", data, "--reason", "user left")
    assert r.exit_code == 0, r.output
    assert "execution client-1 is now cancelled" in r.stdout
    assert status_of(run, data, "client-1") == "cancelled"
    again = json.loads(run("cancel", "client-1", "--data-dir", data, "--json").stdout)
    assert (again["status"], again["cancel_pending"]) == ("cancelled", False)


def test_fork_at_a_step_then_resume_the_fork(run, data: Path) -> None:
    before = (data / "executions" / "count-1.log").read_bytes()
    r = run("fork", "count-1", "--at", "2", "--id", "count-2", "--data-dir", data, "--json")
    assert r.exit_code == 0, r.output
    d = json.loads(r.stdout)
    assert (d["execution_id"], d["forked_from"], d["fork_step"]) == ("count-2", "count-1", 2)
    fork = run.data(data).execution("count-2")
    assert fork.detail.status == "running" and fork.detail.steps == 2 and fork.detail.forked_from == "count-1"
    assert [e.kind for e in fork.events][-1] == "tool-finished"
    r = run("resume", "count-2", "--data-dir", data, "--agent", AGENT, "--json")
    assert json.loads(r.stdout)["answer"] == "Three."
    assert (data / "executions" / "count-1.log").read_bytes() == before  # the origin is unchanged
    human = run("inspect", "count-2", "--data-dir", data).stdout
    assert "Forked from  count-1 at step 2" in human


def test_fork_human_output_and_generated_id(run, data: Path) -> None:
    r = run("fork", "done", "--at", "0", "--data-dir", data)
    assert r.exit_code == 0, r.output
    assert r.stdout.startswith("forked done-1 at step 0 into ")
    forks = run.data(data).list(metadata={"thread_id": "t-1"}).items
    assert sorted(s.forked_from or "" for s in forks) == ["", "done-1"]
