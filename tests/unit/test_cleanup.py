"""Removals of derived files made after the answer: by a helper thread, or at the latest when the process exits."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

from delite import Agent, DataDir, ScriptedProvider, tool
from delite.store import _cleanup
from delite.store._cleanup import remove_later, settle

ROOT = Path(__file__).resolve().parents[2]


def test_a_file_queued_for_removal_is_removed(tmp_path: Path) -> None:
    files = [tmp_path / f"f{i}" for i in range(50)]
    for f in files:
        f.write_bytes(b"x" * 10_000)
        remove_later(str(f))
    remove_later(str(tmp_path / "never-there"))  # a missing file is not an error
    assert settle()
    assert not any(f.exists() for f in files)
    assert _cleanup._pending == {}


def test_removals_still_queued_at_exit_are_made_then(tmp_path: Path) -> None:
    """The helper is a daemon thread: what it has not reached when the interpreter exits is removed at exit."""
    for i in range(300):
        (tmp_path / f"f{i}").write_bytes(b"x" * 100_000)
    code = textwrap.dedent(
        f"""
        import os, sys
        sys.path.insert(0, {str(ROOT)!r})
        from delite.store import _cleanup
        names = sorted(os.listdir({str(tmp_path)!r}))
        _cleanup._done.acquire()  # held to the end: the helper stops after its first file, the rest is left to exit
        for name in names:
            _cleanup.remove_later(os.path.join({str(tmp_path)!r}, name))
        print(len(_cleanup._pending), flush=True)
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == "300"
    assert os.listdir(tmp_path) == []


@tool
def pad(i: int) -> dict[str, Any]:
    """A result that makes the log long."""
    return {"i": i, "pad": "x" * 300}


def test_a_finished_long_run_leaves_no_checkpoint_and_health_sees_none(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The checkpoint a long run kept goes once it finishes; a health check in the same process never sees it."""
    real = _cleanup._remove

    def slow(path: str) -> None:  # a removal that takes its time (a large file on a slow disk)
        time.sleep(0.3)
        real(path)

    monkeypatch.setattr(_cleanup, "_remove", slow)
    with Agent(tmp_path, provider=ScriptedProvider.tool_loop(300, "pad"), tools=[pad]) as agent:
        assert agent.run("go", execution_id="e").status == "completed"
        report = DataDir(tmp_path).health()  # before any settle() of the test's own: health settles first
    assert report.healthy and not [p for p in report.problems if p.kind.startswith("checkpoint")], report.problems
    assert not (tmp_path / "checkpoints" / "e.ckpt").exists()
