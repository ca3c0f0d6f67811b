"""Real SIGKILLs of a long run that keeps fold checkpoints, then a resume in a fresh process.

Killed while a checkpoint is being written (the first save, written whole to a temporary file, or a later one,
half appended), right after one is in place, inside a tool (before and after its
side effect) and at random moments: the resume finishes the run, every tool call that had finished before the
kill never runs again, only the call in doubt runs once more, and the run ends exactly as one without
checkpoints does.
"""

from __future__ import annotations

import collections
import json
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from delite import DataDir
from delite.log import read_log
from delite.log.records import ToolFinished

WORKER = str(Path(__file__).with_name("checkpoint_worker.py"))
STEPS = 160

POINTS = (
    [("mid-checkpoint", k) for k in (1, 2, 3)]
    + [("after-checkpoint", k) for k in (1, 2)]
    + [("tool-before", k) for k in (100, 159)]
    + [("tool-after", k) for k in (120, 160)]
)


def run_worker(data_dir: Path, mode: str, k: int = 0) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, WORKER, str(data_dir), mode, str(k)], capture_output=True, text=True, timeout=120, check=False
    )


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    d = tmp_path_factory.mktemp("reference")
    out = run_worker(d, "no-checkpoints")
    assert out.returncode == 0, out.stderr
    assert not (d / "checkpoints").exists()
    return json.loads(out.stdout)


def resume_and_check(data_dir: Path, reference: dict[str, object]) -> bool:
    """Resume the killed run, check it; whether the resume's claim started from a checkpoint."""
    log_path = data_dir / "executions" / "job.log"
    before = read_log(str(log_path)) if log_path.exists() else None
    finished_before = {r.call_id for r in before.records if isinstance(r, ToolFinished)} if before else set()
    resumed = run_worker(data_dir, "none")
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads(resumed.stdout) == reference  # the same answer, steps and conversation as without checkpoints
    ledger = (data_dir / "ledger.txt").read_text().split("\n")[:-1]
    runs = collections.Counter(line.split()[0] for line in ledger)
    assert len(runs) == STEPS
    for key, count in runs.items():
        if key.split(":", 1)[1] in finished_before:
            assert count == 1, f"{key} had finished before the kill but ran again"
        else:
            assert count <= 2
    assert sum(runs.values()) <= STEPS + 1
    report = DataDir(data_dir).health()
    assert not [p for p in report.problems if p.severity == "error"], report.problems
    assert not (data_dir / "checkpoints" / "job.ckpt").exists()  # finished: a snapshot, no checkpoint
    return (data_dir / "hits.txt").exists()


@pytest.mark.parametrize(("mode", "k"), POINTS, ids=[f"{m}-{k}" for m, k in POINTS])
def test_kill_then_resume(tmp_path: Path, reference: dict[str, object], mode: str, k: int) -> None:
    killed = run_worker(tmp_path, mode, k)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    if mode == "mid-checkpoint" and k == 1:
        assert list((tmp_path / "checkpoints").glob("job.ckpt.*.tmp"))  # the half-written file is left behind
    elif mode == "mid-checkpoint":  # half a save appended: the saves before it still make a checkpoint
        raw = (tmp_path / "checkpoints" / "job.ckpt").read_bytes()
        assert raw.startswith(b"delite-checkpoint/3\n") and raw.count(b"S ") >= k - 1
    used = resume_and_check(tmp_path, reference)
    assert used == (mode != "mid-checkpoint" or k > 1)  # every kill after the first checkpoint resumes from one


@pytest.mark.parametrize("mode", ["after-completion", "after-snapshot"])
def test_killed_once_finished_then_claimed(tmp_path: Path, reference: dict[str, object], mode: str) -> None:
    """Killed between the terminal record and removing the fold checkpoint: the next claim answers and removes it.

    Without a snapshot the log's tally answers; with one, the snapshot. Either way the run is not resumed (no tool
    runs again) and the checkpoint, of no more use, does not stay behind for good.
    """
    killed = run_worker(tmp_path, mode)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert (tmp_path / "checkpoints" / "job.ckpt").exists()
    assert (tmp_path / "snapshots" / "job.snap").exists() == (mode == "after-snapshot")
    resume_and_check(tmp_path, reference)
    ledger = (tmp_path / "ledger.txt").read_text().split("\n")[:-1]
    assert len(ledger) == STEPS  # every call had finished before the kill: none ran again


@pytest.mark.parametrize("seed", range(6))
def test_kill_at_a_random_moment_then_resume(tmp_path: Path, reference: dict[str, object], seed: int) -> None:
    rng = random.Random(seed)
    proc = subprocess.Popen([sys.executable, WORKER, str(tmp_path), "wait", "0"], stdout=subprocess.DEVNULL)
    log_path = tmp_path / "executions" / "job.log"
    deadline = time.monotonic() + 60
    while not log_path.exists() and time.monotonic() < deadline:  # started: the interpreter and imports are done
        time.sleep(0.005)
    time.sleep(rng.uniform(0.0, 0.5))
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    resume_and_check(tmp_path, reference)


def test_a_reader_racing_the_saves_gets_a_true_checkpoint_or_a_miss(tmp_path: Path) -> None:
    """While a real process runs and appends saves, another reads the checkpoint over and over.

    Every read is either a miss or a state that is exactly the fold of the log's first bytes it claims to
    cover (read back from the log itself): a save half-appended or a file being replaced is never taken.
    """
    from delite.log import parse_log
    from delite.state import fold
    from delite.store import _checkpoint as checkpoint

    proc = subprocess.Popen([sys.executable, WORKER, str(tmp_path), "wait", "0"], stdout=subprocess.DEVNULL)
    log_path = tmp_path / "executions" / "job.log"
    ckpt_path = str(tmp_path / "checkpoints" / "job.ckpt")
    hits: set[int] = set()
    misses: collections.Counter[str] = collections.Counter()
    try:
        deadline = time.monotonic() + 120
        while proc.poll() is None and time.monotonic() < deadline:
            if not log_path.exists():
                time.sleep(0.002)
                continue
            log = log_path.read_bytes()
            found = checkpoint.verify(ckpt_path, log, "job", log_path=str(log_path))
            if isinstance(found, str):
                misses[found] += 1
                continue
            if found.size in hits:
                continue
            hits.add(found.size)
            expected = fold(parse_log(log[: found.size]).records)
            assert found.state == expected, found.size
    finally:
        proc.kill()
        proc.wait(timeout=60)
    assert len(hits) >= 2, (hits, misses)  # saves were read while they were being appended
    assert set(misses) <= {"missing", "stale"}, misses  # never damaged: a save cut short is left out
