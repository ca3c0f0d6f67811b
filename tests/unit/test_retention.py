"""Retention and erasure through the read API: ``DataDir.gc``, ``DataDir.delete`` and the file store's leftovers."""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

import pytest

from delite import Agent, DataDir, ScriptedProvider
from delite.datadir._retention import parse_duration
from delite.errors import (
    ExecutionNotFinishedError,
    ExecutionNotFoundError,
    InvalidExecutionIdError,
    StoreError,
    UsageError,
)
from delite.store import FileStore, MemoryStore, Store
from delite.store import _tally as tally


def _done(where: Path | Store, eid: str, text: str = "hi", *, key: str | None = None) -> None:
    store = where if isinstance(where, Store) else None
    data = None if isinstance(where, Store) else where
    agent = Agent(data, store=store, provider=ScriptedProvider(["answer"]))
    assert agent.run(text, execution_id=eid, idempotency_key=key).answer == "answer"


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("30d", 30 * 86400), ("12h", 43200), ("90m", 5400), ("45s", 45), ("1w2d", 9 * 86400), ("1.5h", 5400), ("0s", 0)],
)
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("bad", ["30", "d", "3x", "-1d", "1d 2h", "", "inf", True, None, [1], float("nan"), -5])
def test_bad_durations(bad: object) -> None:
    with pytest.raises(UsageError):
        parse_duration(bad)


def test_durations_as_numbers_and_timedeltas() -> None:
    assert parse_duration(timedelta(days=2)) == 172800
    assert parse_duration(90) == 90


def test_an_idempotency_key_can_be_used_again_after_its_execution_is_deleted(tmp_path: Path) -> None:
    _done(tmp_path, "first", "one input", key="order-7")
    data = DataDir(tmp_path)
    report = data.delete("first")
    assert [d.id for d in report.deleted] == ["first"]
    assert data.store.lookup_key("order-7") is None
    # Another input under the same key is no conflict any more: the key binds again.
    _done(tmp_path, "second", "another input", key="order-7")
    assert data.store.lookup_key("order-7") is not None
    assert data.ids() == ["second"]


def test_gc_on_a_memory_store_with_a_timedelta(tmp_path: Path) -> None:
    store = MemoryStore()
    _done(store, "a")
    _done(store, "b")
    data = DataDir(store)
    assert data.gc(timedelta(hours=1)).executions == 0  # they are recent
    report = data.gc(timedelta(0), dry_run=True)
    assert report.dry_run and report.executions == 2 and report.bytes > 0
    assert data.ids() == ["a", "b"]
    report = data.gc(0)
    assert sorted(d.id for d in report.deleted) == ["a", "b"]
    assert report.cutoff is not None
    assert data.ids() == []


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"statuses": "running"}, UsageError),
        ({"statuses": ["completed", "nope"]}, UsageError),
        ({"statuses": []}, UsageError),
        ({"dry_run": "yes"}, UsageError),
        ({"force": 1}, UsageError),
    ],
)
def test_gc_refuses_bad_arguments_before_anything_is_removed(
    tmp_path: Path, kwargs: dict[str, object], error: type
) -> None:
    _done(tmp_path, "a")
    data = DataDir(tmp_path)
    with pytest.raises(error):
        data.gc("0s", **kwargs)  # type: ignore[arg-type]
    assert data.ids() == ["a"]


def test_delete_refuses_bad_arguments(tmp_path: Path) -> None:
    _done(tmp_path, "a")
    data = DataDir(tmp_path)
    with pytest.raises(InvalidExecutionIdError):
        data.delete("../a")
    with pytest.raises(UsageError):
        data.delete("a", children="yes")  # type: ignore[arg-type]
    with pytest.raises(ExecutionNotFoundError):
        data.delete("b")
    assert data.ids() == ["a"]


def test_a_store_that_cannot_delete_says_so(tmp_path: Path) -> None:
    class Frozen(MemoryStore):
        delete_execution = Store.delete_execution

    store = Frozen()
    _done(store, "a")
    with pytest.raises(StoreError, match="cannot delete"):
        store.delete_execution("a")
    assert store.exists("a")


