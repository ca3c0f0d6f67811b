"""The file store's claim lock: ``flock`` taken directly, excluding filelock's lock and other processes."""

from __future__ import annotations

import gc
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import filelock
import pytest

from delite.store._claimlock import ClaimBusyError, FlockClaim, claim_lock, held, try_take

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="flock and fork are POSIX")

HOLD = textwrap.dedent(
    """
    import sys, time
    from delite.store._claimlock import claim_lock
    lock = claim_lock(sys.argv[1])
    lock.acquire(timeout=0, blocking=False)
    print("held", flush=True)
    sys.stdin.read()  # until the test closes our stdin
    """
)


def _holder(path: Path) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(path)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_one_claim_at_a_time_and_busy_is_typed(tmp_path: Path) -> None:
    path = tmp_path / "x.lock"
    first, second = claim_lock(str(path)), claim_lock(str(path))
    first.acquire(timeout=0, blocking=False)
    assert first.is_locked and held(str(path))
    with pytest.raises(ClaimBusyError):
        second.acquire(timeout=0, blocking=False)
    with pytest.raises(ClaimBusyError):
        second.acquire(timeout=0.05)
    assert not try_take(second)
    first.release()
    assert not first.is_locked and not held(str(path))
    assert try_take(second)
    second.release()
    assert oct(path.stat().st_mode & 0o777) == oct(0o600)


def test_it_excludes_filelock_both_ways(tmp_path: Path) -> None:
    path = str(tmp_path / "x.lock")
    ours = claim_lock(path)
    ours.acquire(timeout=0, blocking=False)
    theirs = filelock.FileLock(path, thread_local=False)
    with pytest.raises(filelock.Timeout):
        theirs.acquire(timeout=0)
    ours.release()
    theirs.acquire(timeout=0)
    with pytest.raises(ClaimBusyError):
        claim_lock(path).acquire(timeout=0, blocking=False)
    theirs.release()


def test_another_process_holds_it_until_it_exits(tmp_path: Path) -> None:
    path = tmp_path / "x.lock"
    proc = _holder(path)
    try:
        assert held(str(path))
        assert not try_take(claim_lock(str(path)))
    finally:
        proc.kill()
        proc.communicate()
    lock = claim_lock(str(path))
    assert try_take(lock)
    lock.release()


def test_a_forked_child_does_not_keep_the_parents_claim(tmp_path: Path) -> None:
    """A child made by fork() that outlives its parent must not hold the parent's claims."""
    path = tmp_path / "x.lock"
    code = textwrap.dedent(
        """
        import os, sys, time
        from delite.store._claimlock import claim_lock
        lock = claim_lock(sys.argv[1])
        lock.acquire(timeout=0, blocking=False)
        pid = os.fork()
        if pid == 0:
            os.close(1), os.close(2)  # the test reads the parent's output to its end
            time.sleep(30)  # the child lives on, as a worker process a tool started might
            os._exit(0)
        print(pid, flush=True)
        os._exit(0)  # the parent dies holding the claim
        """
    )
    out = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, check=True)
    child = int(out.stdout.strip())
    try:
        lock = claim_lock(str(path))
        assert try_take(lock), "the parent died: its claim must be free although its forked child lives"
        lock.release()
    finally:
        os.kill(child, 9)


def test_a_lock_file_removed_before_it_was_locked_is_not_a_claim(tmp_path: Path) -> None:
    """An eraser unlinks the claim file of a deleted execution: a claimant that opened it locks the new one."""
    path = tmp_path / "x.lock"
    path.touch()
    stale = os.open(path, os.O_RDONLY)
    lock = FlockClaim(str(path))
    real_open = os.open
    calls = []

    def racing_open(p: str, flags: int, mode: int = 0o777) -> int:
        calls.append(p)
        if len(calls) == 1:  # the first open: the file is unlinked right after it (the eraser wins the race)
            fd = real_open(p, flags, mode)
            os.unlink(p)
            return fd
        return real_open(p, flags, mode)

    os.open = racing_open  # type: ignore[assignment]
    try:
        lock.acquire(timeout=0, blocking=False)
    finally:
        os.open = real_open
        os.close(stale)
    assert len(calls) == 2 and path.exists() and lock.is_locked
    assert held(str(path))
    lock.release()


def test_a_claim_object_dropped_while_held_lets_go(tmp_path: Path) -> None:
    """As filelock's did: a held claim whose object is garbage collected is no longer held."""
    path = str(tmp_path / "x.lock")
    lock = claim_lock(path)
    assert try_take(lock)
    assert held(path)
    del lock
    gc.collect()
    assert not held(path)
