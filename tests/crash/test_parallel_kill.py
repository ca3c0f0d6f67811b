"""SIGKILL in the middle of a turn whose calls run at once: a fresh process re-runs only the unfinished ones."""

from __future__ import annotations

import collections
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from delite.log import read_log
from delite.log.records import ToolFinished, ToolStarted

WORKER = str(Path(__file__).with_name("parallel_worker.py"))
EXPECTED = "paid 1; paid 2; paid 3; paid 4"
# Writes of an uninterrupted run: creation; the response and three intents; the first two results as they
# come in; the third with the next response and its intent; the fourth result; the answer.
WRITES = 7
POINTS = [("after-write", k) for k in range(1, WRITES)] + [("mid-batch", 0)]


def run_worker(data_dir: Path, api: str, mode: str, k: int) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, WORKER, str(data_dir), api, mode, str(k)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize("api", ["sync", "async"])
@pytest.mark.parametrize(("mode", "k"), POINTS, ids=[f"{m}-{k}" for m, k in POINTS])
def test_sigkill_mid_turn_then_resume(tmp_path: Path, api: str, mode: str, k: int) -> None:
    killed = run_worker(tmp_path, api, mode, k)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    log = tmp_path / "executions" / "par.log"
    before = read_log(str(log)).records if log.exists() else []
    done_before = {r.call_id for r in before if isinstance(r, ToolFinished)}
    started_before = {r.call_id for r in before if isinstance(r, ToolStarted)}

    resumed = run_worker(tmp_path, api, "none", 0)
    assert resumed.returncode == 0, resumed.stderr
    assert resumed.stdout.strip() == EXPECTED

    after = read_log(str(log))
    assert after.torn is None
    ledger_path = tmp_path / "ledger.txt"
    lines = ledger_path.read_text().splitlines() if ledger_path.exists() else []
    runs = collections.Counter(line.split()[0].split(":", 1)[1] for line in lines)
    assert set(runs) == {"c1.0", "c1.1", "c1.2", "c2.0"}
    for call_id, count in runs.items():
        if call_id in done_before:
            assert count == 1, f"{call_id} had finished before the kill but ran again"
        elif count > 1:
            # Only calls that were in flight repeat: once, as a retry with the same key.
            assert call_id in started_before and count == 2
            attempts = [r.attempt for r in after.records if isinstance(r, ToolStarted) and r.call_id == call_id]
            assert attempts == [1, 2]
    if mode == "mid-batch":
        assert done_before == {"c1.0"} and runs["c1.0"] == 1
        assert runs["c1.1"] == 2 and runs["c1.2"] == 2  # both were in flight: both retried, with their keys
