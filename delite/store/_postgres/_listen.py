"""Wake-ups for workers: ``LISTEN`` on one channel, ``NOTIFY`` when work may have appeared.

The store sends a notification on :data:`CHANNEL` (the payload is the execution id) in the transaction that
creates an execution a worker may advance, in the one that makes an execution advanceable (an answer recorded
by any process), and after it lets go of an advanceable execution. A worker waits in
:meth:`Listener.wait`; notifications are hints, never the truth, so a worker reads :meth:`runnable` after each
wake-up and also polls (a notification sent while no connection listened, or across a lost connection, is gone).
"""

from __future__ import annotations

import threading
import time
from typing import Any

import psycopg

__all__ = ["CHANNEL", "Listener"]

CHANNEL = "delite_work"


class Listener:
    """A connection of its own that listens on :data:`CHANNEL`, opened on first use and reopened when it breaks."""

    def __init__(self, params: dict[str, Any]) -> None:
        """Remember how to connect; nothing is opened yet."""
        self._params = params
        self._conn: psycopg.Connection[Any] | None = None
        self._lock = threading.Lock()

    def _open(self) -> psycopg.Connection[Any]:
        conn = self._conn
        if conn is None or conn.closed or conn.broken:
            conn = psycopg.connect(autocommit=True, prepare_threshold=None, **self._params)
            conn.execute("LISTEN " + CHANNEL)
            self._conn = conn
        return conn

    def start(self) -> None:
        """Listen from now on (so that news sent before the first :meth:`wait` is not missed)."""
        with self._lock:
            self._open()

    def wait(self, timeout: float) -> bool:
        """Block until a notification arrives (True) or ``timeout`` seconds pass (False).

        A lost connection counts as news (True, after a short pause): notifications may have been missed, so the
        caller should look for work; the connection is reopened on the next call.
        """
        deadline = time.monotonic() + max(0.0, timeout)
        with self._lock:
            try:
                conn = self._open()
                for _ in conn.notifies(timeout=max(0.0, deadline - time.monotonic()), stop_after=1):
                    return True
            except psycopg.Error:
                if self._conn is not None:
                    self._conn.close()
                self._conn = None
                time.sleep(min(1.0, max(0.0, deadline - time.monotonic())))
                return True
        return False

    def close(self) -> None:
        """Stop listening."""
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None
