"""Where the output goes is hostile: a terminal one column wide, a disk that is full.

A narrow terminal gets the views laid out at the CLI's minimum width (the terminal wraps the lines): no
label, value or column is dropped. A write that fails is one ``error:`` line naming only what it knows.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from delite_cli import _format as f

LABELS = ("Execution", "Status", "Agent", "Created", "Updated", "Input", "Answer", "Models", "Steps", "Tokens")


@pytest.mark.parametrize("columns", ["1", "5", "40"])
@pytest.mark.parametrize(
    ("eid", "next_steps"),
    [
        ("approve-1", ["delite approve approve-1 c1.0", "delite reject approve-1 c1.0 --reason TEXT"]),
        ("client-1", ['delite submit-tool-results client-1 results.json   # {"c1.0": ...}']),
        ("doubt-1", ["delite resolve doubt-1 c1.0 --result JSON", "delite resolve doubt-1 c1.0 --rerun"]),
    ],
)
def test_inspect_on_a_narrow_terminal_drops_nothing(
    run, built: Path, monkeypatch: pytest.MonkeyPatch, *, columns: str, eid: str, next_steps: list[str]
) -> None:
    monkeypatch.setenv("COLUMNS", columns)
    r = run("inspect", eid, "--data-dir", built)
    assert r.exit_code == 0, r.output
    lines = [line.rstrip() for line in r.stdout.splitlines()]
    starts = {line.split("  ")[0] for line in lines}
    for label in (*LABELS, "Suspended", "Next"):
        assert label in starts, (label, r.stdout)  # whole, not cut to an ellipsis
    assert f"Execution  {eid}" in r.stdout
    for command in next_steps:
        assert command in r.stdout, r.stdout
    assert "\u2026" not in r.stdout


@pytest.mark.parametrize("columns", ["1", "5", "40"])
def test_status_and_steps_on_a_narrow_terminal_keep_every_column(
    run, built: Path, monkeypatch: pytest.MonkeyPatch, columns: str
) -> None:
    listed = json.loads(run("status", "--data-dir", built, "--json").stdout)["executions"]
    monkeypatch.setenv("COLUMNS", columns)
    out = run("status", "--data-dir", built).stdout
    header = out.splitlines()[0].split()
    assert header == ["ID", "AGENT", "STATUS", "STEPS", "TOKENS", "COST", "AGE"]
    rows = {line.split()[0]: line.split() for line in out.splitlines()[1:]}
    for e in listed:
        assert rows[e["id"]][1:6] == [
            e["agent_id"],
            e["status"],
            str(e["steps"]),
            f.number(e["tokens"]["total"]),
            f.cost(e["cost"]),
        ]
    out = run("steps", "done-1", "--data-dir", built).stdout
    assert out.splitlines()[0].split() == [
        "STEP",
        "AT",
        "MODEL",
        "MODEL",
        "TIME",
        "TOOL",
        "CALLS",
        "TOOL",
        "TIME",
        "TOKENS",
        "COST",
    ]
    for line in out.splitlines()[1:]:
        assert "scripted-large" in line and "$0.0015" in line, out


def test_the_width_is_left_alone_when_the_terminal_is_wide_enough(run, built: Path, monkeypatch) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    wide = run("status", "--data-dir", built).stdout
    assert "INPUT" in wide.splitlines()[0]  # the column shown from 100 columns on
    assert f.console().width == 200


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full (Linux)")
@pytest.mark.parametrize("command", [["events", "done-1"], ["inspect", "done-1"], ["export", "done-1"]])
def test_writing_to_a_full_disk_is_one_clear_line(built: Path, command: list[str]) -> None:
    """Writing stdout fails with no file name to give: the line ends with the reason, no dangling colon."""
    for extra, expect in (([], "error: No space left on device\n"), (["--json"], None)):
        with open("/dev/full", "wb") as full:
            done = subprocess.run(
                [sys.executable, "-m", "delite_cli", *command, "--data-dir", str(built), *extra],
                stdout=full,
                stderr=subprocess.PIPE,
                timeout=60,
                check=False,
            )
        err = done.stderr.decode()
        assert done.returncode == 1, err
        assert "Traceback" not in err
        if expect is not None:
            assert err == expect
        else:
            assert json.loads(err) == {"error": {"type": "OSError", "message": "No space left on device"}}
