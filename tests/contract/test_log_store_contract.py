"""The record-level contract of :class:`~delite.store.LogStore`, run against every store.

It speaks records and sequence numbers only: no bytes, offsets or torn tails (those are the file store's, in
``test_store_contract.py`` and ``tests/unit/test_log.py``). A new backend subclasses :class:`LogStoreContract`
with its fixture class from ``store_fixtures.py`` and must pass every test here unchanged.
"""

from __future__ import annotations

import abc
import pickle
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from store_fixtures import FileStores, ListStores, MemoryStores, PostgresStores

from delite.errors import (
    ExecutionAlreadyClaimedError,
    ExecutionIdConflictError,
    ExecutionNotFoundError,
    ExecutionStateError,
    InvalidExecutionIdError,
    SequenceConflictError,
    UsageError,
)
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
from delite.store import LogStore, SequencedRecord, Store


def started(eid: str) -> ExecutionStarted:
    return ExecutionStarted(at=1.0, execution_id=eid, input="hello")


STEP: list[Record] = [
    ModelResponded(at=2.0, step=1, tool_calls=[RecordedToolCall(id="c1.0", name="t", arguments={"x": 1})]),
    ToolStarted(at=3.0, call_id="c1.0", idempotency_key="e:c1.0"),
]
FINISH: list[Record] = [
    ToolFinished(at=4.0, call_id="c1.0", result={"ok": True}),
    ModelResponded(at=5.0, step=2, content="done"),
    ExecutionCompleted(at=6.0, answer="done"),
]
ALL = [started("e1"), *STEP, *FINISH]


