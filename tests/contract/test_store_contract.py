"""The framed-bytes suite: the behaviour of the stores that keep the file format's bytes (file and memory).

It writes raw frames and torn tails behind the store's back, so it is for stores of framed logs only; the
interface contracts every store passes, a store of rows included, are ``test_log_store_contract.py`` and
``test_index_contract.py`` (see ``docs/architecture.md``). A framed store subclasses :class:`StoreContract`,
implements ``make_store``, ``second_handle``, ``write_raw``, ``overwrite_raw`` and ``spoil_kept_outcome``,
says whether it keeps outcomes (``keeps_outcomes``), and must pass every test here unchanged.

Kept outcomes (``ExecutionLog.save_outcome`` / ``ExecutionLog.outcome``) are derived data: a store may keep none
(then ``outcome`` is always None, as the base class documents) or keep one that the next claim returns only while
the log is, byte for byte, the log it was offered for. The file store keeps them (``snapshots/<id>.snap``, for
logs of 64 KiB or more), so the tests here use logs larger than that.
"""

from __future__ import annotations

import abc
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import ClassVar

import pytest

from delite import Agent, ScriptedProvider, tool
from delite.errors import (
    ClaimTimeoutError,
    ExecutionAlreadyClaimedError,
    ExecutionNotFoundError,
    InvalidExecutionIdError,
    StoreError,
    UsageError,
)
from delite.log import parse_log
from delite.log._codec import encode_record
from delite.log._framing import encode_frame
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
from delite.state._fold import fold
from delite.state._outcome import outcome
from delite.store import FileStore, MemoryStore, Store
from delite.store import _snapshot as snapshot


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
# A tool result that makes a log well over 64 KiB (a store may keep outcomes only for large logs).
BLOB = "x" * (160 * 1024)
SPOILS = ["flip-a-byte", "other-answer", "torn", "empty", "of-another-execution"]


def finished(eid: str, answer: str = "done") -> list[Record]:
    """A finished execution with a large log; ``answer`` changes the last two records."""
    big = ToolFinished(at=4.0, call_id="c1.0", result={"blob": BLOB})
    return [
        started(eid),
        *STEP,
        big,
        ModelResponded(at=5.0, step=2, content=answer),
        ExecutionCompleted(at=6.0, answer=answer),
    ]


def wait_until(condition: Callable[[], bool], deadline: float = 30.0) -> bool:
    """Poll ``condition`` until it holds (True) or ``deadline`` seconds pass (False)."""
    end = time.monotonic() + deadline
    while not condition():
        if time.monotonic() > end:
            return False
        time.sleep(0.001)
    return True


def in_function(thread: threading.Thread, name: str) -> bool:
    """Whether ``thread`` is running, right now, inside a function called ``name`` (anywhere on its stack)."""
    frame = sys._current_frames().get(thread.ident or -1)
    while frame is not None:
        if frame.f_code.co_name == name:
            return True
        frame = frame.f_back
    return False


BLOCKING = ("wait", "acquire", "sleep", "select", "poll")  # in the names of the usual ways to block


def blocked_in(thread: threading.Thread, name: str) -> bool:
    """Whether ``thread`` is inside ``name`` and its innermost Python frame looks like a blocking call."""
    frame = sys._current_frames().get(thread.ident or -1)
    inner = frame.f_code.co_name if frame is not None else ""
    return any(word in inner for word in BLOCKING) and in_function(thread, name)


