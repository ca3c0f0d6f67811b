"""One suite of behaviour every :class:`~delite.store.Store` must have, run against each implementation.

A new backend (a PostgreSQL store, say) subclasses :class:`StoreContract`, implements ``make_store``,
``second_handle`` and ``write_raw``, and must pass every test here unchanged.
"""

from __future__ import annotations

import abc
import threading
import time
from pathlib import Path

import pytest

from delite.errors import (
    ClaimTimeoutError,
    ExecutionAlreadyClaimedError,
    ExecutionNotFoundError,
    InvalidExecutionIdError,
    StoreError,
    UsageError,
)
from delite.log.codec import encode_record
from delite.log.framing import encode_frame
from delite.log.records import (
    ExecutionCompleted,
    ExecutionResumed,
    ExecutionStarted,
    ModelResponded,
    Record,
    RecordedToolCall,
    ToolFinished,
    ToolStarted,
)
from delite.state.fold import fold
from delite.state.outcome import outcome
from delite.store import FileStore, MemoryStore, Store


def started(eid: str, text: str = "hello") -> ExecutionStarted:
    return ExecutionStarted(at=1.0, execution_id=eid, input=text)


STEP: list[Record] = [
    ModelResponded(at=2.0, step=1, tool_calls=[RecordedToolCall(id="c1.0", name="t", arguments={"x": 1})]),
    ToolStarted(at=3.0, call_id="c1.0", idempotency_key="e:c1.0"),
]
FINISH: list[Record] = [
    ToolFinished(at=4.0, call_id="c1.0", result={"ok": True}),
    ModelResponded(at=5.0, step=2, content="done"),
    ExecutionCompleted(at=6.0, answer="done"),
]


