"""The CLI's answers take one answer per call, and its exit codes follow the error's class (409: exit 1)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from delite import errors
from delite_cli._errors import FAILURE, USAGE, exit_code

BOTH_STORES = True  # a refused answer writes nothing, on any store


def json_error(r: Any, code: int) -> dict[str, str]:
    assert r.exit_code == code, (r.exit_code, r.stdout, r.stderr)
    assert r.stdout == ""
    return json.loads(r.stderr)["error"]


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (["approve", "done-1", "--all"], "ExecutionAlreadyTerminalError"),
        (["reject", "done-1", "--all"], "ExecutionAlreadyTerminalError"),
        (["approve", "done-1"], "ExecutionAlreadyTerminalError"),
        (["reject", "failed-1", "--all"], "ExecutionNotSuspendedError"),
        (["approve", "client-1", "--all"], "SuspendKindMismatchError"),
        (["approve", "input-1"], "SuspendKindMismatchError"),
    ],
)
def test_deciding_every_call_of_an_execution_that_waits_for_none_is_a_409(
    run: Any, data: Path, args: list[str], error: str
) -> None:
    head = run.data(data).store.head(args[1])
    e = json_error(run(*args, "--data-dir", data, "--json"), FAILURE)
    assert e["type"] == error
    assert issubclass(getattr(errors, error), errors.ExecutionStateError)
    assert run.data(data).store.head(args[1]) == head  # nothing written


def test_a_second_answer_of_each_kind_exits_1_with_already_decided(run: Any, data: Path, tmp_path: Path) -> None:
    results = tmp_path / "results.json"
    results.write_text(json.dumps({"c1.0": "Lisbon"}))
    cases = [
        (["approve", "approve-1"], ["reject", "approve-1", "c1.0", "--reason", "changed my mind"]),
        (["submit-tool-results", "client-1", results], ["submit-tool-results", "client-1", results]),
        (["submit-input", "input-1", "Paris"], ["submit-input", "input-1", "Rome"]),
        (["resolve", "doubt-1", "c1.0", "--result", '"sent"'], ["resolve", "doubt-1", "c1.0", "--rerun"]),
    ]
    for first, second in cases:
        assert run(*first, "--data-dir", data).exit_code == 0, first
        eid = first[1]
        head = run.data(data).store.head(eid)
        e = json_error(run(*second, "--data-dir", data, "--json"), FAILURE)
        assert e["type"] == "AlreadyDecidedError", (second, e)
        assert "already has its answer" in e["message"]
        r = run(*second, "--data-dir", data)
        assert r.exit_code == FAILURE and r.stderr.startswith("error: execution ")
        assert run.data(data).store.head(eid) == head  # nothing written
    assert run.data(data).execution("doubt-1").detail.status == "suspended"  # recorded, until resumed


def test_approve_all_decides_the_calls_still_undecided(run: Any, data: Path) -> None:
    import scenario_agent

    scenario_agent.build(str(data)).run("pay twice", execution_id="two-1")
    assert run("approve", "two-1", "c1.0", "--data-dir", data).exit_code == 0
    r = run("reject", "two-1", "--all", "--reason", "no", "--data-dir", data, "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["calls"] == ["c1.1"]
    decisions = {c.call_id: c.decision.approved for c in run.data(data).execution("two-1").tool_calls if c.decision}
    assert decisions == {"c1.0": True, "c1.1": False}
    e = json_error(run("approve", "two-1", "--all", "--data-dir", data, "--json"), FAILURE)
    assert e["type"] == "AlreadyDecidedError"


def test_exit_codes_are_chosen_by_class() -> None:
    assert exit_code(errors.AlreadyDecidedError("e", "waiting_approval")) == FAILURE
    assert exit_code(errors.ExecutionNotFoundError("e")) == FAILURE
    assert exit_code(errors.StoreError("disk full")) == FAILURE
    assert exit_code(errors.UsageError("bad")) == USAGE
    assert exit_code(errors.InvalidToolResultError("e", "no call")) == USAGE
    assert exit_code(errors.AmbiguousExecutionIdError("e", ["e1", "e2"])) == USAGE
    assert exit_code(errors.InvalidExecutionIdError("../x", "path")) == USAGE

    class Renamed(errors.ExecutionStateError):  # any name: the class decides, not the name
        pass

    assert exit_code(Renamed("e")) == FAILURE
