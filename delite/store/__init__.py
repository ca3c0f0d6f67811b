"""The store layer: where logs live and who may advance an execution."""

from __future__ import annotations

from delite.store.base import ExecutionLog, Store
from delite.store.file import FileStore
from delite.store.ids import new_execution_id, validate_execution_id
from delite.store.layout import Layout
from delite.store.memory import MemoryStore

__all__ = ["ExecutionLog", "FileStore", "Layout", "MemoryStore", "Store", "new_execution_id", "validate_execution_id"]
