"""Exit codes by error class on every answering command (issue 10, items 2 and 11), with and without --agent.

Every answer to an execution that cannot take it (ended, waiting for another kind of answer, answered
already, not found) exits 1 with an ``ExecutionStateError`` (or ``ExecutionNotFoundError``) named in the JSON
error; a malformed answer exits 2; and nothing is written by any refused command.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from delite import errors

FAILURE, USAGE = 1, 2
AGENT = ("--agent", "scenario_agent:build")

# (command args after the id, the id of an execution waiting for that kind of answer)
ANSWERS: dict[str, tuple[list[str], str]] = {
    "approve": (["approve", "{id}", "c1.0"], "approve-1"),
    "approve --all": (["approve", "{id}", "--all"], "approve-1"),
    "reject": (["reject", "{id}", "c1.0"], "approve-1"),
    "reject --all": (["reject", "{id}", "--all"], "approve-1"),
    "submit-input": (["submit-input", "{id}", "Paris"], "input-1"),
    "submit-tool-results": (["submit-tool-results", "{id}", "-"], "client-1"),
    "resolve --result": (["resolve", "{id}", "c1.0", "--result", '"done"'], "doubt-1"),
    "resolve --error": (["resolve", "{id}", "c1.0", "--error", "it failed"], "doubt-1"),
    "resolve --rerun": (["resolve", "{id}", "c1.0", "--rerun"], "doubt-1"),
}
STDIN = '{"c1.0": "Lisbon"}'
BOTH_STORES = True  # a refused answer writes nothing to any store, and exits the same way


def durable(run: Any, data: Path) -> dict[str, Any]:
    """Everything a command may have written: the logs, cancel requests and idempotency keys of its store."""
    if run.store_kind == "memory":
        store = run.store(data)
        logs = {f"executions/{eid}": bytes(raw) for eid, raw in store.logs.items()}
        return {**logs, "signals": sorted(store._cancels), "keys": dict(store._keys)}
    out: dict[str, Any] = {}
    for sub in ("executions", "keys", "signals"):
        folder = data / sub
        if folder.is_dir():
            for name in sorted(os.listdir(folder)):
                out[f"{sub}/{name}"] = (folder / name).read_bytes()
    return out


def error_of(result: Any) -> dict[str, Any]:
    assert result.stdout == "", result.output
    parsed: dict[str, Any] = json.loads(result.stderr)["error"]
    return parsed


def invoke(run: Any, data: Path, args: list[str], eid: str, *extra: str) -> Any:
    return run(*[a.replace("{id}", eid) for a in args], "--data-dir", data, "--json", *extra, stdin=STDIN)


@pytest.mark.parametrize("with_agent", [False, True], ids=["record-only", "agent"])
@pytest.mark.parametrize("target", ["done-1", "failed-1", "cancelled"])
@pytest.mark.parametrize("name", list(ANSWERS))
def test_an_answer_to_an_ended_execution_exits_1_and_writes_nothing(
    run: Any, data: Path, name: str, target: str, with_agent: bool
) -> None:
    if target == "cancelled":
        target = ANSWERS[name][1]
        assert run("cancel", target, "--data-dir", data).exit_code == 0
    before = durable(run, data)
    result = invoke(run, data, ANSWERS[name][0], target, *(AGENT if with_agent else ()))
    assert result.exit_code == FAILURE, result.output
    kind = getattr(errors, error_of(result)["type"])
    assert issubclass(kind, errors.ExecutionStateError), kind
    assert durable(run, data) == before


@pytest.mark.parametrize("with_agent", [False, True], ids=["record-only", "agent"])
@pytest.mark.parametrize("name", list(ANSWERS))
def test_an_answer_of_the_wrong_kind_exits_1_and_writes_nothing(
    run: Any, data: Path, name: str, with_agent: bool
) -> None:
    args, right = ANSWERS[name]
    wrong = "input-1" if right != "input-1" else "approve-1"
    before = durable(run, data)
    result = invoke(run, data, args, wrong, *(AGENT if with_agent else ()))
    assert result.exit_code == FAILURE, result.output
    assert issubclass(getattr(errors, error_of(result)["type"]), errors.ExecutionStateError)
    assert durable(run, data) == before


@pytest.mark.parametrize("name", list(ANSWERS))
def test_a_second_answer_exits_1_already_decided(run: Any, data: Path, name: str) -> None:
    args, eid = ANSWERS[name]
    first = invoke(run, data, args, eid)
    assert first.exit_code == 0, first.output
    before = durable(run, data)
    for extra in ((), AGENT):
        again = invoke(run, data, args, eid, *extra)
        assert again.exit_code == FAILURE, again.output
        assert error_of(again)["type"] in ("AlreadyDecidedError", "ExecutionNotSuspendedError"), again.output
        assert issubclass(getattr(errors, error_of(again)["type"]), errors.ExecutionStateError)
    assert durable(run, data) == before


@pytest.mark.parametrize("name", list(ANSWERS))
def test_an_answer_to_an_unknown_execution_exits_1(run: Any, data: Path, name: str) -> None:
    result = invoke(run, data, ANSWERS[name][0], "no-such-execution")
    assert result.exit_code == FAILURE, result.output
    assert error_of(result)["type"] == "ExecutionNotFoundError"


@pytest.mark.parametrize(
    "args",
    [
        ["approve", "approve-1", "c9.9"],
        ["reject", "approve-1", "nope"],
        ["resolve", "doubt-1", "c1.0", "--result", "not json"],
        ["resolve", "doubt-1", "c1.0", "--result", '"x"', "--rerun"],
        ["resolve", "doubt-1", "c1.0", "--result", '"\\udc80"'],
        ["submit-input", "input-1", "bad \udc80"],
        ["fork", "done-1", "--at", "-1"],
        ["cancel", "approve-1", "--reason", "bad \udc80"],
    ],
    ids=lambda a: " ".join(a[:1] + a[2:]),
)
def test_a_malformed_answer_exits_2_and_writes_nothing(run: Any, data: Path, args: list[str]) -> None:
    before = durable(run, data)
    result = run(*args, "--data-dir", data, "--json")
    assert result.exit_code == USAGE, result.output
    assert durable(run, data) == before


def test_fork_onto_a_taken_id_exits_1(run: Any, data: Path) -> None:
    before = durable(run, data)
    result = run("fork", "done-1", "--at", "1", "--id", "approve-1", "--data-dir", data, "--json")
    assert result.exit_code == FAILURE, result.output
    assert issubclass(getattr(errors, error_of(result)["type"]), errors.ExecutionStateError)
    assert durable(run, data) == before


@pytest.mark.parametrize(
    ("args", "stdin"),
    [
        (["submit-tool-results", "client-1", "-"], '{"c1.0": "Lisbon", "c1.0": "Paris"}'),
        (["submit-tool-results", "client-1", "-"], '{"c1.0": {"city": "Lisbon", "city": "Paris"}}'),
        (["resolve", "doubt-1", "c1.0", "--result", '{"sent": true, "sent": false}'], None),
    ],
    ids=["two-answers-for-one-call", "duplicate-inside-a-result", "duplicate-in-an-in-doubt-result"],
)
def test_a_json_answer_with_a_key_given_twice_exits_2(run: Any, data: Path, args: list[str], stdin: str | None) -> None:
    before = durable(run, data)
    result = run(*args, "--data-dir", data, "--json", stdin=stdin)
    assert result.exit_code == USAGE, result.output
    assert "twice" in result.stderr
    assert durable(run, data) == before
