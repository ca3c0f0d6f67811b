"""How the contract suites build each store: one fixture class per implementation, shared by every suite.

A new backend adds one class here (``make_store`` and ``second_handle``) and lists it in :data:`STORES`.
"""

from __future__ import annotations

from pathlib import Path

from delite.store import FileStore, MemoryStore, Store


class MemoryStores:
    """The memory store: a second handle is the same object (claims are per store)."""

    name = "memory"

    def make_store(self, tmp_path: Path) -> Store:
        return MemoryStore()

    def second_handle(self, store: Store, tmp_path: Path) -> Store:
        return store


class FileStores:
    """The file store: a second handle is another FileStore on the same directory (as another process has)."""

    name = "file"

    def make_store(self, tmp_path: Path) -> Store:
        return FileStore(tmp_path / "data")

    def second_handle(self, store: Store, tmp_path: Path) -> Store:
        assert isinstance(store, FileStore)
        return FileStore(store.layout.root)
