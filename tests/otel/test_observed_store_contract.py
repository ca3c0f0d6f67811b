"""The observed store is a store: every contract suite passes through it, with telemetry on, unchanged.

Each store the suites build is wrapped as ``Agent`` wraps its store under :func:`delite.telemetry.instrument`,
with a live observer on a real SDK tracer, so every append of the suites (odd record sequences included) is
projected into spans; none of it may raise, and the observer must not have swallowed an error either. The one
change the observer makes on purpose, the trace context it adds to an ``execution-started`` record, is left
out here (the suites compare the records they wrote with the ones they read).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "contract"))

import test_store_contract  # the module: its own test classes are not collected here again
from test_index_contract import IndexContract
from test_log_store_contract import LogStoreContract

from delite._telemetry._hook import ObservedStore, observe, set_active
from delite._telemetry._observer import LiveObserver
from delite._telemetry._otel import OtelSink
from delite._telemetry._projection import Options
from delite.store import FileStore, MemoryStore, Store

OBSERVERS: list[LiveObserver] = []


class NoContextSink(OtelSink):
    """Real spans, but no trace context written into the records the suites compare."""

    def context(self, key: str) -> dict[str, str] | None:
        return None


@pytest.fixture(autouse=True)
def _observer() -> Iterator[None]:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(InMemorySpanExporter()))
    observer = LiveObserver(NoContextSink(provider), None, Options(capture_content=True), logs=True)
    OBSERVERS.append(observer)
    set_active(observer)
    yield
    set_active(None)
    OBSERVERS.remove(observer)
    assert observer.errors == 0, observer.last_error


def wrap(store: Store) -> Store:
    observed = observe(store)
    assert isinstance(observed, ObservedStore)
    return observed


def inner(store: Any) -> Any:
    return store.inner if isinstance(store, ObservedStore) else store


class ObservedMemory:
    name = "observed-memory"

    def make_store(self, tmp_path: Path) -> Store:
        return wrap(MemoryStore())

    def second_handle(self, store: Store, tmp_path: Path) -> Store:
        return store


class ObservedFile:
    name = "observed-file"

    def make_store(self, tmp_path: Path) -> Store:
        return wrap(FileStore(tmp_path / "data"))

    def second_handle(self, store: Store, tmp_path: Path) -> Store:
        return wrap(FileStore(tmp_path / "data"))


class TestObservedMemoryLogStore(ObservedMemory, LogStoreContract):
    pass


class TestObservedFileLogStore(ObservedFile, LogStoreContract):
    pass


class TestObservedMemoryIndex(ObservedMemory, IndexContract):
    pass


class TestObservedFileIndex(ObservedFile, IndexContract):
    pass


class TestObservedMemoryStore(test_store_contract.TestMemoryStore):
    def make_store(self, tmp_path: Path) -> Store:
        return wrap(super().make_store(tmp_path))

    def write_raw(self, store: Store, execution_id: str, data: bytes) -> None:
        super().write_raw(inner(store), execution_id, data)

    def overwrite_raw(self, store: Store, execution_id: str, find: bytes, replace: bytes) -> None:
        super().overwrite_raw(inner(store), execution_id, find, replace)

    def spoil_kept_outcome(self, store: Store, execution_id: str, how: str, other: str) -> None:
        super().spoil_kept_outcome(inner(store), execution_id, how, other)


class TestObservedFileStore(test_store_contract.TestFileStore):
    def make_store(self, tmp_path: Path) -> Store:
        return wrap(super().make_store(tmp_path))

    def second_handle(self, store: Store, tmp_path: Path) -> Store:
        return wrap(super().second_handle(store, tmp_path))

    def write_raw(self, store: Store, execution_id: str, data: bytes) -> None:
        super().write_raw(inner(store), execution_id, data)

    def overwrite_raw(self, store: Store, execution_id: str, find: bytes, replace: bytes) -> None:
        super().overwrite_raw(inner(store), execution_id, find, replace)

    def spoil_kept_outcome(self, store: Store, execution_id: str, how: str, other: str) -> None:
        super().spoil_kept_outcome(inner(store), execution_id, how, other)
