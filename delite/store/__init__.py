"""The store layer: where logs live and who may advance an execution."""

# FileStore and MemoryStore are imported on first use (PEP 562), so that reading a data directory
# (``delite.datadir``, the ``delite`` command) does not import filelock. Add new names to ``_EXPORTS`` too.

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from delite.store.base import ExecutionLog, LogStore, Store
from delite.store.ids import new_execution_id, validate_execution_id
from delite.store.layout import Layout
from delite.store.query import WAITING, ExecutionIndex
from delite.store.records import FramedRange, RecordRange, SequencedRecord

if TYPE_CHECKING:
    from delite.store.file import FileStore
    from delite.store.memory import MemoryStore

_EXPORTS = {"FileStore": "delite.store.file", "MemoryStore": "delite.store.memory"}

__all__ = [
    "WAITING",
    "ExecutionIndex",
    "ExecutionLog",
    "FileStore",
    "FramedRange",
    "Layout",
    "LogStore",
    "MemoryStore",
    "RecordRange",
    "SequencedRecord",
    "Store",
    "new_execution_id",
    "validate_execution_id",
]


def __getattr__(name: str) -> Any:
    """Import an exported name on first use."""
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'delite.store' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
