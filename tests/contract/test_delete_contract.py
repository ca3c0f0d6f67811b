"""The contract of :meth:`~delite.store.Store.delete_execution`, run against every store (the toy one included).

A deleted execution is gone for every reader and every handle, with its listing entry, its idempotency keys
(which can be bound again) and its cancel request; a running, suspended or held one is refused with a typed
error and nothing of it is removed, unless forced.
"""

from __future__ import annotations

import abc
from pathlib import Path
from typing import Any

import pytest
from store_fixtures import FileStores, ListStores, MemoryStores, PostgresStores

from delite.errors import (
    ExecutionAlreadyClaimedError,
    ExecutionNotFinishedError,
    ExecutionNotFoundError,
    ExecutionStateError,
    InvalidExecutionIdError,
    UsageError,
)
from delite.log.records import (
    ExecutionCancelled,
    ExecutionCompleted,
    ExecutionFailed,
    ExecutionStarted,
    ExecutionSuspended,
    ModelResponded,
    Record,
    SuspendReason,
)
from delite.store import Deleted, Store

ENDINGS: dict[str, list[Record]] = {
    "running": [],
    "completed": [ModelResponded(at=2.0, step=1, content="ok"), ExecutionCompleted(at=3.0, answer="ok")],
    "failed": [ExecutionFailed(at=3.0, error_type="X", message="boom")],
    "cancelled": [ExecutionCancelled(at=3.0, reason="asked")],
    "waiting_human_input": [ExecutionSuspended(at=3.0, reason=SuspendReason(kind="human_input", question="?"))],
}


def make(store: Store, eid: str, status: str = "completed", **started: Any) -> None:
    """Create an execution in ``status``."""
    first = ExecutionStarted(at=100.0, execution_id=eid, input=f"input of {eid}", **started)
    with store.claim(eid, create=[first]) as log:
        if ENDINGS[status]:
            log.append(ENDINGS[status], expected=1)


def gone(store: Store, eid: str) -> bool:
    """Whether no reader of ``store`` sees the execution any more."""
    with pytest.raises(ExecutionNotFoundError):
        store.read(eid)
    listed = {s.id for s in store.list_executions(limit=None).items}
    return not store.exists(eid) and eid not in store.list_ids() and eid not in listed


