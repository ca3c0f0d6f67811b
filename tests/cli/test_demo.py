"""`delite demo` end to end: a real worker is SIGKILLed mid-run and a fresh process resumes it.

The demo is offline whatever the environment holds; it ends with the commands that inspect what it did,
and those commands, run as printed, work.
"""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
from pathlib import Path


def demo(tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    base = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "PYTHONPATH": ":".join(sys.path), "COLUMNS": "80"}
    return subprocess.run(
        [sys.executable, "-m", "delite_cli", "demo", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**base, **(env or {})},
        check=False,
    )


def test_demo_kills_resumes_and_charges_each_order_once(tmp_path: Path) -> None:
    out = demo(tmp_path, "--data-dir", str(tmp_path / "d"), "--steps", "6")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "SIGKILL sent to worker" in out.stdout
    assert "OK: every order charged exactly once." in out.stdout
    ledger = [json.loads(x) for x in (tmp_path / "d" / "demo-ledger.jsonl").read_text().splitlines()]
    assert len({e["key"] for e in ledger}) == 6
    assert len({e["pid"] for e in ledger}) == 2  # two worker processes did the charging


def test_demo_stays_offline_with_api_keys_set(tmp_path: Path) -> None:
    # A key and a base URL nobody listens on: any request would fail the demo.
    keys = {
        "OPENAI_API_KEY": "sk-stale",
        "ANTHROPIC_API_KEY": "sk-ant-stale",
        "OPENAI_BASE_URL": "http://127.0.0.1:9/v1",
        "ANTHROPIC_BASE_URL": "http://127.0.0.1:9",
    }
    out = demo(tmp_path, "--data-dir", str(tmp_path / "d"), "--steps", "3", env=keys)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "Model: the scripted model shipped in delite (offline" in out.stdout
    assert "OK: every order charged exactly once." in out.stdout


def test_demo_ends_with_commands_that_work_as_printed(tmp_path: Path) -> None:
    data_dir = tmp_path / "a dir with spaces; and $(quotes)'"
    out = demo(tmp_path, "--data-dir", str(data_dir), "--steps", "3")
    assert out.returncode == 0, out.stdout + out.stderr
    tail = out.stdout[out.stdout.index("See what it did") :].splitlines()[1:]
    commands = [shlex.split(line) for line in tail if line.strip()]
    assert [c[:2] for c in commands] == [["delite", "status"], ["delite", "inspect"], ["delite", "steps"],
                                         ["delite", "export"]]  # fmt: skip
    eid = commands[1][2]
    assert all(str(data_dir) in c for c in commands)
    for command in commands:
        run = subprocess.run(
            [sys.executable, "-m", "delite_cli", *command[1:]], capture_output=True, text=True, timeout=60, check=False
        )
        assert run.returncode == 0, (command, run.stderr)
        if command[1] == "status":
            assert eid in run.stdout
    html = Path(commands[3][commands[3].index("-o") + 1])
    assert html.exists() and eid in html.read_text()


def test_demo_bad_model_is_one_line_and_exit_2(tmp_path: Path) -> None:
    for model, expected in [("nope:model", "unknown provider 'nope'"), ("openai", "names no model"),
                            ("openai:gpt-4o-mini", "OPENAI_API_KEY")]:  # fmt: skip
        out = demo(tmp_path, "--data-dir", str(tmp_path / "d"), "--model", model)
        assert out.returncode == 2, out.stdout + out.stderr
        lines = out.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: --model ") and expected in lines[0], out.stderr
        assert out.stdout == ""
    assert not (tmp_path / "d").exists()  # nothing ran
    (tmp_path / "a-file").write_text("")
    out = demo(tmp_path, "--data-dir", str(tmp_path / "a-file" / "d"))
    assert out.returncode == 2 and out.stderr.startswith("error: cannot use ") and out.stderr.count("\n") == 1


def test_demo_help_shows_the_model_option_and_exit_codes() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "delite_cli", "demo", "--help"], capture_output=True, text=True, check=True
    )
    assert "--model VENDOR:MODEL" in out.stdout and "openai:gpt-4o-mini" in out.stdout
    assert "Exit codes" in out.stdout


def test_version() -> None:
    out = subprocess.run([sys.executable, "-m", "delite_cli", "--version"], capture_output=True, text=True, check=True)
    from delite import __version__

    assert out.stdout.strip() == f"delite, version {__version__}"


def test_what_the_demo_leaves_is_private_and_healthy(tmp_path: Path) -> None:
    """The demo's data directory passes `delite health` (0700 folders, 0600 files), and so does its export."""
    import os
    import stat

    data = tmp_path / "fresh" / "d"
    old = os.umask(0o022)  # a usual umask: without care the folder would be 0755 and the files 0644
    try:
        out = demo(tmp_path, "--data-dir", str(data), "--steps", "2")
        assert out.returncode == 0, out.stdout + out.stderr
        health = subprocess.run(
            [sys.executable, "-m", "delite_cli", "health", "--data-dir", str(data)],
            capture_output=True,
            text=True,
            check=False,
        )
        assert health.returncode == 0, health.stdout + health.stderr
        assert stat.S_IMODE(data.stat().st_mode) == 0o700
        assert stat.S_IMODE((data / "demo-ledger.jsonl").stat().st_mode) == 0o600
        eid = next(p.stem for p in (data / "executions").glob("*.log"))
        page = tmp_path / "run.html"
        subprocess.run(
            [
                sys.executable,
                "-m",
                "delite_cli",
                "export",
                eid,
                "--data-dir",
                str(data),
                "--format",
                "html",
                "-o",
                page,
            ],
            capture_output=True,
            check=True,
        )
        assert stat.S_IMODE(page.stat().st_mode) == 0o600  # a copy of the log's content is as private as the log
    finally:
        os.umask(old)
