"""Input the log cannot hold is refused by the command before anything is written (exit 2, one line), and the
decisions the commands record are real booleans."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from delite import DataDir


def log_bytes(data: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted((data / "executions").iterdir())}


def delite(*args: str | bytes, stdin: bytes = b"") -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "delite_cli", *args], input=stdin, capture_output=True, timeout=60, check=False
    )


def test_text_that_is_not_utf8_is_refused_before_anything_is_written(data: Path) -> None:
    before = log_bytes(data)
    attempts = [
        delite("reject", "approve-1", "--data-dir", str(data), "--reason", b"caf\xe9"),  # Latin-1 bytes in argv
        delite("approve", "approve-1", "--data-dir", str(data), "--reason", b"\xff"),
        delite("cancel", "approve-1", "--data-dir", str(data), "--reason", b"\xfe stop"),
        delite("submit-input", "input-1", "-", "--data-dir", str(data), stdin=b"Lisbon \xff\xfe"),
        delite("submit-input", "input-1", b"Li\xf1bon", "--data-dir", str(data)),
    ]
    for done in attempts:
        err = done.stderr.decode("utf-8", "replace")
        assert done.returncode == 2, err
        assert err.startswith("error: ") and err.count("\n") == 1, err
        assert "Traceback" not in err
    assert log_bytes(data) == before
    detail = DataDir(data).execution("approve-1").detail
    assert detail.status == "waiting_approval"
    assert delite("status", "--data-dir", str(data)).returncode == 0


def test_tool_results_that_json_cannot_hold_are_refused(data: Path, tmp_path: Path) -> None:
    before = log_bytes(data)
    results = tmp_path / "results.json"
    results.write_text('{"c1.0": "lone \\udc80 surrogate"}', encoding="utf-8")
    done = delite("submit-tool-results", "client-1", str(results), "--data-dir", str(data))
    assert done.returncode == 2, done.stderr
    assert b"results['c1.0']" in done.stderr
    assert log_bytes(data) == before


def test_approve_records_true(run, data: Path) -> None:
    assert run("approve", "approve-1", "--data-dir", data).exit_code == 0
    decision = DataDir(data).execution("approve-1").tool_calls[0].decision
    assert decision is not None and decision.approved is True


def test_reject_records_false(run, data: Path) -> None:
    assert run("reject", "approve-1", "--all", "--data-dir", data).exit_code == 0
    decision = DataDir(data).execution("approve-1").tool_calls[0].decision
    assert decision is not None and decision.approved is False
