"""The store layer: where logs live, who may advance an execution, and what a listing of executions holds.

:func:`open_store` opens the store a path (a data directory: :class:`FileStore`) or a ``postgresql://`` URL
names; ``Agent``, ``Runtime``, ``DataDir`` and the ``delite`` command all choose their store through it.
"""

# Every name is imported on first use (PEP 562): the engine imports ``delite.store._base`` (which imports this
# package first), and neither it nor the read side (``delite.datadir``, the ``delite`` command) should pay for
# the listing, the derivation, the sealing and filelock before a store is opened. Add new names to
# ``_EXPORTS``, to the ``TYPE_CHECKING`` block and to ``__all__``.

from __future__ import annotations

from typing import TYPE_CHECKING

from delite._lazy import lazy_exports

if TYPE_CHECKING:
    from delite.store._base import ExecutionLog, LogStore, Store, decode_stored
    from delite.store._derive import summarize
    from delite.store._erase import FINISHED, Deleted, Refused, check_deletable, check_force
    from delite.store._file import FileStore
    from delite.store._ids import new_execution_id, validate_execution_id
    from delite.store._layout import Layout
    from delite.store._memory import MemoryStore
    from delite.store._open import open_store
    from delite.store._query import WAITING, ExecutionIndex, ListingQuery, check_binding, check_ids
    from delite.store._records import FramedRange, RecordRange, SequencedRecord, StoredPayload, check_range
    from delite.store._sealed import Keyring, SealedStore
    from delite.store._views import ExecutionSummary, Page

_EXPORTS = {
    "Deleted": "delite.store._erase",
    "ExecutionIndex": "delite.store._query",
    "ExecutionLog": "delite.store._base",
    "ExecutionSummary": "delite.store._views",
    "FINISHED": "delite.store._erase",
    "FileStore": "delite.store._file",
    "FramedRange": "delite.store._records",
    "Keyring": "delite.store._sealed",
    "Layout": "delite.store._layout",
    "ListingQuery": "delite.store._query",
    "LogStore": "delite.store._base",
    "MemoryStore": "delite.store._memory",
    "Page": "delite.store._views",
    "RecordRange": "delite.store._records",
    "Refused": "delite.store._erase",
    "SealedStore": "delite.store._sealed",
    "SequencedRecord": "delite.store._records",
    "Store": "delite.store._base",
    "StoredPayload": "delite.store._records",
    "WAITING": "delite.store._query",
    "check_binding": "delite.store._query",
    "check_deletable": "delite.store._erase",
    "check_force": "delite.store._erase",
    "check_ids": "delite.store._query",
    "check_range": "delite.store._records",
    "decode_stored": "delite.store._base",
    "new_execution_id": "delite.store._ids",
    "open_store": "delite.store._open",
    "summarize": "delite.store._derive",
    "validate_execution_id": "delite.store._ids",
}

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
