"""Removals of derived files taken off the path of an answer: made by a helper thread, finished at exit.

When a long run finishes, its fold checkpoint is of no more use and is removed. Removing a file whose blocks
are on disk frees them, which costs time in proportion to its size (0.3 ms for a 700 KB checkpoint, 1.8 ms for
7.5 MB on the ext4 this was measured on), and the run's answer does not depend on it. So the file store hands
the removal to one helper thread (:func:`remove_later`) and answers; the thread lets go of the interpreter
while the kernel frees the blocks.

Nothing depends on when the file goes: a fold checkpoint is derived data, a claim of a finished log never reads
one (and removes one it finds), and deleting it is always safe. What is queued and not yet made when the
interpreter exits is made then, by an ``atexit`` handler, so a process that ends normally leaves none behind;
one killed first leaves what a kill between the terminal record and the removal always could (the next claim
of the execution removes it; ``health`` reports it as derived). :func:`settle` waits for what is queued: health
checks call it, so that this process's own pending removals are not reported.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import queue
import threading

__all__ = ["remove_later", "settle"]

_queue: queue.SimpleQueue[str] = queue.SimpleQueue()
_pending: dict[str, int] = {}  # path -> how many removals of it are queued and not yet made
_done = threading.Condition()
_thread: threading.Thread | None = None


def remove_later(path: str) -> None:
    """Remove the file at ``path`` soon, in a helper thread (a missing file, or any error, is not reported)."""
    global _thread  # noqa: PLW0603 - one helper per process, started on first use
    with _done:
        _pending[path] = _pending.get(path, 0) + 1
        if _thread is None:
            _thread = threading.Thread(target=_work, name="delite-cleanup", daemon=True)
            _thread.start()
    _queue.put(path)


def settle(timeout: float | None = 10.0) -> bool:
    """Wait until every removal queued in this process is made; False if ``timeout`` seconds passed first."""
    with _done:
        return _done.wait_for(lambda: not _pending, timeout)


def _remove(path: str) -> None:
    with contextlib.suppress(OSError):
        os.unlink(path)
    with _done:
        left = _pending.get(path, 0) - 1
        if left > 0:
            _pending[path] = left
        else:
            _pending.pop(path, None)
        if not _pending:
            _done.notify_all()


def _work() -> None:
    while True:
        path = _queue.get()
        _remove(path)


@atexit.register
def _finish() -> None:
    """At exit, make the removals still queued (the helper is a daemon thread: it stops with the interpreter)."""
    with _done:
        paths = list(_pending)
    for path in paths:
        with contextlib.suppress(OSError):
            os.unlink(path)


def _forked() -> None:
    """In a child made by ``fork``: the helper thread did not come along; the next removal starts one."""
    global _thread, _queue, _done  # noqa: PLW0603
    _thread = None
    _queue = queue.SimpleQueue()
    _done = threading.Condition()
    _pending.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forked)
