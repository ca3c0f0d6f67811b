"""`delite demo` end to end: a real worker is SIGKILLed mid-run and a fresh process resumes it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path


def test_demo_kills_resumes_and_charges_each_order_once(tmp_path: Path) -> None:
    env_free = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    out = subprocess.run(
        [sys.executable, "-m", "delite_cli", "demo", "--data-dir", str(tmp_path / "d"), "--steps", "6"],
        capture_output=True,
        text=True,
        timeout=120,
        env={**env_free, "PYTHONPATH": ":".join(sys.path)},
        check=False,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "SIGKILL sent to worker" in out.stdout
    assert "OK: every order charged exactly once." in out.stdout
    ledger = [json.loads(x) for x in (tmp_path / "d" / "demo-ledger.jsonl").read_text().splitlines()]
    assert len({e["key"] for e in ledger}) == 6
    assert len({e["pid"] for e in ledger}) == 2  # two worker processes did the charging


def test_version() -> None:
    out = subprocess.run([sys.executable, "-m", "delite_cli", "--version"], capture_output=True, text=True, check=True)
    from delite import __version__

    assert out.stdout.strip() == f"delite, version {__version__}"
