"""The claim lock of an execution in the file store, and asking whether it is held without getting in the way.

A claim is an exclusive ``flock`` on ``claims/<id>.lock``, held for as long as the claim
lasts and let go by the kernel when its process dies. Asking whether an execution is claimed must never make a
claim fail: a prober that took the exclusive lock for an instant would turn a concurrent claimant's attempt into a
spurious :class:`~delite.errors.ExecutionAlreadyClaimedError` (a 409 for a run nobody else was advancing). So
:func:`held` asks with a *shared* lock taken and dropped at once (it fails only while a claimant holds the
exclusive one), and :func:`try_take`, when the exclusive lock is busy, tells a claimant apart from such a prober
the same way and tries again while only probers were in the way.

Where ``flock`` exists, a claim is taken with it directly (:class:`FlockClaim`: one ``open`` and one ``flock``),
not through ``filelock``, whose general-purpose checks (a ``realpath`` of the path, a per-process registry,
fork tracking, creating the parent directory) cost about a third of a millisecond per claim, paid by every
``rt.go()``, and whose import costs about 10 ms in every process that opens a data directory. ``filelock`` is
imported and used only where ``flock`` is missing or not supported by the file system. Both take the same
kernel lock on the same file, so they exclude each other. A process forked while it holds claims closes its
copies of their descriptors in the child (the parent's claims stay the parent's, and end when it dies).
"""

from __future__ import annotations

import contextlib
import errno
import os
import threading
import time
import weakref
from typing import TYPE_CHECKING

from delite.log import _os

if TYPE_CHECKING:
    import filelock

try:
    import fcntl
except ImportError:  # pragma: no cover - no flock (Windows): probes take the lock itself, as filelock does
    fcntl = None  # type: ignore[assignment]

# How long a claimant keeps trying while only probers hold the lock (each holds it for microseconds).
_PROBED_FOR = 1.0


_OPEN_FLAGS = os.O_RDWR | os.O_CREAT | os.O_NONBLOCK | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)

# flock not supported where the lock file lives (some network file systems): filelock's own fallback is used.
_NO_FLOCK = frozenset({errno.ENOSYS, errno.EOPNOTSUPP, errno.ENOLCK})


class ClaimBusyError(TimeoutError):
    """Another holder kept the claim lock (for as long as the caller was willing to wait)."""


# The claims this process holds: a child made by fork() closes its copies (see _forgotten_in_child).
_held: weakref.WeakSet[FlockClaim] = weakref.WeakSet()
_held_lock = threading.Lock()


def _forgotten_in_child() -> None:
    """In a child made by ``fork()``: close the inherited descriptors of the parent's claims, without unlocking.

    A ``flock`` belongs to the open file, which the child's copy shares: left open, a child that outlives its
    parent would keep the parent's claims held. Closing a copy does not unlock (the parent's descriptor still
    holds the lock); ``LOCK_UN`` would, so it is not called.
    """
    for claim in list(_held):
        fd, claim._fd = claim._fd, None  # noqa: SLF001
        if fd is not None:
            with contextlib.suppress(OSError):
                os.close(fd)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forgotten_in_child)


def _filelock(path: str) -> filelock.BaseFileLock:
    import filelock  # noqa: PLC0415 - only where flock cannot be used

    return filelock.FileLock(path, mode=_os.FILE_MODE, thread_local=False)


class FlockClaim:
    """An exclusive ``flock`` on a claim lock file, with the part of filelock's interface the store uses.

    One per acquisition (not re-entrant, not shared between threads). The file is created ``0600`` when missing
    and never through a symbolic link; it is never removed here. A file unlinked between its ``open`` and the
    ``flock`` (an eraser removing the claim of a deleted execution) is not a claim: the lock is tried again on
    the file now at ``path``. Where ``flock`` is not supported, the claim is filelock's.
    """

    def __init__(self, path: str) -> None:
        """The claim lock at ``path``; nothing is opened until :meth:`acquire`."""
        self.lock_file = path
        self._fd: int | None = None
        self._fallback: filelock.BaseFileLock | None = None

    @property
    def is_locked(self) -> bool:
        """Whether this object holds the lock."""
        if self._fallback is not None:
            return self._fallback.is_locked
        return self._fd is not None

    def acquire(self, timeout: float = -1, poll_interval: float = 0.05, *, blocking: bool = True) -> None:
        """Take the lock, waiting up to ``timeout`` seconds (negative: for ever; ``blocking=False``: not at all).

        Raises:
            ClaimBusyError: another holder kept it.
            OSError: the lock file could not be opened or created.
        """
        if self._fallback is not None or fcntl is None:
            self._take_fallback(timeout, poll_interval, blocking=blocking)
            return
        if self._fd is not None:
            raise RuntimeError(f"the claim lock {self.lock_file} is held already by this object")
        deadline = None if timeout < 0 or not blocking else time.monotonic() + timeout
        while True:
            fd = os.open(self.lock_file, _OPEN_FLAGS, _os.FILE_MODE)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                if not blocking or (deadline is not None and time.monotonic() >= deadline):
                    raise ClaimBusyError(self.lock_file) from None
                left = poll_interval if deadline is None else deadline - time.monotonic()
                time.sleep(max(0.0, min(poll_interval, left)))
                continue
            except OSError as e:
                os.close(fd)
                if e.errno not in _NO_FLOCK:
                    raise
                self._take_fallback(timeout, poll_interval, blocking=blocking)
                return
            try:
                gone = os.fstat(fd).st_nlink == 0
            except BaseException:
                os.close(fd)
                raise
            if gone:  # removed by an eraser before we locked it: not the claim file any more
                os.close(fd)
                continue
            self._fd = fd
            with _held_lock:
                _held.add(self)
            return

    def _take_fallback(self, timeout: float, poll_interval: float, *, blocking: bool) -> None:
        """Take the lock through filelock (no ``flock`` here); its timeout is :class:`ClaimBusyError`."""
        import filelock  # noqa: PLC0415 - only where flock cannot be used

        if self._fallback is None:
            self._fallback = _filelock(self.lock_file)
        try:
            self._fallback.acquire(timeout=timeout, poll_interval=poll_interval, blocking=blocking)
        except filelock.Timeout:
            raise ClaimBusyError(self.lock_file) from None

    def release(self) -> None:
        """Let go of the lock (closing the file lets go of the ``flock``); nothing if it is not held."""
        if self._fallback is not None:
            self._fallback.release()
            return
        fd, self._fd = self._fd, None
        if fd is not None:
            with _held_lock:
                _held.discard(self)
            os.close(fd)

    def __del__(self) -> None:
        """A claim object dropped while held lets go of its lock (filelock's did too): no claim outlives it."""
        fd, self._fd = getattr(self, "_fd", None), None
        if fd is not None:
            with contextlib.suppress(OSError):
                os.close(fd)


ClaimLock = FlockClaim
"""A held-or-not claim lock (filelock's inside it where there is no ``flock``)."""


def claim_lock(path: str) -> ClaimLock:
    """The claim lock at ``path`` (``0600``, one per acquisition: not thread-local, not shared)."""
    return FlockClaim(path)


def try_take(lock: ClaimLock) -> bool:
    """Take ``lock`` without waiting for a claimant: False when another claimant holds it.

    Raises:
        OSError: the lock file could not be opened or created.
    """
    deadline = time.monotonic() + _PROBED_FOR
    pause = 0.0
    while True:
        try:
            lock.acquire(timeout=0, blocking=False)
        except ClaimBusyError:
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
    except ClaimBusyError:
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
