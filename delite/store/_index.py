"""The listing index: a small SQLite database of execution summaries, derived from the logs.

The logs are the source of truth and the index is never trusted over them. Before every listing,
:meth:`ListingIndex.refresh` stats every log and compares its size, modification time and inode with those
the row was derived from: a changed or new log is re-derived, a row whose log is gone is dropped. Deleting the file
loses nothing; it is rebuilt on the next listing.

Versioning. The schema is built by named migrations (``m001_…``), applied in order and recorded in the
``_migrations`` table, with their count in ``PRAGMA user_version``. A database with more migrations than
this code knows (made by a newer delite) is left untouched and an in-memory index is used instead.
``DERIVATION`` versions how rows are derived from logs: when it changes, every row is re-derived.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import stat
import time
from collections.abc import Callable, Mapping
from typing import Any, Final

import msgspec

from delite.errors import StoreError, UsageError
from delite.log._os import create_private, open_private, read_regular
from delite.store._checkpoint import MIN_LOG_SIZE as MIN_CHECKPOINT_LOG
from delite.store._checkpoint import Loaded
from delite.store._checkpoint import load as load_checkpoint
from delite.store._derive import summary_of_log, summary_of_tail, unreadable
from delite.store._ids import is_execution_id
from delite.store._layout import Layout
from delite.store._query import ListingQuery, Progress
from delite.store._tally import summary as tallied_summary
from delite.store._views import ExecutionSummary, Problem, many

__all__ = [
    "DERIVATION",
    "MIGRATIONS",
    "TEMPLATE",
    "ListingIndex",
    "Progress",
    "build_template",
    "check_index",
    "scan_logs",
]


DERIVATION: Final = "3"  # 2: summaries name the parent call of a sub-agent; 3: whether a worker may advance it

MIGRATIONS: Final[tuple[tuple[str, tuple[str, ...]], ...]] = (
    (
        "m001_executions",
        (
            """CREATE TABLE executions (
                id TEXT PRIMARY KEY,
                agent_id TEXT NOT NULL,
                status TEXT NOT NULL,
                created_at REAL NOT NULL,
                updated_at REAL NOT NULL,
                metadata TEXT NOT NULL,
                summary BLOB NOT NULL,
                log_size INTEGER NOT NULL,
                log_mtime_ns INTEGER NOT NULL
            )""",
            "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
        ),
    ),
    (
        "m002_listing_order",
        (
            "CREATE INDEX executions_by_created ON executions (created_at DESC, id DESC)",
            "CREATE INDEX executions_by_status ON executions (status, created_at DESC)",
        ),
    ),
    (
        "m003_log_inode",  # a log replaced by a copy (a restore keeping size and mtime) is a changed log
        ("ALTER TABLE executions ADD COLUMN log_ino INTEGER NOT NULL DEFAULT 0",),
    ),
)

_COMMIT_EVERY = 500
_encode = msgspec.json.Encoder().encode
_decode_summary = msgspec.json.Decoder(ExecutionSummary).decode


def _stamp(st: os.stat_result) -> tuple[int, int, int]:
    """What identifies a version of a log file: its size, modification time and inode."""
    return (st.st_size, st.st_mtime_ns, st.st_ino)


class _NewerIndexError(Exception):
    """The database was made by a newer delite."""


def scan_logs(layout: Layout) -> dict[str, os.stat_result]:
    """Every entry named like a log under the data directory with a valid execution id, and its ``lstat``.

    Whatever the entry is (a regular file, a link, a directory, a FIFO): each is listed, and reading it is
    where an entry that is not a usable log is told apart, so one bad entry never hides the others.
    """
    out: dict[str, os.stat_result] = {}
    try:
        entries = os.scandir(layout.executions)
    except FileNotFoundError:
        return out
    except OSError as e:
        raise StoreError.from_os_error("list the executions", layout.executions, e) from e
    with entries:
        for entry in entries:
            name = entry.name
            if not name.endswith(".log"):
                continue
            eid = name[:-4]
            if not is_execution_id(eid):
                continue
            try:
                out[eid] = entry.stat(follow_symlinks=False)
            except OSError:
                continue  # gone since the listing
    return out


Keep = Callable[[str, Loaded], None]
"""Given the states a listing folded from fold checkpoints, to continue from (see :meth:`FileStore.recoverable`)."""


def _row(layout: Layout, eid: str, keep: Keep | None = None) -> tuple[Any, ...] | None:
    path = layout.log(eid)
    try:
        data, st = read_regular(path)
    except FileNotFoundError:
        return None
    except OSError as e:
        # Not a log this process can read (a link, a directory, a FIFO, no permission): listed as unreadable,
        # with the reason, and everything else is listed as usual.
        try:
            st = os.lstat(path)
        except OSError:
            return None
        summary = unreadable(eid, f"cannot read the log: {e.strerror or e}", log_bytes=0)
        data = b""
    else:
        summary = (
            tallied_summary(data, eid)  # a finished log whose terminal record's tally matches its bytes
            or _checkpointed(layout, eid, data, path, keep)
            or summary_of_log(eid, data, path=path)
        )
    created = summary.created_at or st.st_mtime
    return (
        eid,
        summary.agent_id,
        summary.status,
        created,
        summary.updated_at or created,
        _encode(summary.metadata).decode(),
        _encode(summary),
        *_stamp(st),
    )


def _checkpointed(layout: Layout, eid: str, data: bytes, path: str, keep: Keep | None) -> ExecutionSummary | None:
    """The summary of an unfinished log from its fold checkpoint and the frames after it, None on any miss.

    The checkpoint is used only if it matches the log's first bytes exactly (see :mod:`._checkpoint`) and
    the frames after them read and fold cleanly: a long run a dead process left behind is listed (and found by
    a Runtime's recovery) without folding its whole log; anything else is read whole, as without one. With
    ``keep``, the tail is folded in full and the state is given to it with the hash of the whole log, for the
    claim that follows (which checks the log against that hash before it uses the state).
    """
    if len(data) < MIN_CHECKPOINT_LOG:
        return None
    found = load_checkpoint(layout.checkpoint(eid), data, eid, log_path=path)
    if found is None:
        return None
    summary = summary_of_tail(eid, data, found.size, found.state, found.first, path=path, full=keep is not None)
    if summary is not None and keep is not None and not found.state.status.is_terminal:
        digest = found.digest.copy()
        digest.update(memoryview(data)[found.size :])
        keep(eid, Loaded(found.state, len(data), digest, found.first, data))
    return summary


def _json_path(key: str) -> str:
    if '"' in key or "\\" in key:
        raise UsageError(f"metadata key {key!r} may not contain quotes or backslashes")
    return f'$."{key}"'


def _sql_value(value: Any) -> Any:
    if value is None or isinstance(value, str | int | float):
        return value
    return _encode(value).decode()


_INT64: Final = range(-(2**63), 2**63)


def _metadata_condition(key: str, value: Any) -> tuple[str, list[Any]]:
    """The SQL condition (and its parameters) that an execution's metadata holds ``value`` under ``key``.

    SQLite binds integers of 64 bits only, and reads a bigger one in a JSON text as an approximate float: such
    a value is matched on its JSON text instead (``->``, SQLite 3.38 and later), so it matches exactly what was
    recorded, as every other store's filter does.

    Raises:
        UsageError: such a value, on an SQLite older than 3.38.
    """
    path = _json_path(key)
    if isinstance(value, int) and not isinstance(value, bool) and value not in _INT64:
        if sqlite3.sqlite_version_info < (3, 38):
            raise UsageError(
                f"metadata value for {key!r}: filtering on an integer beyond 64 bits needs SQLite 3.38 or later "
                f"(this Python has {sqlite3.sqlite_version})"
            )
        return "(metadata -> ?) = ?", [path, str(value)]
    return "json_extract(metadata, ?) = ?", [path, _sql_value(value)]


class ListingIndex:
    """The index of one data directory. Use :meth:`open`, then :meth:`refresh` and :meth:`query`."""

    def __init__(self, layout: Layout, conn: sqlite3.Connection, *, in_memory: bool) -> None:
        """Wrap an open, migrated connection (use :meth:`open`)."""
        self.layout = layout
        self.conn = conn
        self.in_memory = in_memory
        self.keep: Keep | None = None

    @classmethod
    def open(cls, layout: Layout) -> ListingIndex:
        """Open (creating or migrating) the index file, or an in-memory index if the file cannot be used.

        A damaged file is deleted and rebuilt; a file made by a newer delite, or one that cannot be written
        (a read-only data directory, a lock held too long), is left alone and an in-memory index is used.
        """
        path = layout.index
        if _unusable(layout):
            return cls.memory(layout)  # SQLite could block on a FIFO, or fail on a directory
        for _attempt in range(2):
            _create_private(path)
            try:
                conn = sqlite3.connect(path, timeout=10.0, isolation_level=None)
            except sqlite3.Error:
                break
            try:
                _prepare(conn)
            except (_NewerIndexError, sqlite3.OperationalError):
                conn.close()
                break
            except sqlite3.DatabaseError:
                conn.close()
                if _delete_index(layout):
                    continue
                break
            return cls(layout, conn, in_memory=False)
        return cls.memory(layout)

    @classmethod
    def memory(cls, layout: Layout) -> ListingIndex:
        """An index held in memory for this process only."""
        conn = sqlite3.connect(":memory:", isolation_level=None)
        _prepare(conn)
        return cls(layout, conn, in_memory=True)

    def close(self) -> None:
        """Close the database."""
        self.conn.close()

    # -- keeping it true to the logs -------------------------------------------------------------------------

    def refresh(self, progress: Progress | None = None) -> int:
        """Re-derive the rows of new and changed logs and drop those of deleted ones; returns rows re-derived.

        If the file cannot be written, the index moves to memory (for this process) and is built there.
        """
        logs = scan_logs(self.layout)
        known = {
            eid: (size, mtime, ino)
            for eid, size, mtime, ino in self.conn.execute("SELECT id, log_size, log_mtime_ns, log_ino FROM executions")
        }
        stale = [eid for eid, st in logs.items() if known.get(eid) != _stamp(st)]
        gone = [eid for eid in known if eid not in logs]
        if not stale and not gone:
            return 0
        try:
            self._write(stale, gone, progress)
        except sqlite3.OperationalError:
            if self.in_memory:
                raise
            self.conn.close()
            fallback = ListingIndex.memory(self.layout)
            self.conn, self.in_memory = fallback.conn, True  # ``keep`` stays
            return self.refresh(progress)
        return len(stale)

    def _write(self, stale: list[str], gone: list[str], progress: Progress | None) -> None:
        conn = self.conn
        total = len(stale)
        if gone:
            with _transaction(conn):
                conn.executemany("DELETE FROM executions WHERE id = ?", [(g,) for g in gone])
        batch: list[tuple[Any, ...]] = []
        deleted: list[tuple[str]] = []
        for done, eid in enumerate(stale, start=1):
            row = _row(self.layout, eid, self.keep)
            if row is None:
                deleted.append((eid,))
            else:
                batch.append(row)
            if len(batch) + len(deleted) >= _COMMIT_EVERY or done == total:
                with _transaction(conn):
                    conn.executemany("INSERT OR REPLACE INTO executions VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", batch)
                    conn.executemany("DELETE FROM executions WHERE id = ?", deleted)
                batch, deleted = [], []
                if progress is not None:
                    progress(done, total)

    def rebuild(self, progress: Progress | None = None) -> int:
        """Drop every row and derive them all again from the logs; returns the number of rows.

        An index file damaged beyond its first pages (it opened, but its rows cannot be deleted) is deleted and
        made again, or kept in memory when it cannot be.
        """
        try:
            with _transaction(self.conn):
                self.conn.execute("DELETE FROM executions")
        except sqlite3.DatabaseError as e:
            if self.in_memory or isinstance(e, sqlite3.OperationalError):  # busy or locked: not damage
                raise
            self.conn.close()
            fresh = ListingIndex.open(self.layout) if _delete_index(self.layout) else ListingIndex.memory(self.layout)
            self.conn, self.in_memory = fresh.conn, fresh.in_memory
        return self.refresh(progress)

    # -- reading ---------------------------------------------------------------------------------------------

    def forget(self, ids: list[str]) -> None:
        """Drop the rows of these executions (deleted), overwriting the freed pages (``secure_delete``)."""
        self.conn.execute("PRAGMA secure_delete = ON")
        with _transaction(self.conn):
            self.conn.executemany("DELETE FROM executions WHERE id = ?", [(eid,) for eid in ids])

    def query(self, query: ListingQuery) -> tuple[list[ExecutionSummary], int]:
        """The matching summaries, newest first, and how many match in all."""
        where: list[str] = []
        params: list[Any] = []
        wanted = query.statuses
        if wanted:
            where.append(f"status IN ({', '.join('?' * len(wanted))})")
            params.extend(wanted)
        if query.agent is not None:
            where.append("agent_id = ?")
            params.append(query.agent)
        for key, value in (query.metadata or {}).items():
            condition, values = _metadata_condition(key, value)
            where.append(condition)
            params.extend(values)
        if query.parent is not None:
            where.append("json_extract(CAST(summary AS TEXT), '$.parent_id') = ?")
            params.append(query.parent)
        if query.since is not None:
            where.append("created_at >= ?")
            params.append(query.since)
        if query.until is not None:
            where.append("created_at < ?")
            params.append(query.until)
        clause = f" WHERE {' AND '.join(where)}" if where else ""
        total = self.conn.execute(f"SELECT count(*) FROM executions{clause}", params).fetchone()[0]  # noqa: S608
        rows = self.conn.execute(
            f"SELECT summary FROM executions{clause} ORDER BY created_at DESC, id DESC LIMIT ? OFFSET ?",  # noqa: S608
            [*params, -1 if query.limit is None else query.limit, query.offset],
        ).fetchall()
        return [_decode_summary(r[0]) for r in rows], int(total)


@contextlib.contextmanager
def _transaction(conn: sqlite3.Connection) -> Any:
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def _prepare(conn: sqlite3.Connection) -> None:
    """Apply missing migrations and re-derive everything if the derivation changed."""
    conn.execute("PRAGMA synchronous = OFF")  # derived data: a power loss at worst damages it, and it is rebuilt
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if version > len(MIGRATIONS):
        raise _NewerIndexError
    if version < len(MIGRATIONS):
        with _transaction(conn):  # one transaction with the derivation's mark: a new index is made in one
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            conn.execute("CREATE TABLE IF NOT EXISTS _migrations (name TEXT PRIMARY KEY, applied_at REAL NOT NULL)")
            for name, statements in MIGRATIONS[version:]:
                for statement in statements:
                    conn.execute(statement)
                conn.execute("INSERT INTO _migrations VALUES (?, ?)", (name, time.time()))
            conn.execute(f"PRAGMA user_version = {len(MIGRATIONS)}")
            if _derived_otherwise(conn):
                _rederive(conn)
    elif _derived_otherwise(conn):
        with _transaction(conn):
            _rederive(conn)


def _derived_otherwise(conn: sqlite3.Connection) -> bool:
    """Whether the rows were derived another way than :data:`DERIVATION` says (or the index says nothing)."""
    row = conn.execute("SELECT value FROM meta WHERE key = 'derivation'").fetchone()
    return row is None or row[0] != DERIVATION


def _rederive(conn: sqlite3.Connection) -> None:
    """Drop every row, to be derived again, and mark the index with this derivation (in a transaction)."""
    conn.execute("DELETE FROM executions")
    conn.execute("INSERT OR REPLACE INTO meta VALUES ('derivation', ?)", (DERIVATION,))


def _unusable(layout: Layout) -> str:
    """Why the index's files cannot be used ("" if they can): one of them is there but not a regular file."""
    for suffix in ("", "-journal", "-wal", "-shm"):
        name = layout.index + suffix
        try:
            st = os.lstat(name)
        except OSError:
            continue
        if not stat.S_ISREG(st.st_mode):
            return f"{os.path.basename(name)} is not a regular file"
    return ""


TEMPLATE: Final = os.path.join(os.path.dirname(os.path.abspath(__file__)), "index-template.sqlite3")
"""An empty index with every migration applied and this derivation's mark: a new index file starts as a copy.

Written by :func:`build_template` (``python -c "from delite.store._index import TEMPLATE, build_template;
open(TEMPLATE, 'wb').write(build_template())"``); ``tests/unit/test_datadir.py`` checks that it has the schema, the
version and the derivation the migrations give. One that falls behind (a migration added since) is still a
valid start: :func:`_prepare` applies what it lacks, as for any older index.
"""


def build_template() -> bytes:
    """The bytes of an empty index made by the migrations (what :data:`TEMPLATE` holds)."""
    conn = sqlite3.connect(":memory:", isolation_level=None)
    try:
        _prepare(conn)
        return conn.serialize()
    finally:
        conn.close()


def _create_private(path: str) -> None:
    """Create the index file ``0600`` before SQLite does (its journals then take the same mode), from the template.

    A copy of :data:`TEMPLATE` is an index ready for rows, without running the statements that make one (about
    a millisecond in a fresh process, most of the cost of a first listing of a small data directory). It is
    written to a temporary file next to it and linked into place (:func:`~delite.log._os.create_private`), so no
    process ever opens a part of it. Where that cannot be done (no template, a file system without hard links),
    an empty file is created and SQLite makes the tables, as before. A file that exists is left alone, and one
    that cannot be created (a read-only data directory) is not an error: the index is then kept in memory.
    """
    if os.path.lexists(path):
        return
    with contextlib.suppress(OSError):
        create_private(path, read_regular(TEMPLATE)[0])  # False: another process made it meanwhile, theirs is used
        return
    with contextlib.suppress(OSError):
        os.close(open_private(path, os.O_WRONLY))


def _delete_index(layout: Layout) -> bool:
    """Delete a damaged index file (and its journal); False if it could not be deleted."""
    try:
        for suffix in ("", "-journal", "-wal", "-shm"):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(layout.index + suffix)
    except OSError:
        return False
    return True


def check_index(
    layout: Layout,
    logs: Mapping[str, os.stat_result],
    *,
    expected: Mapping[str, ExecutionSummary] | None = None,
) -> list[Problem]:
    """Compare the index file with the logs, read-only. Returns one finding per kind of disagreement.

    ``expected`` holds the summaries derived from the logs just read (by ``health``): a row whose log is
    unchanged (same size, mtime and inode) but whose summary differs was not derived from that log (edited,
    or written by someone else), and is reported as ``index-mismatch``, a warning.
    """
    from pathlib import Path  # noqa: PLC0415 - for the read-only file: URI; health only, not the open

    path = Path(layout.index)
    unusable = _unusable(layout)
    if unusable:
        detail = f"{unusable}; listings keep the index in memory until it is removed"
        return [Problem(kind="index-unusable", severity="warning", path=str(path), detail=detail)]
    if not path.exists():
        if not logs:
            return []
        return [Problem(kind="index-missing", severity="derived", detail="no index yet; the next listing builds it")]
    try:
        conn = sqlite3.connect(path.resolve().as_uri() + "?mode=ro", uri=True, timeout=10.0)
    except sqlite3.Error as e:
        return [Problem(kind="index-damaged", severity="derived", detail=f"cannot open the index: {e}")]
    try:
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version > len(MIGRATIONS):
            return [Problem(kind="index-newer", severity="derived", detail="the index was made by a newer delite")]
        if version < len(MIGRATIONS):
            detail = f"the index has {version} of {len(MIGRATIONS)} migrations; the next listing applies the rest"
            return [Problem(kind="index-outdated", severity="derived", detail=detail)]
        derivation = conn.execute("SELECT value FROM meta WHERE key = 'derivation'").fetchone()
        if derivation is None or derivation[0] != DERIVATION:
            detail = "the index was derived by another version; the next listing re-derives it"
            return [Problem(kind="index-outdated", severity="derived", detail=detail)]
        rows: dict[str, tuple[int, int, int]] = {}
        summaries: dict[str, bytes] = {}
        for eid, size, mtime, ino, blob in conn.execute(
            "SELECT id, log_size, log_mtime_ns, log_ino, summary FROM executions"
        ):
            rows[eid] = (size, mtime, ino)
            summaries[eid] = blob
    except sqlite3.DatabaseError as e:
        return [Problem(kind="index-damaged", severity="derived", detail=f"the index cannot be read: {e}")]
    finally:
        conn.close()
    found = {
        "index-orphaned": sorted(eid for eid in rows if eid not in logs),
        "index-missing": sorted(eid for eid in logs if eid not in rows),
        "index-stale": sorted(eid for eid, st in logs.items() if eid in rows and rows[eid] != _stamp(st)),
    }
    what = {
        "index-orphaned": "index entries whose log is gone",
        "index-missing": "logs with no index entry",
        "index-stale": "index entries older than their log",
    }
    problems = [many(kind, "derived", ids, what[kind]) for kind, ids in found.items() if ids]
    wrong = sorted(
        eid
        for eid, summary in (expected or {}).items()
        if eid in rows and rows[eid] == _stamp(logs[eid]) and _decoded(summaries[eid]) != summary
    )
    if wrong:
        what_wrong = "index entries disagree with their unchanged log (edited?); health --repair rebuilds them"
        problems.append(many("index-mismatch", "warning", wrong, what_wrong))
    return problems


def _decoded(blob: Any) -> ExecutionSummary | None:
    try:
        return _decode_summary(blob)
    except (msgspec.DecodeError, TypeError):
        return None