class StoreContract(abc.ABC):
    """The behaviour every store shares. Subclasses say how to build one and how to damage its bytes."""

    @abc.abstractmethod
    def make_store(self, tmp_path: Path) -> Store:
        """A fresh, empty store."""

    @abc.abstractmethod
    def second_handle(self, store: Store, tmp_path: Path) -> Store:
        """Another handle on the same executions, as a second process or worker would hold."""

    keeps_outcomes: ClassVar[bool]
    """Whether the store keeps an offered outcome for the next claim (else ``outcome`` is always None)."""

    @abc.abstractmethod
    def write_raw(self, store: Store, execution_id: str, data: bytes) -> None:
        """Append raw bytes to an execution's log behind the store's back (a crash mid-append)."""

    @abc.abstractmethod
    def overwrite_raw(self, store: Store, execution_id: str, find: bytes, replace: bytes) -> None:
        """Replace the first ``find`` in the log's bytes by ``replace`` (same length) behind the store's back."""

    @abc.abstractmethod
    def spoil_kept_outcome(self, store: Store, execution_id: str, how: str, other: str) -> None:
        """Damage what the store kept for ``execution_id`` behind its back, one of :data:`SPOILS`.

        ``of-another-execution`` puts what was kept for ``other`` (a finished execution) in its place.
        A store that keeps nothing has nothing to spoil.
        """

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
        got: list[list[Record]] = []
        errors: list[BaseException] = []

        def claimant() -> None:
            try:
                with other.claim("e1", timeout=30) as mine:
                    got.append(list(mine.records))
            except BaseException as e:  # pragma: no cover - reported below
                errors.append(e)

        waiter = threading.Thread(target=claimant)
        waiter.start()
        try:
            # Release only once the claimant is inside claim() while the execution is still held, and waiting
            # there if it can be seen to (a known blocking call under claim(); a store that blocks some other
            # way is released after a moment anyway): it must be woken rather than time out. What is asserted
            # below does not depend on when the release lands.
            assert wait_until(lambda: in_function(waiter, "claim")), "the claimant never called claim()"
            wait_until(lambda: blocked_in(waiter, "claim"), deadline=5.0)
            assert store.is_claimed("e1") and not got
        finally:
            log.release()
            waiter.join(30)
        assert errors == []
        assert got == [[started("e1"), *STEP]]

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

    # -- kept outcomes ---------------------------------------------------------------------------------

    def finish(self, store: Store, eid: str, answer: str = "done") -> list[Record]:
        """Write a finished execution with a large log and offer its outcome; return its records."""
        records = finished(eid, answer)
        with store.claim(eid, create=records[:1]) as log:
            log.append(records[1:], barrier=True)
            log.save_outcome(outcome(fold(records)))
        return records

    def test_an_offered_outcome_is_kept_for_the_next_claim(self, store: Store, tmp_path: Path) -> None:
        records = self.finish(store, "e1")
        expected = outcome(fold(records))
        assert expected.answer == "done"
        with self.second_handle(store, tmp_path).claim("e1") as log:
            if self.keeps_outcomes:
                assert log.outcome == expected
            else:
                assert log.outcome is None  # a store that keeps nothing says so
            assert log.records == records  # the records are all there either way
            assert log.torn is None
        assert store.read("e1").records == records

    def test_an_outcome_is_kept_per_execution(self, store: Store) -> None:
        one, two = self.finish(store, "e1", "one"), self.finish(store, "e2", "two")
        for eid, records in (("e1", one), ("e2", two)):
            with store.claim(eid) as log:
                assert log.outcome == (outcome(fold(records)) if self.keeps_outcomes else None)

    def test_a_kept_outcome_is_dropped_when_the_log_moves_on(self, store: Store) -> None:
        records = self.finish(store, "e1")
        with store.claim("e1") as log:
            log.append([ExecutionResumed(at=7.0)])  # the log moves on; what was kept no longer describes it
        moved = [*records, ExecutionResumed(at=7.0)]
        with store.claim("e1") as log:
            assert log.outcome is None
            assert log.records == moved
            # Offered again for the log as it is now: a kept outcome is bound to the log's last record being its
            # terminal one (the answer is checked against it), so a log that moved on past it keeps none.
            log.save_outcome(outcome(fold(moved)))
        with store.claim("e1") as log:
            assert log.outcome is None
            assert log.records == moved

    def test_a_kept_outcome_never_hides_a_torn_tail(self, store: Store) -> None:
        records = self.finish(store, "e1")
        self.write_raw(store, "e1", encode_frame(encode_record(ExecutionResumed(at=7.0)))[:9])
        with store.claim("e1") as log:
            assert log.outcome is None
            assert log.torn is not None
            assert log.records == records
        with store.claim("e1") as log:  # the claim cut the tail: the log is the one the outcome was kept for
            assert log.torn is None
            assert log.records == records

    def test_a_kept_outcome_never_hides_damage_in_the_log(self, store: Store) -> None:
        self.finish(store, "e1")
        self.overwrite_raw(store, "e1", b"xxxxxxxx", b"xxxxyxxx")  # same size, inside the tool's result
        with pytest.raises(StoreError):
            store.read("e1")
        with pytest.raises(StoreError):
            store.claim("e1")
        assert not store.is_claimed("e1")

    @pytest.mark.parametrize("how", SPOILS)
    def test_a_spoiled_kept_outcome_is_ignored(self, store: Store, tmp_path: Path, how: str) -> None:
        records = self.finish(store, "e1")
        self.finish(store, "e2", "a forged answer")
        self.spoil_kept_outcome(store, "e1", how, "e2")
        with self.second_handle(store, tmp_path).claim("e1") as log:
            assert log.outcome is None  # never the damaged or foreign one
            assert log.records == records
            log.save_outcome(outcome(fold(records)))  # rebuilt from the log
        with store.claim("e1") as log:
            assert log.outcome == (outcome(fold(records)) if self.keeps_outcomes else None)

    def test_a_finished_run_keeps_its_outcome_and_answers_from_the_log(self, store: Store) -> None:
        """End to end through an agent: the run offers its outcome, a run again answers the same."""

        @tool
        def fetch(i: int) -> dict:
            """A large result."""
            return {"blob": BLOB, "i": i}

        def agent() -> Agent:
            return Agent(store=store, provider=ScriptedProvider.tool_loop(1, "fetch"), tools=[fetch])

        first = agent().run("go", execution_id="run-1")
        assert first.status.value == "completed"
        self.finish(store, "other", "a forged answer")
        with store.claim("run-1") as log:
            expected = outcome(fold(log.records))
            assert log.outcome == (expected if self.keeps_outcomes else None)
        assert agent().run("go", execution_id="run-1") == first
        assert agent().resume("run-1") == first
        for how in SPOILS:
            self.spoil_kept_outcome(store, "run-1", how, "other")
            assert agent().run("go", execution_id="run-1") == first  # the log's answer, never another

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
    keeps_outcomes = False  # documented: the default save_outcome keeps nothing

    def make_store(self, tmp_path: Path) -> Store:
        return MemoryStore()

    def second_handle(self, store: Store, tmp_path: Path) -> Store:
        return store  # a memory store is shared by reference; its claims are per store

    def write_raw(self, store: Store, execution_id: str, data: bytes) -> None:
        assert isinstance(store, MemoryStore)
        store.logs[execution_id] += data

    def overwrite_raw(self, store: Store, execution_id: str, find: bytes, replace: bytes) -> None:
        assert isinstance(store, MemoryStore) and len(find) == len(replace)
        log = store.logs[execution_id]
        at = log.find(find)
        assert at >= 0, find
        log[at : at + len(find)] = replace

    def spoil_kept_outcome(self, store: Store, execution_id: str, how: str, other: str) -> None:
        assert how in SPOILS  # nothing is kept, so there is nothing to spoil


