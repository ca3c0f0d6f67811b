"""Every failure ends with one line on stderr and a non-zero exit code: 1 for failures, 2 for usage errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from delite import DataDir

AGENT = "scenario_agent:build"


def one_error_line(r, code: int) -> str:
    assert r.exit_code == code, (r.exit_code, r.stdout, r.stderr)
    assert r.stdout == ""
    lines = r.stderr.splitlines()
    assert len(lines) == 1, r.stderr
    return lines[0]


def test_unknown_id(run, built: Path) -> None:
    for command in ("inspect", "steps", "events", "export", "tail", "cancel", "approve", "submit-input"):
        args = [command, "nope"] + (["x"] if command == "submit-input" else [])
        line = one_error_line(run(*args, "--data-dir", built), 1)
        assert line == f"error: execution 'nope' not found in data directory {built}", command


def test_unknown_id_in_a_data_directory_that_does_not_exist(run, tmp_path: Path) -> None:
    missing = tmp_path / "no-such-dir"
    for command in ("inspect", "steps", "events", "export", "tail", "cancel", "approve", "fork"):
        args = [command, "01ABC"] + (["--at", "0"] if command == "fork" else [])
        line = one_error_line(run(*args, "--data-dir", missing), 1)
        assert line.startswith(f"error: execution '01ABC' not found in data directory {missing}"), (command, line)
        assert "that directory does not exist" in line, command
    assert not missing.exists()


def test_health_of_a_data_directory_that_does_not_exist(run, tmp_path: Path) -> None:
    missing = tmp_path / "no-such-dir"
    line = one_error_line(run("health", "--data-dir", missing), 1)
    assert line == f"error: the data directory {missing} does not exist; nothing to check (see --data-dir)"
    report = json.loads(run("health", "--data-dir", missing, "--json").stdout)
    assert report["healthy"] is False and [p["kind"] for p in report["problems"]] == ["missing"]
    assert not missing.exists()


def test_unknown_id_as_json(run, built: Path) -> None:
    r = run("inspect", "nope", "--data-dir", built, "--json")
    assert r.exit_code == 1 and r.stdout == ""
    assert json.loads(r.stderr) == {
        "error": {"type": "ExecutionNotFoundError", "message": f"execution 'nope' not found in data directory {built}"}
    }


def test_ambiguous_prefix(run, built: Path) -> None:
    line = one_error_line(run("inspect", "do", "--data-dir", built), 2)
    assert line == (
        "error: id 'do' matches 2 executions by prefix or suffix (done-1, doubt-1); give more characters "
        "(the end of a generated id is random, so a few of its last ones are enough)"
    )


def test_invalid_id(run, built: Path) -> None:
    line = one_error_line(run("inspect", "../etc/passwd", "--data-dir", built), 2)
    assert line.startswith("error: invalid execution id '../etc/passwd'")


def corrupt(data: Path, eid: str) -> int:
    """Flip a byte in the payload of the second frame; returns the frame's offset."""
    view = DataDir(data).execution(eid)
    offset = view.offsets[1]
    path = data / "executions" / f"{eid}.log"
    raw = bytearray(path.read_bytes())
    raw[offset + 12 + 3] ^= 0x20
    path.write_bytes(bytes(raw))
    return offset


def test_corrupt_log(run, data: Path) -> None:
    offset = corrupt(data, "done-1")
    line = one_error_line(run("inspect", "done-1", "--data-dir", data), 1)
    assert line == f"error: log corrupt at byte {offset}: payload checksum mismatch ({data}/executions/done-1.log)"
    listed = json.loads(run("status", "--data-dir", data, "--json", "--status", "unreadable").stdout)["executions"]
    assert [(e["id"], e["status"]) for e in listed] == [("done-1", "unreadable")]
    assert f"byte {offset}" in listed[0]["damage"]
    assert "unreadable" in run("status", "--data-dir", data).stdout

    r = run("health", "--data-dir", data)
    assert r.exit_code == 1
    assert f"error   corrupt            done-1 at byte {offset}: payload checksum mismatch" in r.stdout
    assert "1 problem(s) found." in r.stdout
    report = json.loads(run("health", "--data-dir", data, "--json").stdout)
    assert report["healthy"] is False
    problems = [p for p in report["problems"] if p["severity"] != "derived"]
    assert [(p["kind"], p["severity"], p["execution_id"], p["offset"]) for p in problems] == [
        ("corrupt", "error", "done-1", offset)
    ]


