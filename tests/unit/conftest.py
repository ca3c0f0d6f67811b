"""Fixtures the unit tests share: counters around the file store's whole-log reads."""

from __future__ import annotations

from typing import Any

import pytest

from delite.store import _file as file_store
from delite.store import _index


@pytest.fixture
def parses(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The sizes of the logs the file store's claims parse whole (read whole, or a chunk at a time)."""
    calls: list[int] = []
    real = file_store.parse_log
    real_stream = file_store.parse_stream

    def counting(data: bytes, *, path: str = "") -> Any:
        calls.append(len(data))
        return real(data, path=path)

    def counting_stream(read: Any, *, path: str = "", start: int = 0) -> Any:
        contents = real_stream(read, path=path, start=start)
        calls.append(contents.size)
        return contents

    monkeypatch.setattr(file_store, "parse_log", counting)
    monkeypatch.setattr(file_store, "parse_stream", counting_stream)
    return calls


@pytest.fixture
def listing_folds(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The ids of the logs the listing index reads and folds whole (``summary_of_log``) to list them."""
    ids: list[str] = []
    real = _index.summary_of_log

    def counting(execution_id: str, data: bytes, *, path: str) -> Any:
        ids.append(execution_id)
        return real(execution_id, data, path=path)

    monkeypatch.setattr(_index, "summary_of_log", counting)
    return ids
