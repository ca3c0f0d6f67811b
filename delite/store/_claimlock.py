"""The claim lock of an execution in the file store, and asking whether it is held without getting in the way.

A claim is an exclusive ``flock`` on ``claims/<id>.lock`` (through ``filelock``), held for as long as the claim
lasts and let go by the kernel when its process dies. Asking whether an execution is claimed must never make a
claim fail: a prober that took the exclusive lock for an instant would turn a concurrent claimant's attempt into a
spurious :class:`~delite.errors.ExecutionAlreadyClaimedError` (a 409 for a run nobody else was advancing). So
:func:`held` asks with a *shared* lock taken and dropped at once (it fails only while a claimant holds the
exclusive one), and :func:`try_take`, when the exclusive lock is busy, tells a claimant apart from such a prober
the same way and tries again while only probers were in the way.
"""

from __future__ import annotations

import os
import time

import filelock

from delite.log import _os

try:
    import fcntl
except ImportError:  # pragma: no cover - no flock (Windows): probes take the lock itself, as filelock does
    fcntl = None  # type: ignore[assignment]

# How long a claimant keeps trying while only probers hold the lock (each holds it for microseconds).
_PROBED_FOR = 1.0


def claim_lock(path: str) -> filelock.BaseFileLock:
    """The claim lock at ``path`` (``0600``, one per acquisition: not thread-local, not shared)."""
    return filelock.FileLock(path, mode=_os.FILE_MODE, thread_local=False)


def try_take(lock: filelock.BaseFileLock) -> bool:
    """Take ``lock`` without waiting for a claimant: False when another claimant holds it.

    Raises:
        OSError: the lock file could not be opened or created.
    """
    deadline = time.monotonic() + _PROBED_FOR
    pause = 0.0
    while True:
        try:
            lock.acquire(timeout=0, blocking=False)
        except filelock.Timeout:
            pass
        else:
            return True
        if _exclusively_held(lock.lock_file) is not False or time.monotonic() >= deadline:
            return False
        time.sleep(pause)  # only a prober was in the way: it lets go at once
        pause = min(pause * 2 or 0.0002, 0.01)


def held(path: str) -> bool:
    """Whether a claimant (in any process) holds the claim lock at ``path`` now; never blocks a claim.

    A lock file that does not exist or cannot be opened is not held (a read-only data directory: nobody can be
    advancing an execution in it).
    """
    answer = _exclusively_held(path)
    if answer is not None:
        return answer
    lock = claim_lock(path)  # no flock here: ask the way filelock can
    try:
        lock.acquire(timeout=0, blocking=False)
    except filelock.Timeout:
        return True
    except OSError:
        return False
    lock.release()
    return False


def _exclusively_held(path: str) -> bool | None:
    """True while an exclusive flock is held on ``path``; None when that cannot be asked here."""
    if fcntl is None:  # pragma: no cover - see the import
        return None
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW | os.O_NONBLOCK)
    except FileNotFoundError:
        return False
    except OSError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        except OSError:
            return None
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    finally:
        os.close(fd)
