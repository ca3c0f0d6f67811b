"""Real SIGKILL of a worker process at many points of a multi-step run, then a resume in a fresh process."""

from __future__ import annotations

import collections
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from delite.log import read_log
from delite.log.records import ToolFinished, ToolStarted

WORKER = str(Path(__file__).with_name("worker.py"))
STEPS = 4
EXPECTED = "; ".join(f"step {i} ok" for i in range(STEPS))
# Writes in an uninterrupted run: creation, then per step (model response + intent) and (result), then the end.
WRITES = 1 + 2 * STEPS + 1

KILL_POINTS = (
    [("after-write", k) for k in range(1, WRITES)]
    + [("torn-write", k) for k in range(2, WRITES + 1)]
    + [("tool-before", k) for k in range(1, STEPS + 1)]
    + [("tool-after", k) for k in range(1, STEPS + 1)]
)


def run_worker(data_dir: Path, mode: str, k: int) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, WORKER, str(data_dir), "job", str(STEPS), mode, str(k)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_uninterrupted_run(tmp_path: Path) -> None:
    out = run_worker(tmp_path, "none", 0)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == EXPECTED


@pytest.mark.parametrize(("mode", "k"), KILL_POINTS, ids=[f"{m}-{k}" for m, k in KILL_POINTS])
def test_sigkill_then_resume(tmp_path: Path, mode: str, k: int) -> None:
    killed = run_worker(tmp_path, mode, k)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    log_path = tmp_path / "executions" / "job.log"
    before = read_log(str(log_path)) if log_path.exists() else None
    finished_before = {r.call_id for r in before.records if isinstance(r, ToolFinished)} if before else set()

    resumed = run_worker(tmp_path, "none", 0)
    assert resumed.returncode == 0, resumed.stderr
    assert resumed.stdout.strip() == EXPECTED

    after = read_log(str(log_path))
    assert after.torn is None
    ledger = (tmp_path / "ledger.txt").read_text().split("\n")[:-1]
    runs = collections.Counter(line.split()[0] for line in ledger)
    assert len(runs) == STEPS  # every step's side effect happened
    for key, count in runs.items():
        call_id = key.split(":", 1)[1]
        if call_id in finished_before:
            assert count == 1, f"{call_id} was complete before the kill but ran again"
        elif count > 1:
            # Only the call in doubt (it acted, its result was not durable yet) repeats: once, same key, a retry.
            assert count == 2
            attempts = [r.attempt for r in after.records if isinstance(r, ToolStarted) and r.call_id == call_id]
            assert attempts == [1, 2]
    assert sum(runs.values()) <= STEPS + 1