def test_the_index_row_and_snapshot_are_gone_and_the_index_holds_no_trace(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A log over 64 KiB that its tally cannot answer for (as one written before tallies) gets a snapshot.
    monkeypatch.setattr(tally, "tells", lambda *args, **kwargs: False)
    secret = "card 4111-1111-1111-1111 " + "y" * 70_000
    _done(tmp_path, "a", secret)
    _done(tmp_path, "b")
    data = DataDir(tmp_path)
    assert {s.id for s in data.list()} == {"a", "b"}  # the index holds a's summary (its input, cut)
    layout = FileStore(tmp_path).layout
    assert os.path.exists(layout.snapshot("a"))
    assert b"4111-1111" in Path(layout.index).read_bytes()
    report = data.delete("a")
    assert report.deleted[0].bytes is not None and report.deleted[0].bytes > 70_000
    assert not os.path.exists(layout.snapshot("a"))
    assert b"4111-1111" not in Path(layout.index).read_bytes()  # secure_delete overwrote the row
    assert sorted(os.listdir(layout.executions)) == ["b.log"]
    assert not os.path.exists(layout.claim("a"))
    assert data.health().healthy


def test_a_half_done_deletion_is_reported_and_finished(tmp_path: Path) -> None:
    """As a SIGKILL right after the rename leaves it: a tombstone, the key file and the cancel marker."""
    _done(tmp_path, "a", key="k-a")
    _done(tmp_path, "b", key="k-b")
    store = FileStore(tmp_path)
    store.request_cancel("a")
    layout = store.layout
    os.rename(layout.log("a"), os.path.join(layout.executions, "a.deleting"))
    data = DataDir(tmp_path)
    assert data.ids() == ["b"]
    assert [s.id for s in data.list()] == ["b"]
    report = data.health()
    assert report.healthy
    assert [p.kind for p in report.problems if p.kind == "deletion-unfinished"] == ["deletion-unfinished"]
    repaired = data.health(repair=True)
    assert repaired.healthy and not [p for p in repaired.problems if p.kind == "deletion-unfinished"]
    assert sorted(os.listdir(layout.executions)) == ["b.log"]
    assert store.lookup_key("k-a") is None and store.lookup_key("k-b") is not None
    assert not store.cancel_requested("a")


def test_the_next_deletion_finishes_a_half_done_one_but_spares_a_reused_id(tmp_path: Path) -> None:
    _done(tmp_path, "a", key="k-a")
    _done(tmp_path, "c")
    store = FileStore(tmp_path)
    layout = store.layout
    os.rename(layout.log("a"), os.path.join(layout.executions, "a.deleting"))
    _done(tmp_path, "a", "a new run under the old id", key="k-new")  # the id is used again meanwhile
    store.delete_execution("c")
    assert sorted(os.listdir(layout.executions)) == ["a.log"]
    assert store.read("a").records[0].input == "a new run under the old id"  # type: ignore[union-attr]
    assert store.lookup_key("k-new") == ("a", store.lookup_key("k-new")[1])  # type: ignore[index]


def test_delete_children_is_checked_whole_before_anything_is_removed(tmp_path: Path) -> None:
    from delite.log.records import ExecutionStarted

    _done(tmp_path, "p")
    store = FileStore(tmp_path)
    store.create("p:c1.0", [ExecutionStarted(at=1.0, execution_id="p:c1.0", input="sub", parent_id="p")])
    data = DataDir(tmp_path)
    with pytest.raises(ExecutionNotFinishedError):
        data.delete("p", children=True)
    assert data.ids() == ["p", "p:c1.0"]
    report = data.delete("p", children=True, force=True)
    assert [d.id for d in report.deleted] == ["p:c1.0", "p"]
    assert data.ids() == []


def test_a_stray_link_of_a_killed_creator_goes_with_the_log(tmp_path: Path) -> None:
    """A creator killed between linking the log and unlinking its temporary name left the records twice."""
    _done(tmp_path, "a")
    layout = FileStore(tmp_path).layout
    os.link(layout.log("a"), os.path.join(layout.executions, ".a.log.123.abcdef.tmp"))
    DataDir(tmp_path).delete("a")
    assert os.listdir(layout.executions) == []
