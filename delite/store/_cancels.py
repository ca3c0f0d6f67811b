"""The cancel check of the file store without a system call per step.

A cancel request is a marker file ``signals/<id>.cancel``; looking for it costs an ``lstat`` per execution per
step. Instead, :meth:`~delite.store.FileStore.request_cancel` writes a fresh random value to
``signals/generation`` after it made the marker, and the owner of a run reads that value from a shared memory
map of the file (no system call). While the value is the one read when a look found no marker for an
execution, none was made since: the look is skipped. The value is read before the look and written after
the marker, so a request whose ``request_cancel`` returned is seen at the owner's next step boundary.

Markers made some other way (by hand, by an older delite) do not change the value: every
:data:`RECHECK` seconds the file is looked at again (re-mapped if it was replaced) and the markers too.
Where the file cannot be made or mapped (a read-only data directory), every check looks at the markers.
"""

from __future__ import annotations

import contextlib
import mmap
import os
import stat
import threading
import time
from collections.abc import Callable

__all__ = ["GENERATION", "RECHECK", "CancelWatch", "bump"]

GENERATION = "generation"
"""The name of the generation file in the signals folder."""

RECHECK = 1.0
"""Seconds after which the markers are looked at again even if the generation did not change."""

_SIZE = 8
_MAX_CLEAR = 4096
_FLAGS = os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)


def _open(path: str) -> int:
    fd = os.open(path, _FLAGS, 0o600)
    try:
        regular = stat.S_ISREG(os.fstat(fd).st_mode)
    except BaseException:
        os.close(fd)
        raise
    if not regular:
        os.close(fd)
        raise OSError(f"not a regular file: {path}")
    return fd


def bump(signals: str) -> None:
    """Give the generation a new value (after a marker was made): every owner's next check looks again."""
    fd = _open(os.path.join(signals, GENERATION))
    try:
        os.pwrite(fd, os.urandom(_SIZE), 0)
    finally:
        os.close(fd)


class CancelWatch:
    """Which executions are known to have no cancel marker, as of which generation."""

    def __init__(self, signals: str) -> None:
        self.path = os.path.join(signals, GENERATION)
        self.view: mmap.mmap | None = None
        self.ident: tuple[int, int] | None = None
        self.next_look = 0.0
        self.generation = b""
        self.clear: set[str] = set()
        self.lock = threading.Lock()

    def current(self) -> bytes | None:
        """The generation now (a read of memory), or None when there is none to trust."""
        with self.lock:
            now = time.monotonic()
            if now >= self.next_look:
                self._look(now)
            view = self.view
            return None if view is None else view[:_SIZE]

    def _look(self, now: float) -> None:
        """Every RECHECK seconds: forget what is known, and map the file anew if it is missing or replaced."""
        self.next_look = now + RECHECK
        self.generation, self.clear = b"", set()
        try:
            st = os.stat(self.path)
            if self.view is not None and (st.st_dev, st.st_ino) == self.ident and st.st_size >= _SIZE:
                return
        except OSError:
            pass
        self.close()
        try:
            fd = _open(self.path)
        except OSError:
            return  # no signals folder yet, or none we may write: look at the markers every time
        try:
            st = os.fstat(fd)
            if st.st_size < _SIZE:
                os.pwrite(fd, os.urandom(_SIZE), 0)
            self.view = mmap.mmap(fd, _SIZE, access=mmap.ACCESS_READ)
            self.ident = (st.st_dev, st.st_ino)
        except (OSError, ValueError):
            self.view = None
        finally:
            os.close(fd)

    def unknown(self, ids: set[str]) -> tuple[bytes | None, set[str]]:
        """The generation now and those of ``ids`` not known to be without a marker at it."""
        generation = self.current()
        if generation is None or generation != self.generation:
            return generation, ids
        clear = self.clear
        return generation, {eid for eid in ids if eid not in clear}

    def known_clear(self, execution_id: str) -> bool:
        """Whether ``execution_id`` is known to have no marker at the generation now (the per-step fast path).

        Only ids a look found without a marker are known, so a known id is also one that was validated.
        """
        generation = self.current()
        return generation is not None and generation == self.generation and execution_id in self.clear

    def saw_none(self, generation: bytes | None, ids: set[str]) -> None:
        """A look made after ``generation`` was read found no marker for ``ids``."""
        if generation is None or not ids:
            return
        with self.lock:
            if generation != self.generation or len(self.clear) > _MAX_CLEAR:
                self.generation, self.clear = generation, set()
            self.clear |= ids

    def requested(self, execution_id: str, look: Callable[[str], bool]) -> bool:
        """Whether ``look`` finds a marker, not asking it while none can have been made since it last did not."""
        if self.known_clear(execution_id):
            return False
        generation, unknown = self.unknown({execution_id})
        if not unknown:
            return False
        found = look(execution_id)
        if not found:
            self.saw_none(generation, unknown)
        return found

    def close(self) -> None:
        """Unmap the generation file."""
        view, self.view, self.ident = self.view, None, None
        if view is not None:
            with contextlib.suppress(BufferError):
                view.close()
