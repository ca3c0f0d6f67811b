"""A flag that a signal handler may raise: :class:`Flag`, the worker loop's stop and wake-up.

A signal handler runs in the main thread between two bytecodes, wherever that thread was, including inside a
:class:`threading.Event`'s ``wait`` or ``clear`` with the event's lock held: raising that event from the
handler then waits forever for a lock its own thread holds. A :class:`Flag` takes no lock in Python: it is a
plain attribute plus a :class:`queue.SimpleQueue`, whose ``put`` is reentrant (its C implementation may
interrupt a ``get`` or ``put`` of the same thread, which is what makes it fit for signal handlers).
"""

from __future__ import annotations

import contextlib
import queue

__all__ = ["Flag"]


class Flag:
    """A level flag with a waiter: like :class:`threading.Event`, and safe to ``set`` from a signal handler.

    Meant for one waiter at a time (a ``set`` wakes one ``wait``; the flag itself stays raised for everyone
    who reads :meth:`is_set`).
    """

    __slots__ = ("_raised", "_tokens")

    def __init__(self) -> None:
        self._raised = False
        self._tokens: queue.SimpleQueue[None] = queue.SimpleQueue()

    def set(self) -> None:
        """Raise the flag and wake the waiter; takes no lock, so any thread or signal handler may call it."""
        self._raised = True
        self._tokens.put(None)

    def is_set(self) -> bool:
        """Whether the flag is raised."""
        return self._raised

    def clear(self) -> None:
        """Lower the flag and forget the wake-ups already given."""
        self._raised = False
        with contextlib.suppress(queue.Empty):
            while True:
                self._tokens.get_nowait()

    def wait(self, timeout: float) -> bool:
        """Wait until :meth:`set` is called (or was, since the last :meth:`clear`), or ``timeout`` seconds pass.

        Returns whether the flag is raised.
        """
        if self._raised:
            return True
        with contextlib.suppress(queue.Empty):
            self._tokens.get(timeout=timeout)
        return self._raised
