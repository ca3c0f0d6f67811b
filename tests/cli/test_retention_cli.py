"""``delite gc`` and ``delite delete``: what they remove, what they refuse, their exit codes and JSON, on every store."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from delite import Agent, ScriptedProvider, delegate, tool
from delite.providers import call

BOTH_STORES = True  # the commands go through the store seam only: the same on files, memory and the toy store

FINISHED = {"done-1", "failed-1", "hostile-1", "count-1"}


def _ids(run: Any, data: Path) -> set[str]:
    listed = run("status", "--data-dir", data, "--json", "--limit", "100")
    assert listed.exit_code == 0, listed.output
    return {e["id"] for e in json.loads(listed.stdout)["executions"]}


def _error(result: Any) -> dict[str, Any]:
    err: dict[str, Any] = json.loads(result.stderr.strip().splitlines()[-1])["error"]
    return err


def test_gc_dry_run_then_gc_removes_the_finished_ones(run: Any, data: Path) -> None:
    before = _ids(run, data)
    finished = {s.id for s in run.data(data).list(status=["completed", "failed", "cancelled"], limit=None)}
    assert finished >= FINISHED
    dry = run("gc", "--older-than", "0s", "--dry-run", "--json", "--data-dir", data)
    assert dry.exit_code == 0, dry.output
    report = json.loads(dry.stdout)
    assert report["dry_run"] is True
    assert {d["id"] for d in report["deleted"]} == finished
    assert report["executions"] == len(finished)
    assert _ids(run, data) == before  # a dry run removes nothing

    done = run("gc", "--older-than", "0s", "--json", "--data-dir", data)
    assert done.exit_code == 0, done.output
    report = json.loads(done.stdout)
    assert report["dry_run"] is False
    assert {d["id"] for d in report["deleted"]} == finished
    assert all(d["status"] in ("completed", "failed", "cancelled") for d in report["deleted"])
    assert isinstance(report["bytes"], int)
    assert report["refused"] == []
    left = _ids(run, data)
    assert left == before - finished
    assert not {s.status for s in run.data(data).list(limit=None)} & {"completed", "failed", "cancelled"}
    again = run("gc", "--older-than", "0s", "--json", "--data-dir", data)
    assert json.loads(again.stdout)["executions"] == 0


def test_gc_keeps_recent_executions_and_filters_by_status(run: Any, data: Path) -> None:
    recent = run("gc", "--older-than", "1d", "--json", "--data-dir", data)
    assert recent.exit_code == 0 and json.loads(recent.stdout)["executions"] == 0
    failed = run("gc", "--older-than", "0s", "--status", "failed", "--json", "--data-dir", data)
    assert failed.exit_code == 0, failed.output
    assert {d["id"] for d in json.loads(failed.stdout)["deleted"]} == {"failed-1"}
    human = run("gc", "--older-than", "0m", "--status", "completed,cancelled", "--data-dir", data)
    assert human.exit_code == 0, human.output
    assert "deleted" in human.stdout and "done-1" in human.stdout


def test_gc_of_unfinished_ones_needs_force(run: Any, data: Path) -> None:
    refused = run("gc", "--older-than", "0s", "--status", "waiting", "--json", "--data-dir", data)
    assert refused.exit_code == 2
    assert _error(refused)["type"] == "UsageError"
    forced = run("gc", "--older-than", "0s", "--status", "waiting", "--force", "--json", "--data-dir", data)
    assert forced.exit_code == 0, forced.output
    assert {d["id"] for d in json.loads(forced.stdout)["deleted"]} >= {"approve-1", "client-1", "input-1"}
    assert not run.data(data).list(status="waiting", limit=None).items


@pytest.mark.parametrize(
    "args",
    [
        ["--older-than", "30"],
        ["--older-than", "3x"],
        ["--older-than", "-1d"],
        ["--older-than", ""],
        ["--older-than", "1d", "--status", "finished"],
        [],
    ],
)
def test_gc_bad_input_is_a_usage_error_and_removes_nothing(run: Any, data: Path, args: list[str]) -> None:
    before = _ids(run, data)
    result = run("gc", *args, "--json", "--data-dir", data)
    assert result.exit_code == 2, result.output
    if args:
        assert _error(result)["type"] == "UsageError"
    else:
        assert "Missing option '--older-than'" in result.stderr
    assert _ids(run, data) == before


def test_delete_one_execution(run: Any, data: Path) -> None:
    result = run("delete", "done-1", "--json", "--data-dir", data)
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert [(d["id"], d["status"]) for d in report["deleted"]] == [("done-1", "completed")]
    assert report["executions"] == 1
    assert "done-1" not in _ids(run, data)
    gone = run("delete", "done-1", "--json", "--data-dir", data)
    assert gone.exit_code == 1
    assert _error(gone)["type"] == "ExecutionNotFoundError"
    shown = run("inspect", "done-1", "--data-dir", data)
    assert shown.exit_code == 1


def test_delete_refuses_a_suspended_one_unless_forced(run: Any, data: Path) -> None:
    refused = run("delete", "approve-1", "--json", "--data-dir", data)
    assert refused.exit_code == 1
    err = _error(refused)
    assert err["type"] == "ExecutionNotFinishedError"
    assert "waiting_approval" in err["message"] and "nothing was removed" in err["message"]
    assert "approve-1" in _ids(run, data)
    forced = run("delete", "approve-1", "--force", "--data-dir", data)
    assert forced.exit_code == 0, forced.output
    assert "deleted approve-1 (waiting_approval)" in forced.stdout
    assert "approve-1" not in _ids(run, data)


@pytest.mark.parametrize("bad", ["../done-1", "done-1/../x", "a\x00b", "x" * 300])
def test_delete_hostile_ids_are_usage_errors(run: Any, data: Path, bad: str) -> None:
    before = _ids(run, data)
    result = run("delete", bad, "--json", "--data-dir", data)
    assert result.exit_code == 2, result.output
    assert _ids(run, data) == before


def _team(where: Path) -> Agent:
    child = Agent(where, agent_id="helper", provider=ScriptedProvider(["child done"]))

    @tool
    def ask(question: str) -> str:
        """Ask the helper."""
        return delegate(child, question).answer or ""

    return Agent(where, agent_id="boss", provider=ScriptedProvider([call("ask", question="q"), "ok"]), tools=[ask])


@pytest.mark.file_only
def test_delete_with_children_and_forks_listed(run: Any, tmp_path: Path) -> None:
    data = tmp_path / "data"
    assert _team(data).run("go", execution_id="boss-1").answer == "ok"
    forked = run("fork", "boss-1", "--at", "1", "--id", "boss-fork", "--data-dir", data)
    assert forked.exit_code == 0, forked.output
    # the fork has its own copy of the sub-agent's execution its copied call started
    assert _ids(run, data) == {"boss-1", "boss-1:c1.0", "boss-fork", "boss-fork:c1.0"}

    alone = run("delete", "boss-1", "--json", "--data-dir", data)
    assert alone.exit_code == 0, alone.output
    report = json.loads(alone.stdout)
    assert [d["id"] for d in report["deleted"]] == ["boss-1"]
    assert report["children"] == ["boss-1:c1.0"]
    assert report["forks"] == ["boss-fork"]
    assert _ids(run, data) == {"boss-1:c1.0", "boss-fork", "boss-fork:c1.0"}


@pytest.mark.file_only
def test_delete_children_deletes_the_sub_agents_first(run: Any, tmp_path: Path) -> None:
    data = tmp_path / "data"
    assert _team(data).run("go", execution_id="boss-1").answer == "ok"
    shown = run("delete", "boss-1", "--children", "--data-dir", data)
    assert shown.exit_code == 0, shown.output
    assert shown.stdout.index("boss-1:c1.0") < shown.stdout.index("deleted boss-1 ")
    assert _ids(run, data) == set()