class DeleteContract(abc.ABC):
    """Deleting executions, as every store does it."""

    @abc.abstractmethod
    def make_store(self, tmp_path: Path) -> Store:
        """A new, empty store."""

    @abc.abstractmethod
    def second_handle(self, store: Store, tmp_path: Path) -> Store:
        """Another handle on the same data."""

    @pytest.fixture
    def store(self, tmp_path: Path) -> Any:
        s = self.make_store(tmp_path)
        yield s
        s.close()

    @pytest.mark.parametrize("status", ["completed", "failed", "cancelled"])
    def test_a_finished_execution_is_removed_with_its_keys_and_cancel_request(self, store: Store, status: str) -> None:
        make(store, "e-1", status)
        make(store, "e-2")
        store.bind_key("k-1", "e-1", "fp")
        store.bind_key("k-2", "e-2", "fp")
        store.request_cancel("e-1")
        deleted = store.delete_execution("e-1")
        assert isinstance(deleted, Deleted)
        assert (deleted.id, deleted.status) == ("e-1", status)
        assert deleted.bytes is None or deleted.bytes > 0
        assert gone(store, "e-1")
        assert store.lookup_key("k-1") is None
        assert not store.cancel_requested("e-1")
        # The other execution is untouched.
        assert store.read("e-2").head == 3
        assert store.lookup_key("k-2") == ("e-2", "fp")

    def test_another_handle_sees_the_deletion(self, store: Store, tmp_path: Path) -> None:
        make(store, "e-1")
        other = self.second_handle(store, tmp_path)
        assert other.exists("e-1")
        store.delete_execution("e-1")
        assert gone(other, "e-1")

    def test_a_key_can_be_bound_again_and_the_id_used_again(self, store: Store) -> None:
        make(store, "e-1")
        store.bind_key("k", "e-1", "fp-old")
        store.delete_execution("e-1")
        assert store.bind_key("k", "e-9", "fp-new") == ("e-9", "fp-new")
        make(store, "e-1", "running")
        assert store.read("e-1").head == 1
        assert store.list_executions(status="running").total == 1

    @pytest.mark.parametrize("status", ["running", "waiting_human_input"])
    def test_running_or_suspended_is_refused_and_nothing_is_removed(self, store: Store, status: str) -> None:
        make(store, "e-1", status)
        store.bind_key("k", "e-1", "fp")
        store.request_cancel("e-1")
        before = store.read("e-1").records
        with pytest.raises(ExecutionNotFinishedError) as caught:
            store.delete_execution("e-1")
        assert caught.value.current_status == status
        assert isinstance(caught.value, ExecutionStateError)
        assert store.read("e-1").records == before
        assert store.lookup_key("k") == ("e-1", "fp")
        assert store.cancel_requested("e-1")
        assert [s.id for s in store.list_executions().items] == ["e-1"]

    def test_forced_deletes_a_running_one(self, store: Store) -> None:
        make(store, "e-1", "running")
        store.bind_key("k", "e-1", "fp")
        assert store.delete_execution("e-1", force=True).status == "running"
        assert gone(store, "e-1")
        assert store.lookup_key("k") is None

    def test_an_execution_held_by_a_live_owner_is_refused(self, store: Store, tmp_path: Path) -> None:
        make(store, "e-1")
        other = self.second_handle(store, tmp_path)
        with other.claim("e-1"):
            with pytest.raises(ExecutionAlreadyClaimedError):
                store.delete_execution("e-1")
            assert store.read("e-1").head == 3
        store.delete_execution("e-1")
        assert gone(store, "e-1")

    def test_a_missing_execution_is_not_found(self, store: Store) -> None:
        with pytest.raises(ExecutionNotFoundError):
            store.delete_execution("nope")
        make(store, "e-1")
        store.delete_execution("e-1")
        with pytest.raises(ExecutionNotFoundError):
            store.delete_execution("e-1")

    @pytest.mark.parametrize("bad", ["", "../e-1", "a/b", "e-1\x00", "x" * 200, ".", ".."])
    def test_hostile_ids_are_refused_before_anything_is_read(self, store: Store, bad: str) -> None:
        make(store, "e-1")
        with pytest.raises(InvalidExecutionIdError):
            store.delete_execution(bad)
        with pytest.raises(InvalidExecutionIdError):
            store.delete_executions(["e-1", bad])
        assert store.read("e-1").head == 3

    @pytest.mark.parametrize("force", ["yes", 1, None])
    def test_force_must_be_a_bool(self, store: Store, force: Any) -> None:
        make(store, "e-1")
        with pytest.raises(UsageError):
            store.delete_execution("e-1", force=force)
        assert store.exists("e-1")

    def test_several_at_once(self, store: Store) -> None:
        for i, status in enumerate(["completed", "running", "failed", "waiting_human_input", "cancelled"]):
            make(store, f"e-{i}", status)
        deleted, refused = store.delete_executions([f"e-{i}" for i in range(5)] + ["missing"])
        assert sorted(d.id for d in deleted) == ["e-0", "e-2", "e-4"]
        assert sorted((r.id, r.status) for r in refused) == [("e-1", "running"), ("e-3", "waiting_human_input")]
        assert store.list_ids() == ["e-1", "e-3"]
        with pytest.raises(UsageError):
            store.delete_executions("e-1")


class TestMemoryDelete(MemoryStores, DeleteContract):
    pass


class TestFileDelete(FileStores, DeleteContract):
    pass


class TestListDelete(ListStores, DeleteContract):
    pass


class TestPostgresDelete(PostgresStores, DeleteContract):
    pass