class TestFileStore(StoreContract):
    keeps_outcomes = True  # snapshots/<id>.snap

    def make_store(self, tmp_path: Path) -> Store:
        return FileStore(tmp_path / "data")

    def second_handle(self, store: Store, tmp_path: Path) -> Store:
        return FileStore(tmp_path / "data")

    def write_raw(self, store: Store, execution_id: str, data: bytes) -> None:
        assert isinstance(store, FileStore)
        with open(store.layout.log(execution_id), "ab") as f:
            f.write(data)

    def overwrite_raw(self, store: Store, execution_id: str, find: bytes, replace: bytes) -> None:
        assert isinstance(store, FileStore) and len(find) == len(replace)
        path = Path(store.layout.log(execution_id))
        data = path.read_bytes()
        assert find in data, find
        path.write_bytes(data.replace(find, replace, 1))

    def spoil_kept_outcome(self, store: Store, execution_id: str, how: str, other: str) -> None:
        assert isinstance(store, FileStore)
        path = Path(store.layout.snapshot(execution_id))
        if not path.exists():  # a log whose tally answers for it gets none: make the one it would have had
            data = Path(store.layout.log(execution_id)).read_bytes()
            contents = parse_log(data)
            told = outcome(fold(contents.records))
            assert snapshot.save(
                str(path), store.layout.log(execution_id), len(data), told, last_offset=contents.offsets[-1]
            )
        good = path.read_bytes()  # a finished execution with a large log has a snapshot now: it must exist
        if how == "flip-a-byte":
            spoiled = good[:-1] + bytes([good[-1] ^ 1])
        elif how == "other-answer":  # the same length, so only a check of the content can tell
            assert b'"done"' in good, good[:200]
            spoiled = good.replace(b'"done"', b'"dune"')
        elif how == "torn":
            spoiled = good[: len(good) // 2]
        elif how == "empty":
            spoiled = b""
        else:
            spoiled = Path(store.layout.snapshot(other)).read_bytes()
        assert spoiled != good
        path.write_bytes(spoiled)
