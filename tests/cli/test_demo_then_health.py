"""After ``delite demo --data-dir DIR``, the README's other commands on DIR are clean: ``health`` finds nothing."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def _delite(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "delite_cli", *args]
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=120, check=False)


def test_health_is_clean_after_the_demo(tmp_path: Path) -> None:
    demo = _delite("demo", "--data-dir", "demo-data", cwd=tmp_path)
    assert demo.returncode == 0, demo.stdout + demo.stderr
    assert (tmp_path / "demo-data").stat().st_mode & 0o077 == 0  # made private, as delite makes its own
    health = _delite("health", "--data-dir", "demo-data", cwd=tmp_path)
    assert health.returncode == 0 and "Healthy." in health.stdout, health.stdout + health.stderr


def test_health_and_status_on_a_directory_that_is_not_a_data_directory(tmp_path: Path) -> None:
    (tmp_path / "project").mkdir()
    health = _delite("health", "--data-dir", "project", cwd=tmp_path)
    assert health.returncode == 1 and "Healthy" not in health.stdout
    assert "holds no executions" in health.stderr and "project" in health.stderr
    status = _delite("status", "--data-dir", "project", cwd=tmp_path)
    assert status.returncode == 0 and "no executions folder" in status.stdout
    inspect = _delite("inspect", "01JX", "--data-dir", "project", cwd=tmp_path)
    assert inspect.returncode == 1 and "not found in data directory" in inspect.stderr
    assert "holds no executions" in inspect.stderr


def test_events_at_80_columns_keep_ids_whole(tmp_path: Path) -> None:
    from delite import Agent, ScriptedProvider

    data = tmp_path / "data"
    eid = Agent(data, provider=ScriptedProvider(["x"])).run("hello").execution_id
    out = subprocess.run(
        [sys.executable, "-m", "delite_cli", "events", eid[-5:], "--data-dir", str(data)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**__import__("os").environ, "COLUMNS": "80"},
    )
    assert out.returncode == 0, out.stderr
    assert all(len(line) <= 80 for line in out.stdout.splitlines()), out.stdout
    assert eid in out.stdout  # the id in the execution-started record is on one line, copyable
