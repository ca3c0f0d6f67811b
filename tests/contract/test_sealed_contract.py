"""The contract suites again, on every store wrapped in a :class:`~delite.store.SealedStore`.

A sealed store must be a store like any other: the same ranged reads, claims, fenced appends, listings and
cancels, on files, in memory, on PostgreSQL and on the toy backend, with every record sealed underneath.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from store_fixtures import FileStores, ListStores, MemoryStores, PostgresStores
from test_index_contract import IndexContract
from test_log_store_contract import LogStoreContract

from delite.store import Keyring, SealedStore, Store

pytest.importorskip("cryptography")

KEYS = Keyring([("old", b"\x01" * 32), ("new", b"\x02" * 32)])


class _Sealed:
    """Wrap the stores the base fixture makes; a second handle is sealed under the same keys."""

    def make_store(self, tmp_path: Path) -> Store:
        return SealedStore(super().make_store(tmp_path), KEYS)  # type: ignore[misc]

    def second_handle(self, store: Store, tmp_path: Path) -> Store:
        assert isinstance(store, SealedStore)
        return SealedStore(super().second_handle(store.inner, tmp_path), KEYS)  # type: ignore[misc]


class SealedMemoryStores(_Sealed, MemoryStores):
    name = "sealed-memory"


class SealedFileStores(_Sealed, FileStores):
    name = "sealed-file"


class SealedListStores(_Sealed, ListStores):
    name = "sealed-list"


class SealedPostgresStores(_Sealed, PostgresStores):
    name = "sealed-postgres"


class TestSealedMemoryLogStore(SealedMemoryStores, LogStoreContract):
    pass


class TestSealedFileLogStore(SealedFileStores, LogStoreContract):
    pass


class TestSealedListLogStore(SealedListStores, LogStoreContract):
    pass


class TestSealedPostgresLogStore(SealedPostgresStores, LogStoreContract):
    pass


class _SealedIndex(IndexContract):
    def test_everything_newest_first(self, fleet: Store) -> None:
        """As unsealed, except that a listing holds no content: the answer is empty, the status is right."""
        page = fleet.list_executions(limit=None)
        assert self.ids(page) == ["a-child", "b-wait", "b-cancel", "b-fail", "a-done", "a-run"]
        summary = {s.id: s for s in page}
        assert summary["a-done"].status == "completed" and summary["a-done"].answer == ""
        assert summary["a-done"].input == ""
        assert summary["b-wait"].status == "waiting_human_input"
        assert summary["a-run"].metadata == {"thread": "t1", "n": 1}
        assert summary["a-child"].parent_id == "a-run"
        assert fleet.read("a-done").records[-1].answer == "ok"  # type: ignore[union-attr]


class TestSealedMemoryIndex(SealedMemoryStores, _SealedIndex):
    pass


class TestSealedFileIndex(SealedFileStores, _SealedIndex):
    pass


class TestSealedListIndex(SealedListStores, _SealedIndex):
    pass


class TestSealedPostgresIndex(SealedPostgresStores, _SealedIndex):
    pass
