"""The file store's answer to a listing: the SQLite listing index of ``delite.store._index``, brought up to date.

Kept out of ``_file.py`` so that listing a data directory does not import filelock (the read side needs none).
"""

from __future__ import annotations

import errno
import os
import stat
from typing import TYPE_CHECKING

from delite.errors import StoreError
from delite.store._ids import is_execution_id
from delite.store._query import ListingQuery, Progress
from delite.store._views import ExecutionSummary, Page

if TYPE_CHECKING:
    from delite.store._index import Keep
    from delite.store._layout import Layout


def log_ids(layout: Layout) -> list[str]:
    """Every execution id with a log in the data directory, sorted (generated ids sort by creation time)."""
    try:
        names = os.listdir(layout.executions)
    except FileNotFoundError:
        return []
    except OSError as e:
        raise StoreError.from_os_error("list the executions", layout.executions, e) from e
    return sorted(n[:-4] for n in names if n.endswith(".log") and is_execution_id(n[:-4]))


def has_executions(layout: Layout) -> bool:
    """Whether the data directory has its executions folder; False when it (or the data directory) does not exist.

    Raises:
        StoreError: it cannot be looked at, or it (or the data directory, or a folder above) is a file: a file
            named as the data directory holds no executions, and a listing that said none would hide the mistake.
    """
    try:
        st = os.stat(layout.executions)
    except FileNotFoundError:
        return False
    except OSError as e:
        if e.errno != errno.ENOTDIR:
            raise StoreError.from_os_error("list the executions", layout.executions, e) from e
    else:
        if stat.S_ISDIR(st.st_mode):
            return True
    bad = layout.executions  # the nearest path on the way to it that is there: a file, not a directory
    while not os.path.exists(bad) and os.path.dirname(bad) not in ("", bad):
        bad = os.path.dirname(bad)
    raise StoreError.from_os_error("list the executions", bad, NotADirectoryError(errno.ENOTDIR, "Not a directory"))


def list_page(
    layout: Layout, query: ListingQuery, *, progress: Progress | None = None, keep: Keep | None = None
) -> Page:
    """One page of the data directory's executions, newest first (see :meth:`ExecutionIndex.list_executions`).

    Only logs that changed since the index last saw them are read; ``progress(done, total)`` is called while
    many are. ``keep`` is given the states folded from fold checkpoints on the way (see :mod:`._index`).
    """
    if not has_executions(layout):
        return Page(items=[], total=0, offset=query.offset, limit=query.limit)
    import sqlite3  # noqa: PLC0415 - with the index

    import msgspec  # noqa: PLC0415

    from delite.store._index import ListingIndex  # noqa: PLC0415 - sqlite3 only when there is something to list

    def listed(index: ListingIndex) -> tuple[list[ExecutionSummary], int]:
        index.keep = keep
        try:
            index.refresh(progress)
            return index.query(query)
        finally:
            index.close()

    try:
        items, total = listed(ListingIndex.open(layout))
    except (sqlite3.DatabaseError, msgspec.DecodeError, UnicodeDecodeError):
        # A damaged index is a derived file that cannot be trusted: the listing is derived again from the logs,
        # in memory, for this call (``health`` reports the index; ``health --repair`` rebuilds it).
        items, total = listed(ListingIndex.memory(layout))
    return Page(items=items, total=total, offset=query.offset, limit=query.limit)
