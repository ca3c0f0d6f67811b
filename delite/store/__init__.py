"""The store layer: where logs live, who may advance an execution, and what a listing of executions holds.

:func:`open_store` opens the store a path (a data directory: :class:`FileStore`) or a ``postgresql://`` URL
names; ``Agent``, ``Runtime``, ``DataDir`` and the ``delite`` command all choose their store through it.
"""

# FileStore and MemoryStore are imported on first use (PEP 562), so that importing the read side
# (``delite.datadir``, the ``delite`` command) does not import filelock before a store is opened.
# Add new names to ``_EXPORTS`` too.

from __future__ import annotations

from typing import TYPE_CHECKING

from delite._lazy import lazy_exports
from delite.store._base import ExecutionLog, LogStore, Store, decode_stored
from delite.store._derive import summarize
from delite.store._erase import FINISHED, Deleted, Refused, check_deletable, check_force
from delite.store._ids import new_execution_id, validate_execution_id
from delite.store._layout import Layout
from delite.store._open import open_store
from delite.store._query import WAITING, ExecutionIndex, ListingQuery, check_binding, check_ids
from delite.store._records import FramedRange, RecordRange, SequencedRecord, StoredPayload, check_range
from delite.store._sealed import Keyring, SealedStore
from delite.store._views import ExecutionSummary, Page

if TYPE_CHECKING:
    from delite.store._file import FileStore
    from delite.store._memory import MemoryStore

_EXPORTS = {"FileStore": "delite.store._file", "MemoryStore": "delite.store._memory"}

__all__ = [
    "FINISHED",
    "WAITING",
    "Deleted",
    "ExecutionIndex",
    "ExecutionLog",
    "ExecutionSummary",
    "FileStore",
    "FramedRange",
    "Keyring",
    "Layout",
    "ListingQuery",
    "LogStore",
    "MemoryStore",
    "Page",
    "RecordRange",
    "Refused",
    "SealedStore",
    "SequencedRecord",
    "Store",
    "StoredPayload",
    "check_binding",
    "check_deletable",
    "check_force",
    "check_ids",
    "check_range",
    "decode_stored",
    "new_execution_id",
    "open_store",
    "summarize",
    "validate_execution_id",
]


__getattr__, __dir__ = lazy_exports(__name__, globals(), _EXPORTS)
