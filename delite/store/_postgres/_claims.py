"""The claim connection: one dedicated, unpooled connection per store object, holding its claims.

A claim is a session advisory lock (``pg_try_advisory_lock``) on a 64-bit key derived from the execution id.
PostgreSQL drops a session's locks when its backend ends, so a claim dies with its owner: a killed process
closes its socket at once, and a vanished host's connection is dropped once the keepalives (set on both ends,
see :mod:`._connect`) give up. Session locks need the same server session from one transaction to the next, so
a transaction-mode pooler in front of this connection is detected when it is opened and refused
(:class:`~delite.errors.UnsupportedPoolerError`).

The connection is shared by the store's threads under a lock; advisory locks are re-entrant within a session,
so the store also keeps the set of ids it holds and never locks one twice.
"""

from __future__ import annotations

import hashlib
import threading
from typing import Any

import psycopg
import psycopg.errors
from psycopg import pq

from delite.errors import StoreError, UnsupportedPoolerError
from delite.store._postgres._connect import Keepalives, connect_error

__all__ = ["ClaimConnection", "lock_key"]

_PROBE_KEY = 0x64656C6974650002  # the pooler check's lock ("delite" and 2)
_HELD = """SELECT count(*) FROM pg_locks
    WHERE locktype = 'advisory' AND pid = pg_backend_pid() AND objsubid = 1 AND granted
      AND classid = ((%(key)s::bigint >> 32) & 4294967295)::oid AND objid = (%(key)s::bigint & 4294967295)::oid"""


def lock_key(execution_id: str) -> int:
    """The advisory lock key of an execution's claim: the first 8 bytes of a BLAKE2b hash, as a signed bigint."""
    digest = hashlib.blake2b(execution_id.encode(), digest_size=8, person=b"delite-claim").digest()
    return int.from_bytes(digest, "big", signed=True)


class ClaimConnection:
    """A dedicated connection for claims (advisory locks), with keepalives, checked for poolers when opened."""

    def __init__(self, params: dict[str, Any], keepalives: Keepalives, where: str) -> None:
        """Open the connection, set the server's keepalives on it and check it is a real session.

        Raises:
            StoreError: the database could not be reached.
            UnsupportedPoolerError: a transaction-mode pooler sits in front of it.
        """
        self.where = where
        self.keepalives = keepalives
        self._lock = threading.Lock()
        self._ended = False
        try:
            self._conn = psycopg.connect(autocommit=True, prepare_threshold=None, **{**params, **keepalives.libpq()})
        except psycopg.Error as e:
            raise connect_error("open the claim connection to PostgreSQL", where, e) from e
        self._conn.add_notice_handler(self._on_notice)
        try:
            for name, value in keepalives.server_settings():
                self._conn.execute("SELECT set_config(%s, %s, false)", (name, value))
            row = self._conn.execute("SELECT pg_backend_pid()").fetchone()
            self.pid = int(str(row[0])) if row is not None else 0
        except psycopg.Error as e:
            self._conn.close()
            raise connect_error("set up the claim connection", where, e) from e

    def check_session(self, other: psycopg.Connection[Any]) -> None:
        """Refuse a transaction-mode pooler: our session must keep its backend and its locks across transactions.

        ``other`` is another connection to the same URL (a pooled data connection). Through a transaction-mode
        pooler, it is handed the backend this connection just used (so it shares its pid and its session locks),
        or this connection comes back on another backend (its pid changes, its lock is gone).

        Raises:
            UnsupportedPoolerError: either happened.
        """
        with self._lock:
            try:
                row = self._conn.execute("SELECT pg_backend_pid(), pg_try_advisory_lock(%s)", (_PROBE_KEY,)).fetchone()
                first_pid, got = (int(str(row[0])), bool(row[1])) if row is not None else (0, False)
                theirs = other.execute("SELECT pg_backend_pid(), pg_try_advisory_lock(%s)", (_PROBE_KEY,)).fetchone()
                other_pid, other_got = (int(str(theirs[0])), bool(theirs[1])) if theirs is not None else (0, False)
                if other_got:
                    other.execute("SELECT pg_advisory_unlock(%s)", (_PROBE_KEY,))
                again = self._conn.execute("SELECT pg_backend_pid(), (" + _HELD + ")", {"key": _PROBE_KEY}).fetchone()
                later_pid, held = (int(str(again[0])), int(str(again[1]))) if again is not None else (0, 0)
                if got:
                    self._conn.execute("SELECT pg_advisory_unlock(%s)", (_PROBE_KEY,))
            except psycopg.Error as e:
                raise connect_error("check the claim connection", self.where, e) from e
        reason = None
        if other_pid == first_pid:
            reason = f"two client connections were served by the same server session (pid {first_pid})"
        elif later_pid != first_pid:
            reason = f"one client connection was served by server sessions {first_pid} and {later_pid}"
        elif got and (other_got or held == 0):
            reason = "a session advisory lock did not stay with the session that took it"
        if reason is not None:
            self.close()
            raise UnsupportedPoolerError(self.where, reason)

    # -- claims ------------------------------------------------------------------------------------------------

    def try_lock(self, key: int) -> bool:
        """Take the advisory lock ``key`` without waiting; whether it was taken."""
        with self._lock:
            try:
                row = self._conn.execute("SELECT pg_try_advisory_lock(%s)", (key,)).fetchone()
            except psycopg.Error as e:
                raise connect_error("take a claim", self.where, e) from e
        return bool(row is not None and row[0])

    def unlock(self, key: int) -> None:
        """Give up the advisory lock ``key`` (nothing to do when the connection is gone: so is the lock)."""
        with self._lock:
            if self._conn.closed:
                return
            try:
                self._conn.execute("SELECT pg_advisory_unlock(%s)", (key,))
            except psycopg.Error:
                self._conn.close()  # broken: closing it drops every lock it held, which is what unlocking wants

    def alive(self) -> bool:
        """Whether the connection (and so every lock on it) is still up, without a round trip.

        Reads whatever the server sent without waiting: a session that was ended sends a FATAL notice (seen by
        the notice handler) and then closes the socket (the second read sees the end of the file).
        """
        with self._lock:
            conn = self._conn
            if conn.closed or self._ended:
                conn.close()
                return False
            pgconn = conn.pgconn
            try:
                for _ in range(2):
                    pgconn.consume_input()
                    pgconn.is_busy()  # parses what arrived: a FATAL message goes to the notice handler
            except psycopg.OperationalError:
                conn.close()
                return False
            if self._ended or pgconn.status != pq.ConnStatus.OK or conn.broken:
                conn.close()
                return False
            return True

    def _on_notice(self, diag: psycopg.errors.Diagnostic) -> None:
        """A FATAL message outside a query: the server is ending this session (terminated, shutting down)."""
        if diag.severity_nonlocalized == "FATAL" or diag.severity == "FATAL":
            self._ended = True

    def setting(self, name: str) -> str:
        """A server setting as this session sees it (``SHOW``; for tests and diagnostics)."""
        with self._lock:
            try:
                row = self._conn.execute("SELECT current_setting(%s)", (name,)).fetchone()
            except psycopg.Error as e:
                raise connect_error("read a setting of the claim connection", self.where, e) from e
        if row is None:
            raise StoreError(f"no value for setting {name!r}", self.where)
        return str(row[0])

    def close(self) -> None:
        """Close the connection: the server drops every claim it held."""
        with self._lock:
            self._conn.close()
