"""The short form of the crash torture (benchmarks/torture.py): about 50 SIGKILLs at random instants.

The long form (1,000 kills) is run by hand; its summary is in docs/reliability.md. Each run draws new kill
points (the seed is printed with any failure, so a failing run can be replayed with ``--seed``).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

TORTURE = str(Path(__file__).resolve().parents[2] / "benchmarks" / "torture.py")


def torture(*args: str) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, TORTURE, "--json", *args], capture_output=True, text=True, timeout=300, check=False
    )
    assert out.stdout.strip(), out.stderr
    summary: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    assert out.returncode == (1 if summary["violations"] else 0), out.stderr
    return summary


def check(summary: dict[str, Any], kills: int) -> None:
    seed = summary["seed"]
    assert summary["violations"] == [], f"seed {seed}: {summary['violations'][:5]}"
    assert summary["kills"] >= kills
    # Every execution that was started was driven to completion, with the uninterrupted run's answer and
    # conversation, and no call whose result was recorded ran again.
    assert summary["completed"] == summary["executions"] == summary["answers_matched"] >= 1
    assert summary["reran_completed"] == 0
    # Every torn tail a kill left was cut off by the next claim.
    assert summary["torn_tails"] == summary["torn_repaired"]
    # Every call that acts acted; extra body runs are only in-doubt retries with the same key.
    assert summary["tool_runs"] - summary["tool_calls"] <= summary["in_doubt_retries"]


def test_fifty_random_kills() -> None:
    summary = torture("--kills", "50", "--seed", "7")
    check(summary, 50)
    # The kills landed in every kind of place: log writes, fsyncs, the model call, tool bodies, and a timer.
    seams = summary["kills_by_seam"]
    assert {"model", "tool-before", "tool-after", "fsync", "timer"} <= set(seams), seams
    assert any(k.startswith("write-") for k in seams), seams
    # Workers gave second, different answers (refused: one answer per pending call), and some found the
    # answers a killed worker had recorded and only continued the run.
    assert any(k.startswith("double-") for k in summary["actions"]), summary["actions"]


def test_kills_with_a_fresh_interpreter_per_worker() -> None:
    check(torture("--kills", "6", "--exec"), 6)


def test_kills_in_the_other_durability_modes() -> None:
    """A killed process loses nothing in any mode: fsyncs only matter for a power loss."""
    for mode in ("normal", "off"):
        summary = torture("--kills", "15", "--durability", mode)
        assert summary["durability"] == mode
        check(summary, 15)
