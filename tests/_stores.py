"""Helpers of the behaviour suites that run on both stores (the ``any_data_dir`` fixture of tests/conftest.py).

:func:`store_at` opens the store at a test's location (a data directory's path or a PostgreSQL URL) once and
keeps it for the test; :func:`close_all` (the fixture's teardown) closes them. :func:`log_size` is the number of
payload bytes an execution's log holds, on either store: what a test compares to show that nothing was written.
"""

from __future__ import annotations

import os
from pathlib import Path

from delite.store import Store, open_store

__all__ = ["close_all", "log_size", "nothing_stored", "store_at"]

_OPEN: dict[str, Store] = {}


def store_at(where: str | Path) -> Store:
    """The store at ``where`` (opened on first use, kept until :func:`close_all`)."""
    key = os.fspath(where)
    store = _OPEN.get(key)
    if store is None:
        store = _OPEN[key] = open_store(where)
    return store


def close_all() -> None:
    """Close every store :func:`store_at` opened."""
    while _OPEN:
        _key, store = _OPEN.popitem()
        store.close()


def log_size(where: str | Path, execution_id: str) -> int:
    """How many payload bytes the execution's log holds (the same on both stores)."""
    return sum(len(p.payload) for p in store_at(where).read_payloads(execution_id))


def nothing_stored(where: str | Path) -> bool:
    """Whether nothing was written at ``where``: no data directory made, or a database with no execution."""
    if isinstance(where, Path):
        return not where.exists()
    return store_at(where).list_ids() == []