def test_torn_tail_is_a_warning_and_still_readable(run, data: Path) -> None:
    path = data / "executions" / "approve-1.log"
    size = path.stat().st_size
    with path.open("ab") as fh:
        fh.write(b"\x40\x00\x00\x00partial")  # a frame header cut by a crash
    r = run("health", "--data-dir", data, "--json")
    assert r.exit_code == 1
    problems = [p for p in json.loads(r.stdout)["problems"] if p["severity"] != "derived"]
    assert [(p["kind"], p["severity"], p["offset"]) for p in problems] == [("torn-tail", "warning", size)]
    out = run("inspect", "approve-1", "--data-dir", data).stdout
    assert f"torn tail at byte {size}" in out
    assert json.loads(run("inspect", "approve-1", "--data-dir", data, "--json").stdout)["torn"] is True


def test_wrong_suspension_kind(run, data: Path) -> None:
    line = one_error_line(run("approve", "client-1", "--data-dir", data), 1)
    assert line.startswith("error: execution 'client-1' is waiting for something else")
    assert "client_tool" in line
    line = one_error_line(run("submit-input", "approve-1", "yes", "--data-dir", data), 1)
    assert "waits for approval, not human_input" in line
    line = one_error_line(run("resolve", "approve-1", "c1.0", "--rerun", "--data-dir", data), 1)
    assert "waits for approval, not in_doubt" in line
    assert DataDir(data).execution("approve-1").tool_calls[0].decision is None  # nothing recorded


def test_deciding_an_ended_or_running_execution(run, data: Path) -> None:
    line = one_error_line(run("approve", "done-1", "c1.0", "--data-dir", data), 1)
    assert line == "error: execution 'done-1' has already ended (status completed)"
    line = one_error_line(run("reject", "failed-1", "c1.0", "--data-dir", data), 1)
    assert "is not suspended (status failed)" in line


def test_unknown_call_id(run, data: Path) -> None:
    line = one_error_line(run("approve", "approve-1", "c9.9", "--data-dir", data), 2)
    assert line == "error: invalid submission for execution 'approve-1': no call with id c9.9"


def test_bad_tool_results(run, data: Path, tmp_path: Path) -> None:
    line = one_error_line(run("submit-tool-results", "client-1", "--data-dir", data, stdin="{not json"), 2)
    assert line.startswith("error: tool results from - is not valid JSON")
    line = one_error_line(run("submit-tool-results", "client-1", "--data-dir", data, stdin="[1, 2]"), 2)
    assert "must be a JSON object" in line
    line = one_error_line(run("submit-tool-results", "client-1", "--data-dir", data, stdin='{"c7.0": 1}'), 2)
    assert "no pending client call with id c7.0" in line
    line = one_error_line(run("submit-tool-results", "client-1", tmp_path / "missing.json", "--data-dir", data), 2)
    assert "cannot read tool results" in line


def test_resume_needs_an_agent(run, data: Path) -> None:
    line = one_error_line(run("resume", "failed-1", "--data-dir", data), 2)
    assert "needs your agent: --agent MODULE:FACTORY" in line
    line = one_error_line(run("resume", "failed-1", "--data-dir", data, "--agent", "nomodule_xyz:build"), 2)
    assert "cannot import 'nomodule_xyz'" in line
    line = one_error_line(run("resume", "failed-1", "--data-dir", data, "--agent", "scenario_agent"), 2)
    assert "must be MODULE:FACTORY" in line
    line = one_error_line(run("resume", "failed-1", "--data-dir", data, "--agent", "scenario_agent:HOSTILE"), 2)
    assert "must name an Agent or a factory" in line