class LogStoreContract(abc.ABC):
    """Sequence numbers, ranged reads, fenced appends and claims, as every store has them."""

    @abc.abstractmethod
    def make_store(self, tmp_path: Path) -> Store:
        """A new, empty store (each store's fixture class says how)."""

    @abc.abstractmethod
    def second_handle(self, store: Store, tmp_path: Path) -> Store:
        """Another handle on the same data, as a second process would open it."""

    @pytest.fixture
    def store(self, tmp_path: Path) -> Store:
        s = self.make_store(tmp_path)
        yield s
        s.close()

    def full(self, store: LogStore) -> None:
        with store.claim("e1", create=[started("e1")]) as log:
            log.append(STEP, expected=1)
            log.append(FINISH, expected=3, barrier=True)

    # -- sequence numbers and ranged reads --------------------------------------------------------------

    def test_records_are_numbered_from_one(self, store: Store) -> None:
        self.full(store)
        got = store.read("e1")
        assert got.records == ALL
        assert got.after == 0
        assert got.head == got.last == len(ALL)
        assert got.entries == [SequencedRecord(i, r) for i, r in enumerate(ALL, start=1)]
        assert store.head("e1") == len(ALL)

    @pytest.mark.parametrize(("after", "limit"), [(0, None), (1, None), (2, 2), (5, 1), (6, None), (6, 3), (0, 0)])
    def test_a_ranged_read_is_the_slice_after_a_sequence(self, store: Store, after: int, limit: int | None) -> None:
        self.full(store)
        got = store.read("e1", after=after, limit=limit)
        stop = None if limit is None else after + limit
        assert got.records == ALL[after:stop]
        assert got.after == after
        assert got.head == len(ALL)
        assert [e.seq for e in got.entries] == list(range(after + 1, after + 1 + len(got.records)))

    def test_paging_with_after_reads_every_record_once(self, store: Store) -> None:
        self.full(store)
        seen: list[Record] = []
        after = 0
        while True:
            page = store.read("e1", after=after, limit=2)
            if not page.records:
                break
            seen.extend(page.records)
            after = page.last
        assert seen == ALL

    def test_reading_past_the_head_is_empty_not_an_error(self, store: Store) -> None:
        self.full(store)
        got = store.read("e1", after=100)
        assert got.records == []
        assert got.head == len(ALL)

    @pytest.mark.parametrize("bad", [-1, 1.5, "2", True])
    def test_a_bad_range_is_a_usage_error(self, store: Store, bad: object) -> None:
        self.full(store)
        with pytest.raises(UsageError):
            store.read("e1", after=bad)  # type: ignore[arg-type]
        with pytest.raises(UsageError):
            store.read("e1", limit=bad)  # type: ignore[arg-type]

    def test_missing_and_invalid_ids(self, store: Store) -> None:
        with pytest.raises(ExecutionNotFoundError):
            store.read("nope")
        with pytest.raises(ExecutionNotFoundError):
            store.head("nope")
        with pytest.raises(InvalidExecutionIdError):
            store.read("../etc/passwd", after=0)
        assert not store.exists("nope")

    # -- fenced appends -----------------------------------------------------------------------------------

    def test_the_claim_knows_the_head(self, store: Store) -> None:
        with store.claim("e1", create=[started("e1")]) as log:
            assert log.created
            assert log.head == 1
            log.append(STEP)
            assert log.head == 3
        with store.claim("e1") as log:
            assert log.head == 3
            assert log.records == [started("e1"), *STEP]

    @pytest.mark.parametrize("expected", [0, 2, 4, 100])
    def test_an_append_that_expects_another_head_is_a_conflict_and_writes_nothing(
        self, store: Store, expected: int
    ) -> None:
        with store.claim("e1", create=[started("e1")]) as log:
            log.append(STEP, expected=1)
            with pytest.raises(SequenceConflictError) as info:
                log.append(FINISH, expected=expected)
            assert info.value.expected == expected
            assert info.value.actual == 3
            assert info.value.execution_id == "e1"
            assert isinstance(info.value, ExecutionStateError)
            assert info.value.http_status == 409
            assert log.head == 3
            log.append(FINISH, expected=3)  # the right head still works
        assert store.read("e1").records == ALL

    @pytest.mark.parametrize("bad", [-1, True, 1.0, "1"])
    def test_a_bad_expected_sequence_is_a_usage_error_and_writes_nothing(self, store: Store, bad: object) -> None:
        with store.claim("e1", create=[started("e1")]) as log:
            with pytest.raises(UsageError):
                log.append(STEP, expected=bad)  # type: ignore[arg-type]
            assert log.head == 1
        assert store.read("e1").records == [started("e1")]

    def test_a_stale_writer_is_fenced_after_another_claim_appended(self, store: Store, tmp_path: Path) -> None:
        with store.claim("e1", create=[started("e1")]) as log:
            head = log.head
        other = self.second_handle(store, tmp_path)
        with other.claim("e1") as log:
            log.append(STEP, expected=head)
        with store.claim("e1") as log:
            with pytest.raises(SequenceConflictError):
                log.append(FINISH, expected=head)  # what it saw before the other writer
            log.append(FINISH, expected=store.head("e1"))
        assert store.read("e1").records == ALL

    def test_the_conflict_pickles(self) -> None:
        err = SequenceConflictError("e1", 3, 5)
        back = pickle.loads(pickle.dumps(err))
        assert (back.execution_id, back.expected, back.actual) == ("e1", 3, 5)
        assert str(back) == str(err)
        assert "3" in str(err) and "5" in str(err)

    def test_a_released_log_refuses_appends(self, store: Store) -> None:
        log = store.claim("e1", create=[started("e1")])
        log.release()
        log.release()  # idempotent
        with pytest.raises(UsageError):
            log.append(STEP, expected=1)
        assert store.read("e1").records == [started("e1")]

    # -- whole-or-nothing creation (forks) ----------------------------------------------------------------

    def test_create_makes_the_whole_execution_unclaimed(self, store: Store) -> None:
        store.create("e1", ALL)
        assert store.exists("e1") and store.read("e1").records == ALL
        assert "e1" in store.list_ids() and not store.is_claimed("e1")
        with store.claim("e1") as log:  # a claim reads what was created, and may go on from it
            assert log.records == ALL and not log.created
            log.append([ExecutionResumed(at=3.0)], expected=len(ALL))

    def test_create_over_an_existing_id_is_a_conflict_and_writes_nothing(self, store: Store) -> None:
        store.create("e1", [started("e1")])
        with pytest.raises(ExecutionIdConflictError) as info:
            store.create("e1", ALL)
        assert isinstance(info.value, ExecutionStateError) and info.value.http_status == 409
        assert store.read("e1").records == [started("e1")]

    def test_create_over_an_execution_another_owner_runs_is_a_conflict(self, store: Store, tmp_path: Path) -> None:
        other = self.second_handle(store, tmp_path)
        with other.claim("e1", create=[started("e1")]), pytest.raises(ExecutionIdConflictError):
            store.create("e1", ALL)
        assert store.read("e1").records == [started("e1")]

    @pytest.mark.parametrize("bad", ["../etc/passwd", "a/b", "", "x" * 200, "a\x00b", 5, None])
    def test_every_method_refuses_a_hostile_id_before_touching_anything(self, store: Store, bad: object) -> None:
        """The same typed error from every method that takes an id, in every store (nothing is read or written)."""
        self.full(store)
        calls: list[Callable[[Any], object]] = [
            store.exists,
            store.read,
            store.head,
            store.state,
            store.claim,
            store.is_claimed,
            lambda i: store.create(i, ALL),
            lambda i: store.claim(i, create=ALL),
        ]
        for fn in calls:
            with pytest.raises(InvalidExecutionIdError):
                fn(bad)
        assert store.list_ids() == ["e1"] and not store.is_claimed("e1")

    def test_create_refuses_bad_input_before_writing(self, store: Store) -> None:
        with pytest.raises(UsageError):
            store.create("e1", [])
        with pytest.raises(InvalidExecutionIdError):
            store.create("../x", ALL)
        assert store.list_ids() == []

    # -- claims -------------------------------------------------------------------------------------------

    def test_one_owner_at_a_time(self, store: Store, tmp_path: Path) -> None:
        other = self.second_handle(store, tmp_path)
        with store.claim("e1", create=[started("e1")]):
            assert store.is_claimed("e1")
            assert other.is_claimed("e1")
            with pytest.raises(ExecutionAlreadyClaimedError):
                other.claim("e1")
            assert other.read("e1").records == [started("e1")]  # reading needs no claim
        assert not other.is_claimed("e1")
        with other.claim("e1") as log:
            assert log.head == 1

    def test_racing_creators_make_one_execution(self, store: Store, tmp_path: Path) -> None:
        handles = [self.second_handle(store, tmp_path) for _ in range(4)]
        created: list[bool] = []
        errors: list[BaseException] = []
        barrier = threading.Barrier(len(handles))

        def create(h: Store) -> None:
            barrier.wait()
            try:
                with h.claim("e1", create=[started("e1")], timeout=30) as log:
                    created.append(log.created)
                    log.append(STEP[:1], expected=log.head)
            except BaseException as e:
                errors.append(e)

        threads = [threading.Thread(target=create, args=(h,)) for h in handles]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        assert sorted(created) == [False, False, False, True]
        got = store.read("e1")
        assert got.records == [started("e1"), *[STEP[0]] * 4]
        assert got.head == 5

    def test_create_on_an_existing_execution_claims_it_as_it_is(self, store: Store) -> None:
        self.full(store)
        with store.claim("e1", create=[started("e1")]) as log:
            assert not log.created
            assert log.head == len(ALL)


class TestMemoryLogStore(MemoryStores, LogStoreContract):
    pass


class TestFileLogStore(FileStores, LogStoreContract):
    pass


class TestListLogStore(ListStores, LogStoreContract):
    """The toy third backend (records in a dict, public seam only) passes the suite unchanged."""


class TestPostgresLogStore(PostgresStores, LogStoreContract):
    """The PostgreSQL store (rows, not bytes; claims are advisory locks) passes the suite unchanged."""