class StoreContract(abc.ABC):
    """The behaviour every store shares. Subclasses say how to build one and how to damage its bytes."""

    @abc.abstractmethod
    def make_store(self, tmp_path: Path) -> Store:
        """A fresh, empty store."""

    @abc.abstractmethod
    def second_handle(self, store: Store, tmp_path: Path) -> Store:
        """Another handle on the same executions, as a second process or worker would hold."""

    @abc.abstractmethod
    def write_raw(self, store: Store, execution_id: str, data: bytes) -> None:
        """Append raw bytes to an execution's log behind the store's back (a crash mid-append)."""

    @pytest.fixture
    def store(self, tmp_path: Path) -> Store:
        s = self.make_store(tmp_path)
        yield s
        s.close()

    # -- create and read ---------------------------------------------------------------------------------

    def test_empty_store(self, store: Store) -> None:
        assert store.list_ids() == []
        assert not store.exists("nope")
        assert not store.is_claimed("nope")
        with pytest.raises(ExecutionNotFoundError):
            store.read("nope")
        with pytest.raises(ExecutionNotFoundError):
            store.claim("nope")

    def test_claim_with_create_makes_the_execution(self, store: Store) -> None:
        with store.claim("e1", create=[started("e1")]) as log:
            assert log.created
            assert log.execution_id == "e1"
            assert log.records == [started("e1")]
            assert log.torn is None
            assert store.exists("e1")
        contents = store.read("e1")
        assert contents.records == [started("e1")]
        assert contents.torn is None

    def test_create_on_an_existing_execution_claims_it_as_it_is(self, store: Store) -> None:
        with store.claim("e1", create=[started("e1", "first")]) as log:
            log.append(STEP)
        with store.claim("e1", create=[started("e1", "second")]) as log:
            assert not log.created
            assert log.records == [started("e1", "first"), *STEP]

    def test_append_then_read_and_claim_again(self, store: Store) -> None:
        with store.claim("e1", create=[started("e1")]) as log:
            log.append(STEP, barrier=True)
            log.append(FINISH[:1])
            log.append(FINISH[1:], barrier=True)
        assert store.read("e1").records == [started("e1"), *STEP, *FINISH]
        with store.claim("e1") as log:
            assert not log.created
            assert log.records == [started("e1"), *STEP, *FINISH]

    def test_empty_append_changes_nothing(self, store: Store) -> None:
        with store.claim("e1", create=[started("e1")]) as log:
            log.append([])
        assert store.read("e1").records == [started("e1")]

    def test_list_ids_is_sorted(self, store: Store) -> None:
        for eid in ("b", "c", "a-1", "a"):
            store.claim(eid, create=[started(eid)]).release()
        assert store.list_ids() == ["a", "a-1", "b", "c"]
        assert all(store.exists(e) for e in ("a", "a-1", "b", "c"))

    def test_executions_are_independent(self, store: Store) -> None:
        with store.claim("e1", create=[started("e1")]) as one, store.claim("e2", create=[started("e2")]):
            one.append(STEP)
            assert store.is_claimed("e1")
            assert store.is_claimed("e2")
        assert store.read("e1").records == [started("e1"), *STEP]
        assert store.read("e2").records == [started("e2")]

    def test_append_after_release_is_refused(self, store: Store) -> None:
        log = store.claim("e1", create=[started("e1")])
        log.release()
        log.release()  # idempotent
        with pytest.raises(UsageError, match="released"):
            log.append(STEP)
        assert store.read("e1").records == [started("e1")]

    @pytest.mark.parametrize("bad", ["../x", "a/b", "", "x" * 129, "a\nb", ".."])
    def test_hostile_ids_are_refused(self, store: Store, bad: str) -> None:
        with pytest.raises(InvalidExecutionIdError):
            store.claim(bad, create=[started(bad)])
        with pytest.raises(InvalidExecutionIdError):
            store.read(bad)
        assert store.list_ids() == []

    # -- claims ------------------------------------------------------------------------------------------

    def test_a_held_claim_conflicts(self, store: Store, tmp_path: Path) -> None:
        other = self.second_handle(store, tmp_path)
        with store.claim("e1", create=[started("e1")]):
            assert store.is_claimed("e1")
            assert other.is_claimed("e1")
            with pytest.raises(ExecutionAlreadyClaimedError) as info:
                other.claim("e1")
            assert info.value.http_status == 409
            with pytest.raises(ExecutionAlreadyClaimedError):
                other.claim("e1", create=[started("e1")])
            with pytest.raises(ClaimTimeoutError):
                other.claim("e1", timeout=0.05)
        assert not store.is_claimed("e1")
        with other.claim("e1") as log:
            assert log.records == [started("e1")]

    def test_a_waiting_claim_gets_it_when_released(self, store: Store, tmp_path: Path) -> None:
        other = self.second_handle(store, tmp_path)
        log = store.claim("e1", create=[started("e1")])
        log.append(STEP)
        releaser = threading.Timer(0.1, log.release)
        releaser.start()
        try:
            with other.claim("e1", timeout=10) as mine:
                assert mine.records == [started("e1"), *STEP]
        finally:
            releaser.join()

    def test_the_claim_is_released_when_the_block_raises(self, store: Store) -> None:
        with pytest.raises(RuntimeError), store.claim("e1", create=[started("e1")]):
            raise RuntimeError
        assert not store.is_claimed("e1")
        store.claim("e1").release()

    def test_racing_creators_both_end_up_with_one_execution(self, store: Store, tmp_path: Path) -> None:
        other = self.second_handle(store, tmp_path)
        created = []
        errors: list[BaseException] = []

        def create(s: Store, text: str) -> None:
            try:
                with s.claim("e1", create=[started("e1", text)], timeout=10) as log:
                    created.append(log.created)
                    time.sleep(0.01)
            except BaseException as e:  # pragma: no cover - reported below
                errors.append(e)

        threads = [threading.Thread(target=create, args=(s, t)) for s, t in ((store, "a"), (other, "b"))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        assert sorted(created) == [False, True]
        assert len(store.read("e1").records) == 1

    # -- kept outcomes -----------------------------------------------------------------------------------

    def test_a_kept_outcome_always_matches_the_log(self, store: Store) -> None:
        records = [started("e1"), *STEP, *FINISH]
        with store.claim("e1", create=records[:1]) as log:
            log.append(records[1:], barrier=True)
            log.save_outcome(outcome(fold(records)))
        with store.claim("e1") as log:
            assert log.outcome is None or log.outcome == outcome(fold(log.records))
            log.append([ExecutionResumed(at=7.0)])  # the log moves on; what was kept no longer describes it
        with store.claim("e1") as log:
            assert log.records == [*records, ExecutionResumed(at=7.0)]
            assert log.outcome is None or log.outcome == outcome(fold(log.records))

    # -- cancel markers ----------------------------------------------------------------------------------

    def test_cancel_markers(self, store: Store, tmp_path: Path) -> None:
        other = self.second_handle(store, tmp_path)
        store.claim("e1", create=[started("e1")]).release()
        assert not store.cancel_requested("e1")
        other.request_cancel("e1")
        assert store.cancel_requested("e1")
        assert not store.cancel_requested("e2")
        store.request_cancel("e1")  # asking twice is the same as once
        store.clear_cancel("e1")
        assert not store.cancel_requested("e1")
        assert not other.cancel_requested("e1")
        store.clear_cancel("e1")  # idempotent

    # -- torn tails --------------------------------------------------------------------------------------

    @pytest.mark.parametrize("cut", [1, 5, 12, 13, -1])
    def test_a_torn_tail_is_reported_by_read_and_repaired_by_claim(self, store: Store, cut: int) -> None:
        with store.claim("e1", create=[started("e1")]) as log:
            log.append(STEP)
        frame = encode_frame(encode_record(FINISH[0]))
        self.write_raw(store, "e1", frame[:cut])

        seen = store.read("e1")  # reading reports the tail and changes nothing
        assert seen.records == [started("e1"), *STEP]
        assert seen.torn is not None
        assert seen.torn.offset == seen.end
        assert store.read("e1").torn == seen.torn

        with store.claim("e1") as log:
            assert log.records == [started("e1"), *STEP]
            assert log.torn == seen.torn
            log.append(FINISH)
        after = store.read("e1")
        assert after.torn is None
        assert after.records == [started("e1"), *STEP, *FINISH]

    def test_damage_before_the_tail_is_an_error_not_a_repair(self, store: Store) -> None:
        with store.claim("e1", create=[started("e1")]) as log:
            log.append(STEP)
        frame = encode_frame(encode_record(FINISH[0]))
        self.write_raw(store, "e1", b"\xff" * 16 + frame)
        with pytest.raises(StoreError, match="byte"):
            store.read("e1")
        with pytest.raises(StoreError):
            store.claim("e1")
        assert not store.is_claimed("e1")


class TestMemoryStore(StoreContract):
    def make_store(self, tmp_path: Path) -> Store:
        return MemoryStore()

    def second_handle(self, store: Store, tmp_path: Path) -> Store:
        return store  # a memory store is shared by reference; its claims are per store

    def write_raw(self, store: Store, execution_id: str, data: bytes) -> None:
        assert isinstance(store, MemoryStore)
        store.logs[execution_id] += data


class TestFileStore(StoreContract):
    def make_store(self, tmp_path: Path) -> Store:
        return FileStore(tmp_path / "data")

    def second_handle(self, store: Store, tmp_path: Path) -> Store:
        return FileStore(tmp_path / "data")

    def write_raw(self, store: Store, execution_id: str, data: bytes) -> None:
        assert isinstance(store, FileStore)
        with open(store.layout.log(execution_id), "ab") as f:
            f.write(data)