def test_a_factory_that_does_not_fit_or_fails_is_named(run, data: Path, tmp_path: Path, monkeypatch) -> None:
    """A factory with the wrong signature is a usage error (2); one that raises, or a module that fails to
    import, is one clear line naming it (no traceback)."""
    import scenario_agent

    monkeypatch.setattr(scenario_agent, "no_args", lambda: None, raising=False)
    monkeypatch.setattr(scenario_agent, "two_args", lambda _d, _e: None, raising=False)
    monkeypatch.setattr(scenario_agent, "broken", lambda _d: {}["missing"], raising=False)
    for name in ("no_args", "two_args"):
        line = one_error_line(run("resume", "failed-1", "--data-dir", data, "--agent", f"scenario_agent:{name}"), 2)
        assert "cannot be called with one argument" in line
    line = one_error_line(run("resume", "failed-1", "--data-dir", data, "--agent", "scenario_agent:broken"), 1)
    assert "the factory scenario_agent:broken failed: KeyError" in line
    (tmp_path / "mod_raises_xyz.py").write_text("raise RuntimeError('at import')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    line = one_error_line(run("resume", "failed-1", "--data-dir", data, "--agent", "mod_raises_xyz:build"), 2)
    assert "importing 'mod_raises_xyz' for --agent failed: RuntimeError: at import" in line


def test_agent_for_another_data_directory_is_refused(run, data: Path, built: Path, monkeypatch) -> None:
    import scenario_agent

    monkeypatch.setattr(scenario_agent, "elsewhere", lambda _d: scenario_agent.build(str(built)), raising=False)
    line = one_error_line(run("resume", "failed-1", "--data-dir", data, "--agent", "scenario_agent:elsewhere"), 2)
    assert "uses another data directory" in line


def test_resolve_needs_exactly_one_outcome(run, data: Path) -> None:
    line = one_error_line(run("resolve", "doubt-1", "c1.0", "--data-dir", data), 2)
    assert line == "error: give exactly one of --result, --result-file, --error or --rerun"
    line = one_error_line(run("resolve", "doubt-1", "c1.0", "--result", "not json", "--data-dir", data), 2)
    assert "--result is not valid JSON" in line
    line = one_error_line(run("resolve", "doubt-1", "c4.0", "--rerun", "--data-dir", data), 2)
    assert "no in-doubt call with id c4.0" in line


def test_fork_beyond_the_last_step(run, data: Path) -> None:
    line = one_error_line(run("fork", "done-1", "--at", "3", "--data-dir", data), 2)
    assert line == "error: --at must be a step from 0 to 2 for execution 'done-1', not 3"
    # An id that is taken is a 409 state error (exit 1): a racer that forked first under that id won.
    line = one_error_line(run("fork", "done-1", "--at", "1", "--id", "count-1", "--data-dir", data), 1)
    assert "exists already" in line


def test_approve_with_several_pending_calls_needs_ids(run, data: Path) -> None:
    import scenario_agent

    scenario_agent.build(str(data)).run("pay twice", execution_id="two-1")
    line = one_error_line(run("approve", "two-1", "--data-dir", data), 2)
    assert line == "error: execution two-1 waits on 2 calls (c1.0, c1.1); name them or --all"
    r = run("approve", "two-1", "--all", "--data-dir", data, "--agent", AGENT, "--json")
    assert json.loads(r.stdout)["answer"] == "Paid both."


@pytest.mark.parametrize(
    "args",
    [
        ["status", "--since", "yesterday"],
        ["status", "--status", "sleeping"],
        ["status", "--meta", "novalue"],
        ["status", "--limit", "-1"],
        ["health", "--bogus"],
        ["fork", "done-1"],
        ["export", "done-1", "--format", "pdf"],
    ],
)
def test_usage_errors_exit_2(run, built: Path, args: list[str]) -> None:
    r = run(*args, "--data-dir", built)
    assert r.exit_code == 2, r.output
    assert r.stdout == "" and "Error" in r.stderr
