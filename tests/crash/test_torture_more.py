"""The short form of the fork and async-cancellation tortures (benchmarks/torture_more.py, via torture.py)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

TORTURE = str(Path(__file__).resolve().parents[2] / "benchmarks" / "torture.py")


def test_forks_killed_and_async_runs_cancelled_at_random_points_break_no_invariant() -> None:
    out = subprocess.run(
        [sys.executable, TORTURE, "--json", "--kills", "0", "--forks", "12", "--cancels", "12"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert out.stdout.strip(), out.stderr
    summary: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    seed = summary["seed"]
    assert summary["violations"] == [], f"seed {seed}: {summary['violations'][:5]}"
    assert out.returncode == 0, out.stderr
    forks = summary["forks"]
    assert forks["forks"] == 12 and forks["killed"] == 12 - forks["by_point"]["none"]
    assert forks["absent_after_kill"] + forks["whole_after_kill"] == forks["killed"]  # never a partial fork
    assert forks["retried"] == forks["absent_after_kill"]  # every fork a kill undid was made again, same id
    assert forks["forks_recovered"] == 0 and forks["forks_running"] > 0  # running forks, none started
    cancels = summary["async_cancels"]
    assert cancels["cancellations"] == 12 and cancels["overlaps"] == 0
    assert cancels["refused_resumes"] >= 12  # each cancelled run kept its claim while its sync body ran
    assert cancels["body_runs"] >= cancels["calls"]
