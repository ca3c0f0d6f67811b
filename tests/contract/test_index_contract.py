"""The contract of :class:`~delite.store.ExecutionIndex`, run against every store.

Listing, filtering and paging, finding work, cancel requests and idempotency keys, asserted on summaries
and behaviour. A new backend subclasses :class:`IndexContract` with its fixture class from
``store_fixtures.py`` and must pass every test here unchanged.
"""

from __future__ import annotations

import abc
import threading
from pathlib import Path
from typing import Any

import pytest
from store_fixtures import FileStores, ListStores, MemoryStores, PostgresStores

from delite import Agent, Budget, ScriptedProvider, tool
from delite.errors import InvalidExecutionIdError, UsageError
from delite.log.records import (
    ExecutionCancelled,
    ExecutionCompleted,
    ExecutionFailed,
    ExecutionResumed,
    ExecutionStarted,
    ExecutionSuspended,
    ModelResponded,
    Record,
    SuspendReason,
)
from delite.providers import call as tool_call
from delite.store import ListingQuery, Store


def _agent(store: Store, agent_id: str, *, budget: Budget | None = None) -> Agent:
    """An agent whose every run asks to call ``pay`` (which needs approval), then answers "paid"."""

    @tool(requires_confirmation=True)
    def pay() -> str:
        """Pay (needs approval)."""
        return "ok"

    provider = ScriptedProvider([tool_call("pay"), "paid"])
    return Agent(store=store, agent_id=agent_id, provider=provider, tools=[pay], budget=budget)


ENDINGS: dict[str, list[Record]] = {
    "running": [],
    "completed": [ModelResponded(at=2.0, step=1, content="ok"), ExecutionCompleted(at=3.0, answer="ok")],
    "failed": [ExecutionFailed(at=3.0, error_type="X", message="boom")],
    "cancelled": [ExecutionCancelled(at=3.0, reason="asked")],
    "waiting_human_input": [ExecutionSuspended(at=3.0, reason=SuspendReason(kind="human_input", question="?"))],
}


def make(store: Store, eid: str, status: str = "running", *, at: float = 100.0, **started: Any) -> None:
    """Create an execution in ``status``, started at ``at``, with these ``ExecutionStarted`` fields."""
    first = ExecutionStarted(at=at, execution_id=eid, input=f"input of {eid}", **started)
    with store.claim(eid, create=[first]) as log:
        if ENDINGS[status]:
            log.append(ENDINGS[status], expected=1)


