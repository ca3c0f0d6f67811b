"""``delite gc`` killed with SIGKILL in the middle leaves every execution whole or gone, and a healthy data dir.

A real ``delite gc`` process deletes thousands of executions; the test watches the logs disappear and kills it
part-way (early, midway, late). After each kill: ``health`` is clean, every execution that is still there reads
whole (all its records, its key still bound, its cancel request still pending), none is half there, and the
listing agrees. Then a gc that is let run finishes the job and leaves no tombstone, key or marker behind.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from delite import DataDir
from delite.errors import ExecutionNotFoundError
from delite.log.records import ExecutionCompleted, ExecutionStarted, ModelResponded
from delite.store import FileStore

COUNT = 1600
RUNNING = {f"e-{i:05d}" for i in range(0, COUNT, 97)}  # left alone: gc never deletes a running one


def _populate(root: Path) -> dict[str, int]:
    """COUNT executions (finished but for RUNNING), each with a key and every third with a cancel request."""
    store = FileStore(root, durability="off")
    heads: dict[str, int] = {}
    for i in range(COUNT):
        eid = f"e-{i:05d}"
        first = ExecutionStarted(at=1_000.0 + i, execution_id=eid, input=f"secret input {i} " + "x" * 200)
        with store.claim(eid, create=[first]) as log:
            if eid not in RUNNING:
                log.append(
                    [
                        ModelResponded(at=1_001.0 + i, step=1, content="ok"),
                        ExecutionCompleted(at=1_002.0 + i, answer="ok"),
                    ],
                    expected=1,
                )
        store.bind_key(f"key-{eid}", eid, "fp")
        if i % 3 == 0:
            store.request_cancel(eid)
        heads[eid] = 1 if eid in RUNNING else 3
    DataDir(root).list(limit=1)  # the index exists, so its rows are deleted too
    return heads


def _logs(root: Path) -> int:
    try:
        return sum(1 for n in os.listdir(root / "executions") if n.endswith(".log"))
    except FileNotFoundError:
        return 0


def _gc(root: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "delite_cli", "gc", "--data-dir", str(root), "--older-than", "1h", "--json"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def _check_whole_or_gone(root: Path, heads: dict[str, int]) -> set[str]:
    """Assert the invariants after a kill; the ids still there."""
    store = FileStore(root)
    data = DataDir(store)
    report = data.health()
    assert report.healthy, report.problems
    assert not [p for p in report.problems if p.severity in ("error", "warning")]
    present: set[str] = set()
    for eid, head in heads.items():
        if store.exists(eid):
            assert store.read(eid).head == head, eid  # whole: every record
            assert store.lookup_key(f"key-{eid}") == (eid, "fp"), eid
            assert store.cancel_requested(eid) == (int(eid[2:]) % 3 == 0), eid
            present.add(eid)
        else:
            with pytest.raises(ExecutionNotFoundError):
                store.read(eid)
    assert {s.id for s in data.list(limit=None)} == present
    return present


@pytest.mark.parametrize("fraction", [0.05, 0.4, 0.8])
def test_gc_killed_midway_leaves_every_execution_whole_or_gone(tmp_path: Path, fraction: float) -> None:
    root = tmp_path / "data"
    heads = _populate(root)
    finished = COUNT - len(RUNNING)
    stop_at = COUNT - int(finished * fraction)
    child = _gc(root)
    deadline = time.monotonic() + 120
    while _logs(root) > stop_at and child.poll() is None and time.monotonic() < deadline:
        time.sleep(0.001)
    child.send_signal(signal.SIGKILL)
    child.wait(timeout=30)
    assert child.returncode == -signal.SIGKILL, "gc finished before it could be killed: make COUNT larger"
    present = _check_whole_or_gone(root, heads)
    assert present >= RUNNING
    assert 0 < len(present - RUNNING) < finished  # killed in the middle: some deleted, some not
    # A gc let run to the end finishes the job (and what the killed one left half done).
    done = subprocess.run(
        [sys.executable, "-m", "delite_cli", "gc", "--data-dir", str(root), "--older-than", "1h"],
        capture_output=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert _check_whole_or_gone(root, heads) == RUNNING
    store = FileStore(root)
    names = os.listdir(root / "executions")
    assert sorted(names) == sorted(f"{eid}.log" for eid in RUNNING)
    assert len(os.listdir(root / "keys")) == len(RUNNING)
    markers = {n for n in os.listdir(root / "signals") if n.endswith(".cancel")}
    assert markers == {f"{eid}.cancel" for eid in RUNNING if int(eid[2:]) % 3 == 0}
    assert not os.listdir(root / "snapshots") if (root / "snapshots").exists() else True
    assert {n[:-5] for n in os.listdir(root / "claims")} <= RUNNING
    for eid in heads:
        if eid not in RUNNING:
            assert store.lookup_key(f"key-{eid}") is None
            assert store.bind_key(f"key-{eid}", "fresh", "fp2") == ("fresh", "fp2")  # a key can be bound again
