"""The store seam across real processes: finding work, claims and fenced appends around a SIGKILL."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest

from delite.errors import ExecutionAlreadyClaimedError, SequenceConflictError
from delite.log.records import ModelResponded
from delite.store import FileStore

WORKER = str(Path(__file__).with_name("seam_worker.py"))


def spawn(data_dir: Path, eid: str, mode: str) -> tuple[subprocess.Popen[str], int]:
    child = subprocess.Popen(
        [sys.executable, WORKER, str(data_dir), eid, mode],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None
    line = child.stdout.readline()
    if not line.startswith("ready "):
        child.kill()
        _out, err = child.communicate(timeout=60)
        pytest.fail(f"worker did not start: {line!r} {err}")
    return child, int(line.split()[1])


def kill(child: subprocess.Popen[str]) -> None:
    child.send_signal(signal.SIGKILL)
    child.communicate(timeout=60)
    assert child.returncode == -signal.SIGKILL


def test_a_live_owner_is_not_work_and_a_dead_one_is(tmp_path: Path) -> None:
    store = FileStore(tmp_path)
    child, head = spawn(tmp_path, "e1", "hold")
    try:
        assert head == 4
        assert store.is_claimed("e1")
        assert store.recoverable() == [] and store.runnable() == []  # another process is advancing it
        with pytest.raises(ExecutionAlreadyClaimedError):
            store.claim("e1")
        assert store.head("e1") == 4  # reading needs no claim
    finally:
        kill(child)
    assert [s.id for s in store.recoverable()] == ["e1"]  # its owner died: recovery finds it
    assert [s.id for s in store.runnable()] == ["e1"]
    with store.claim("e1") as log:
        assert log.head == 4
        with pytest.raises(SequenceConflictError):
            log.append([ModelResponded(at=3.0, step=9, content="stale")], expected=3)
        log.append([ModelResponded(at=3.0, step=4, content="next")], expected=4)
    assert store.head("e1") == 5


def test_a_kill_among_fenced_appends_leaves_a_gapless_prefix(tmp_path: Path) -> None:
    store = FileStore(tmp_path)
    for _trial in range(3):
        child, _head = spawn(tmp_path, "e1", "loop")
        kill(child)  # at whatever append it was doing
        got = store.read("e1")
        steps = [r.step for r in got.records[1:] if isinstance(r, ModelResponded)]
        assert steps == list(range(1, got.head))  # every fenced append whole, in order, none lost in between
        assert [s.id for s in store.recoverable()] == ["e1"]
        with store.claim("e1") as log:  # the next owner cuts a torn tail and continues at the head
            assert log.head == got.head
    assert store.read("e1").torn is None