class IndexContract(abc.ABC):
    """Queries across executions, as every store answers them."""

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

    @pytest.fixture
    def fleet(self, store: Store) -> Store:
        """Six executions of two agents, in every status, created at 100, 101, ... in this order."""
        make(store, "a-run", "running", at=100.0, agent_id="a", metadata={"thread": "t1", "n": 1})
        make(store, "a-done", "completed", at=101.0, agent_id="a", metadata={"thread": "t2", "n": 2})
        make(store, "b-fail", "failed", at=102.0, agent_id="b", metadata={"thread": "t1"})
        make(store, "b-cancel", "cancelled", at=103.0, agent_id="b")
        make(store, "b-wait", "waiting_human_input", at=104.0, agent_id="b", metadata={"tags": ["x", "y"]})
        make(store, "a-child", "running", at=105.0, agent_id="a", parent_id="a-run", parent_call="c1.0", depth=1)
        return store

    @staticmethod
    def ids(page: Any) -> list[str]:
        return [s.id for s in page]

    # -- listing ------------------------------------------------------------------------------------------

    def test_an_empty_store_lists_nothing(self, store: Store) -> None:
        page = store.list_executions()
        assert page.items == [] and page.total == 0
        assert store.list_ids() == []
        assert store.recoverable() == [] and store.runnable() == []

    def test_everything_newest_first(self, fleet: Store) -> None:
        page = fleet.list_executions(limit=None)
        assert self.ids(page) == ["a-child", "b-wait", "b-cancel", "b-fail", "a-done", "a-run"]
        assert page.total == 6
        assert fleet.list_ids() == sorted(self.ids(page))
        summary = {s.id: s for s in page}
        assert summary["a-done"].status == "completed" and summary["a-done"].answer == "ok"
        assert summary["b-wait"].status == "waiting_human_input"
        assert summary["a-run"].metadata == {"thread": "t1", "n": 1}
        assert summary["a-child"].parent_id == "a-run"
        assert summary["a-run"].created_at == 100.0

    @pytest.mark.parametrize(
        ("query", "expected"),
        [
            ({"status": "running"}, ["a-child", "a-run"]),
            ({"status": ["failed", "cancelled"]}, ["b-cancel", "b-fail"]),
            ({"status": "waiting"}, ["b-wait"]),
            ({"status": "completed", "agent": "b"}, []),
            ({"agent": "a"}, ["a-child", "a-done", "a-run"]),
            ({"metadata": {"thread": "t1"}}, ["b-fail", "a-run"]),
            ({"metadata": {"thread": "t1", "n": 1}}, ["a-run"]),
            ({"metadata": {"n": 2}}, ["a-done"]),
            ({"metadata": {"thread": "nope"}}, []),
            ({"metadata": {"missing": None}}, []),
            ({"parent": "a-run"}, ["a-child"]),
            ({"parent": "b-fail"}, []),
            ({"since": 103.0}, ["a-child", "b-wait", "b-cancel"]),
            ({"until": 102.0}, ["a-done", "a-run"]),
            ({"since": 101.0, "until": 103.0, "agent": "b"}, ["b-fail"]),
        ],
    )
    def test_filters(self, fleet: Store, query: dict[str, Any], expected: list[str]) -> None:
        page = fleet.list_executions(limit=None, **query)
        assert self.ids(page) == expected
        assert page.total == len(expected)

    def test_metadata_integers_beyond_64_bits_match_exactly(self, store: Store) -> None:
        # Recorded as given; a filter on one was a raw OverflowError from the file store's SQLite.
        big = {"b64": 2**64, "b64-plus-1": 2**64 + 1, "neg": -(2**70), "max": 2**63 - 1, "min": -(2**63)}
        for i, (eid, n) in enumerate(big.items()):
            make(store, eid, at=100.0 + i, metadata={"n": n})
        for eid, n in big.items():
            page = store.list_executions(limit=None, metadata={"n": n})
            assert self.ids(page) == [eid] and page.total == 1, (eid, self.ids(page))
            assert page.items[0].metadata == {"n": n}
        assert store.list_executions(metadata={"n": 2**64 + 2}).total == 0

    def test_query_executions_is_what_a_listing_asks(self, fleet: Store) -> None:
        # list_executions checks its arguments into a ListingQuery; query_executions is what a store implements
        query = ListingQuery(status=(s for s in ["failed", "cancelled"]), limit=None)  # a generator, read once
        assert query.statuses == ["cancelled", "failed"]
        assert self.ids(fleet.query_executions(query)) == ["b-cancel", "b-fail"]
        assert self.ids(fleet.query_executions(query)) == ["b-cancel", "b-fail"]  # the query is reusable
        assert fleet.query_executions(ListingQuery(status="waiting")).total == 1

    def test_pages_cover_every_match_once(self, fleet: Store) -> None:
        seen: list[str] = []
        offset = 0
        while True:
            page = fleet.list_executions(limit=4, offset=offset)
            assert page.total == 6
            assert page.offset == offset and page.limit == 4
            if not page.items:
                break
            seen += self.ids(page)
            offset += len(page.items)
        assert seen == self.ids(fleet.list_executions(limit=None))
        assert fleet.list_executions(limit=0).items == []
        assert fleet.list_executions(limit=0).total == 6

    def test_a_listing_sees_changes(self, fleet: Store) -> None:
        assert self.ids(fleet.list_executions(status="completed")) == ["a-done"]
        with fleet.claim("a-run") as log:
            log.append(ENDINGS["completed"], expected=log.head)
        assert self.ids(fleet.list_executions(status="completed")) == ["a-done", "a-run"]
        make(fleet, "new", "running", at=200.0, agent_id="a")
        assert self.ids(fleet.list_executions(limit=1)) == ["new"]

    @pytest.mark.parametrize(
        "bad",
        [
            {"status": "sleeping"},
            {"limit": -1},
            {"offset": -1},
            {"metadata": {'quo"te': 1}},
            {"metadata": ["thread"]},
            {"since": "yesterday"},
            {"until": True},
            {"limit": 1.5},
            {"status": [1]},
            {"agent": 1},
            {"parent": ["a-run"]},
            {"metadata": {"k": object()}},
        ],
    )
    def test_bad_arguments_are_usage_errors(self, fleet: Store, bad: dict[str, Any]) -> None:
        with pytest.raises(UsageError):
            fleet.list_executions(**bad)
        with pytest.raises(UsageError):
            ListingQuery(**bad)  # refused when built, before a store sees it

    # -- finding work ---------------------------------------------------------------------------------------

    def test_recoverable_is_running_with_no_live_owner(self, fleet: Store, tmp_path: Path) -> None:
        assert [s.id for s in fleet.recoverable()] == ["a-run", "a-child"]  # oldest first
        assert [s.id for s in fleet.runnable()] == ["a-run"]  # sub-agents are their parent's to resume
        assert [s.id for s in fleet.recoverable(agent="b")] == []
        assert [s.id for s in fleet.recoverable(limit=1)] == ["a-run"]
        other = self.second_handle(fleet, tmp_path)
        with other.claim("a-run"):
            assert [s.id for s in fleet.recoverable()] == ["a-child"]  # a live owner is advancing a-run
            assert fleet.runnable() == []
        assert [s.id for s in fleet.runnable(agent="a")] == ["a-run"]

    @pytest.mark.parametrize("bad", [{"limit": -1}, {"limit": "x"}, {"limit": True}, {"limit": 1.5}, {"agent": 5}])
    def test_finding_work_with_bad_arguments_is_a_usage_error(self, fleet: Store, bad: dict[str, Any]) -> None:
        for find in (fleet.recoverable, fleet.runnable):
            with pytest.raises(UsageError):
                find(**bad)

    def test_a_fork_nobody_resumed_is_not_work(self, store: Store) -> None:
        make(store, "fork", "running", at=100.0, forked_from="origin", fork_step=1)
        assert store.recoverable() == [] and store.runnable() == []
        with store.claim("fork") as log:  # a process takes it on, then dies
            log.append([ExecutionResumed(at=101.0)], expected=1)
        assert [s.id for s in store.recoverable()] == ["fork"]
        assert [s.id for s in store.runnable()] == ["fork"]

    def test_suspensions_whose_calls_all_have_answers_are_work(self, store: Store, tmp_path: Path) -> None:
        agent = _agent(store, "a")
        waiting = agent.run("pay", execution_id="pay-waiting")
        answered = agent.run("pay", execution_id="pay-answered")
        assert waiting.status.value == answered.status.value == "waiting_approval"
        assert answered.suspend_reason is not None
        (call_id,) = answered.suspend_reason.confirmation_ids
        assert store.runnable() == []  # nobody answered yet: nothing a worker may start
        other = self.second_handle(store, tmp_path)
        _agent(other, "a").approve("pay-answered", call_id)  # recorded by "another process", not continued
        assert [s.id for s in store.runnable()] == ["pay-answered"]
        assert [s.id for s in store.runnable(agent="a")] == ["pay-answered"]
        assert store.runnable(agent="b") == []
        assert store.recoverable() == []  # not left running by anyone: only a worker takes it on
        with other.claim("pay-answered"):
            assert store.runnable() == []  # someone is advancing it
        assert agent.resume("pay-answered").answer == "paid"
        assert store.runnable() == []

    def test_a_budget_suspension_is_not_work(self, store: Store) -> None:
        agent = _agent(store, "a", budget=Budget(max_tool_calls=0))
        response = agent.run("pay", execution_id="capped")
        assert response.status.value == "suspended" and response.suspend_reason is not None
        assert response.suspend_reason.kind == "budget"
        assert store.runnable() == [] and store.recoverable() == []

    def test_runnable_serves_several_agents(self, fleet: Store) -> None:
        make(fleet, "c-run", "running", at=106.0, agent_id="c")
        make(fleet, "b-run", "running", at=107.0, agent_id="b")
        assert [s.id for s in fleet.runnable()] == ["a-run", "c-run", "b-run"]  # oldest first
        assert [s.id for s in fleet.runnable(agent=["b", "c"])] == ["c-run", "b-run"]
        assert [s.id for s in fleet.runnable(agent={"a", "b"}, limit=1)] == ["a-run"]
        assert [s.id for s in fleet.runnable(agent=("zzz",))] == []
        assert all(s.advanceable for s in fleet.runnable())

    @pytest.mark.parametrize("bad", [[], [1], [""], b"a", 3, {"a": 1}.items()])
    def test_runnable_refuses_bad_agent_ids(self, fleet: Store, bad: Any) -> None:
        with pytest.raises(UsageError):
            fleet.runnable(agent=bad)

    # -- cancel requests --------------------------------------------------------------------------------------

    def test_cancel_requests_single_and_batched(self, fleet: Store, tmp_path: Path) -> None:
        other = self.second_handle(fleet, tmp_path)
        assert not fleet.cancel_requested("a-run")
        assert fleet.cancels_requested(["a-run", "a-child", "b-wait"]) == set()
        other.request_cancel("a-run")
        other.request_cancel("a-run")  # asking twice is asking once
        other.request_cancel("b-wait")
        assert fleet.cancel_requested("a-run")
        assert not fleet.cancel_requested("a-child")
        assert fleet.cancels_requested(["a-run", "a-child", "b-wait"]) == {"a-run", "b-wait"}
        assert fleet.cancels_requested(iter(["a-child", "a-run"])) == {"a-run"}
        assert fleet.cancels_requested([]) == set()
        fleet.clear_cancel("a-run")
        fleet.clear_cancel("a-run")  # idempotent
        assert not other.cancel_requested("a-run")
        assert other.cancels_requested(["a-run", "b-wait"]) == {"b-wait"}

    def test_a_batched_cancel_check_of_many_ids(self, store: Store) -> None:
        ids = [f"e{i:02}" for i in range(40)]
        for eid in ids:
            make(store, eid)
        for eid in ids[::3]:
            store.request_cancel(eid)
        store.request_cancel("not-asked-about")
        assert store.cancels_requested(ids) == set(ids[::3])
        assert store.cancels_requested(ids[:5]) == {"e00", "e03"}
        for eid in ids[::3]:
            store.clear_cancel(eid)
        assert store.cancels_requested(ids) == set()

    @pytest.mark.parametrize("bad", ["../x", "", "a/b", "..", 7])
    def test_a_cancel_call_with_a_bad_id_is_refused(self, store: Store, tmp_path: Path, bad: object) -> None:
        victim = tmp_path / "x.cancel"
        victim.write_text("not a cancel marker")
        for call in (store.request_cancel, store.cancel_requested, store.clear_cancel):
            with pytest.raises(InvalidExecutionIdError):
                call(bad)  # type: ignore[arg-type]
        with pytest.raises(InvalidExecutionIdError):
            store.cancels_requested(["e1", bad])  # type: ignore[list-item]
        with pytest.raises(InvalidExecutionIdError):
            store.cancels_requested([*(f"e{i}" for i in range(40)), bad])  # type: ignore[list-item]
        assert victim.read_text() == "not a cancel marker"  # nothing outside the store was touched

    @pytest.mark.parametrize("bad", ["e1", b"e1", 5, None])
    def test_a_batched_cancel_check_wants_a_collection_of_ids(self, store: Store, bad: object) -> None:
        """A single id (a string is iterable: its letters) or a non-collection is a UsageError, never a guess."""
        store.request_cancel("e")
        with pytest.raises(UsageError):
            store.cancels_requested(bad)  # type: ignore[arg-type]

    @pytest.mark.parametrize(
        ("binding", "error"),
        [
            (("k", "../x", "f"), InvalidExecutionIdError),
            (("k", 5, "f"), InvalidExecutionIdError),
            (("k", "e1", 5), UsageError),
            (("k", "e1", None), UsageError),
        ],
    )
    def test_a_bad_binding_is_refused_before_anything_is_written(
        self, store: Store, binding: tuple[Any, Any, Any], error: type[Exception]
    ) -> None:
        with pytest.raises(error):
            store.bind_key(*binding)
        assert store.lookup_key("k") is None
        assert store.bind_key("k", "e1", "f") == ("e1", "f")  # the key is still free

    @pytest.mark.parametrize("bad", ["", None, 3, b"k"])
    def test_a_bad_idempotency_key_is_a_usage_error(self, store: Store, bad: object) -> None:
        with pytest.raises(UsageError):
            store.bind_key(bad, "e1", "f1")  # type: ignore[arg-type]
        with pytest.raises(UsageError):
            store.lookup_key(bad)  # type: ignore[arg-type]
        assert store.lookup_key("k") is None

    # -- idempotency keys ---------------------------------------------------------------------------------

    def test_a_key_binds_once(self, store: Store, tmp_path: Path) -> None:
        other = self.second_handle(store, tmp_path)
        assert store.lookup_key("k") is None
        assert store.bind_key("k", "e1", "f1") == ("e1", "f1")
        assert other.bind_key("k", "e2", "f2") == ("e1", "f1")
        assert other.lookup_key("k") == ("e1", "f1")
        assert store.lookup_key("other") is None

    def test_racing_binders_agree(self, store: Store, tmp_path: Path) -> None:
        handles = [self.second_handle(store, tmp_path) for _ in range(6)]
        barrier = threading.Barrier(len(handles))
        got: list[tuple[str, str]] = []

        def bind(i: int, h: Store) -> None:
            barrier.wait()
            got.append(h.bind_key("race", f"e{i}", f"f{i}"))

        threads = [threading.Thread(target=bind, args=(i, h)) for i, h in enumerate(handles)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(got) == len(handles) and len(set(got)) == 1
        assert store.lookup_key("race") == got[0]


class TestMemoryIndex(MemoryStores, IndexContract):
    pass


class TestFileIndex(FileStores, IndexContract):
    pass


class TestListIndex(ListStores, IndexContract):
    """The toy third backend (records in a dict, public seam only) passes the suite unchanged."""


class TestPostgresIndex(PostgresStores, IndexContract):
    """The PostgreSQL store (rows, not bytes; claims are advisory locks) passes the suite unchanged."""
