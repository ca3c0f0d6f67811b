"""Forking an execution whose tool calls ran sub-agents: the fork gets its own copies, the origin's tree is untouched.

A parent waits on a sub-agent that waits for a human: a fork used to list the origin's child's pending call,
so answering the fork wrote in the origin's child's log (the origin's own operator was then refused, and
resuming the origin acted on the fork's approval). Now a fork copies the sub-agents' executions its copied
calls started, under the ids the fork's own delegations derive (``<fork>:<call>``), and names the copies.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from _race import race

from delite import Agent, DataDir, ScriptedProvider, Tool, delegate, tool
from delite.errors import ExecutionIdConflictError, StoreError
from delite.log.records import ChildSuspended, ExecutionCompleted, ExecutionStarted, SealedRecord
from delite.providers import call
from delite.state._fold import fold
from delite.store import FileStore, Keyring, MemoryStore, SealedStore, Store
from delite.store._ids import MAX_ID_LENGTH

paid: list[str] = []
filed: list[str] = []


@tool(requires_confirmation=True)
def pay(invoice: str) -> str:
    """Pay an invoice (a human approves it first)."""
    paid.append(invoice)
    return f"paid {invoice}"


@tool
def file_it(invoice: str) -> str:
    """File an invoice (no approval)."""
    filed.append(invoice)
    return f"filed {invoice}"


@pytest.fixture(autouse=True)
def _clean() -> None:
    paid.clear()
    filed.clear()


def _echo_last(prefix: str) -> Callable[[list[dict[str, Any]]], str]:
    """A scripted model turn that answers with the last message (the tool's result), after ``prefix``."""
    return lambda m: prefix + str(m[-1]["content"])


def _where(target: str | Store) -> dict[str, object]:
    """An agent's data directory, or its store."""
    return {"store": target} if isinstance(target, Store) else {"data_dir": target}


def clerk(target: str | Store) -> Agent:
    """A sub-agent that pays an invoice, after a human approves."""
    return Agent(
        **_where(target),  # type: ignore[arg-type]
        agent_id="clerk",
        tools=[pay],
        provider=ScriptedProvider([call("pay", invoice="A-1"), _echo_last("")]),
    )


def filer(target: str | Store) -> Agent:
    """A sub-agent that files an invoice, with no approval."""
    return Agent(
        **_where(target),  # type: ignore[arg-type]
        agent_id="filer",
        tools=[file_it],
        provider=ScriptedProvider([call("file_it", invoice="A-1"), _echo_last("")]),
    )


def boss(target: str | Store, tools: list[Tool] | None = None) -> Agent:
    """A parent whose one tool call delegates; it answers with what the tool returned."""

    @tool
    def settle(invoice: str) -> str:
        """Have the clerk settle an invoice."""
        return delegate(clerk(target), f"Pay {invoice}").answer or ""

    return Agent(
        **_where(target),  # type: ignore[arg-type]
        agent_id="boss",
        tools=tools or [settle],
        provider=ScriptedProvider([call("settle", invoice="A-1"), _echo_last("Boss: ")]),
    )


def _logs(data: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted((data / "executions").glob("*.log"))}


def _origin_waiting(data: Path) -> dict[str, bytes]:
    """P waits on its sub-agent P:c1.0, which waits for approval of ``pay``; the origin's logs' bytes."""
    r = boss(str(data)).run("Settle A-1", execution_id="P")
    assert r.suspend_reason is not None and r.suspend_reason.confirmation_ids == ["P:c1.0/c1.0"]
    return _logs(data)


# -- the tester's case ----------------------------------------------------------------------------------------


def test_a_fork_of_a_parent_waiting_on_a_sub_agent_lists_its_own_copy_of_the_child(tmp_path: Path) -> None:
    _origin_waiting(tmp_path)
    assert DataDir(tmp_path).fork("P", at=1, new_id="F") == "F"
    reason = boss(str(tmp_path)).get("F").suspend_reason
    assert reason is not None and reason.confirmation_ids == ["F:c1.0/c1.0"]
    d = DataDir(tmp_path)
    assert [c.id for c in d.children("F")] == ["F:c1.0"]
    assert [c.id for c in d.children("P")] == ["P:c1.0"]
    copy = d.execution("F:c1.0")
    assert copy.detail.status == "waiting_approval" and copy.detail.forked_from == "P:c1.0"
    assert copy.state.parent_id == "F" and copy.state.parent_call == "c1.0" and copy.state.dormant
    assert d.health().healthy


def test_answering_the_fork_never_writes_in_the_origins_tree(tmp_path: Path) -> None:
    before = _origin_waiting(tmp_path)
    DataDir(tmp_path).fork("P", at=1, new_id="F")
    r = boss(str(tmp_path)).submit_approval("F", approved=True)  # approves and resumes the fork
    assert r.answer == "Boss: paid A-1" and paid == ["A-1"]
    after = _logs(tmp_path)
    assert {k: after[k] for k in before} == before  # not a byte of P or P:c1.0 changed
    assert DataDir(tmp_path).execution("F:c1.0").detail.status == "completed"
    # The origin's operator still decides the origin's call, and the origin acts on that decision alone.
    r = boss(str(tmp_path)).submit_approval("P", approved=False, rejection_reason="no")
    assert r.answer is not None and "rejected by a human" in r.answer
    assert paid == ["A-1"]  # paid once, by the fork


def test_answering_the_origin_never_writes_in_the_fork(tmp_path: Path) -> None:
    _origin_waiting(tmp_path)
    DataDir(tmp_path).fork("P", at=1, new_id="F")
    fork_logs = {k: v for k, v in _logs(tmp_path).items() if k.startswith("F")}
    boss(str(tmp_path)).submit_approval("P", approved=False, rejection_reason="no")
    assert {k: v for k, v in _logs(tmp_path).items() if k.startswith("F")} == fork_logs
    reason = boss(str(tmp_path)).get("F").suspend_reason
    assert reason is not None and reason.confirmation_ids == ["F:c1.0/c1.0"]  # the fork still waits


# -- deeper trees, several children, a long fork id -----------------------------------------------------------


def test_a_grandchild_waiting_is_copied_too_and_named_by_the_fork(tmp_path: Path) -> None:
    data = str(tmp_path)

    @tool
    def manage(invoice: str) -> str:
        """Have a manager (who has a clerk) settle it."""

        @tool
        def settle(invoice: str) -> str:
            """Have the clerk settle an invoice."""
            return delegate(clerk(data), f"Pay {invoice}").answer or ""

        manager = Agent(
            data,
            agent_id="manager",
            tools=[settle],
            provider=ScriptedProvider([call("settle", invoice=invoice), _echo_last("Manager: ")]),
        )
        return delegate(manager, f"Settle {invoice}").answer or ""

    top = Agent(
        data,
        agent_id="top",
        tools=[manage],
        provider=ScriptedProvider([call("manage", invoice="A-1"), _echo_last("Top: ")]),
    )
    r = top.run("go", execution_id="P")
    assert r.suspend_reason is not None and r.suspend_reason.confirmation_ids == ["P:c1.0:c1.0/c1.0"]
    before = _logs(tmp_path)
    DataDir(tmp_path).fork("P", at=1, new_id="F")
    fork = top.get("F")
    assert fork.suspend_reason is not None and fork.suspend_reason.confirmation_ids == ["F:c1.0:c1.0/c1.0"]
    d = DataDir(tmp_path)
    assert [c.id for c in d.children("F:c1.0")] == ["F:c1.0:c1.0"]
    middle = d.store.read("F:c1.0").records
    assert [r.child_id for r in middle if isinstance(r, ChildSuspended)] == ["F:c1.0:c1.0"]
    top.approve("F", "F:c1.0:c1.0/c1.0")  # recorded only (advance=False)
    decided = [type(r).__name__ for r in d.store.read("F:c1.0:c1.0").records]
    assert decided[-1] == "DecisionRecorded"  # in the fork's copy of the grandchild
    after = _logs(tmp_path)
    assert {k: after[k] for k in before} == before  # and in no log of the origin's tree


def test_a_call_with_a_finished_and_a_waiting_child_continues_the_finished_copy_without_redoing_it(
    tmp_path: Path,
) -> None:
    data = str(tmp_path)

    @tool
    def settle(invoice: str) -> str:
        """File the invoice, then pay it: two sub-agents from one call."""
        filed_note = delegate(filer(data), f"File {invoice}").answer or ""
        paid_note = delegate(clerk(data), f"Pay {invoice}").answer or ""
        return filed_note + "; " + paid_note

    r = boss(data, tools=[settle]).run("go", execution_id="P")
    assert r.suspend_reason is not None and r.suspend_reason.confirmation_ids == ["P:c1.0:2/c1.0"]
    assert filed == ["A-1"]
    DataDir(tmp_path).fork("P", at=1, new_id="F")
    assert sorted(c.id for c in DataDir(tmp_path).children("F")) == ["F:c1.0", "F:c1.0:2"]
    assert DataDir(tmp_path).execution("F:c1.0").detail.status == "completed"  # the copy of a finished child
    r = boss(data, tools=[settle]).submit_approval("F", approved=True)
    assert r.answer == "Boss: filed A-1; paid A-1"
    assert filed == ["A-1"] and paid == ["A-1"]  # the filer's copy answered from its log: nothing filed twice


def test_a_fork_id_too_long_for_plain_child_ids_gets_the_digests_its_delegations_derive(tmp_path: Path) -> None:
    _origin_waiting(tmp_path)
    new_id = "F" * (MAX_ID_LENGTH - 2)
    DataDir(tmp_path).fork("P", at=1, new_id=new_id)
    child = "sub-" + hashlib.sha256(f"{new_id}:c1.0".encode()).hexdigest()[:48]  # as delegate names it
    reason = boss(str(tmp_path)).get(new_id).suspend_reason
    assert reason is not None and reason.confirmation_ids == [f"{child}/c1.0"]
    assert boss(str(tmp_path)).submit_approval(new_id, approved=True).answer == "Boss: paid A-1"
    assert paid == ["A-1"]  # the resumed call continued the copy (approved), not a new child


# -- a child in flight, a finished child ----------------------------------------------------------------------


def test_a_child_cut_short_inside_a_tool_is_copied_and_the_fork_continues_the_copy(tmp_path: Path) -> None:
    data = str(tmp_path)
    crash = [True]

    @tool
    def file_once(invoice: str) -> str:
        """File an invoice; the first attempt dies with the process."""
        if crash[0]:
            crash[0] = False
            raise KeyboardInterrupt  # the log now ends inside the child's tool, as after a kill
        filed.append(invoice)
        return f"filed {invoice}"

    def crashing_filer() -> Agent:
        return Agent(
            data,
            agent_id="filer",
            tools=[file_once],
            provider=ScriptedProvider([call("file_once", invoice="A-1"), _echo_last("")]),
        )

    @tool
    def settle(invoice: str) -> str:
        """Have the filer file it."""
        return delegate(crashing_filer(), f"File {invoice}").answer or ""

    with pytest.raises(KeyboardInterrupt):
        boss(data, tools=[settle]).run("go", execution_id="P")
    d = DataDir(tmp_path)
    assert d.execution("P").detail.status == "running" and d.execution("P:c1.0").detail.status == "running"
    before = _logs(tmp_path)
    d.fork("P", at=1, new_id="F")
    copy = d.execution("F:c1.0")
    assert copy.detail.status == "running" and copy.state.dormant and copy.state.parent_id == "F"
    assert boss(data, tools=[settle]).resume("F").answer == "Boss: filed A-1"
    assert d.execution("F:c1.0").detail.status == "completed"
    after = _logs(tmp_path)
    assert {k: after[k] for k in before} == before  # the origin's child is still cut short, untouched


def _origin_finished(data: Path) -> None:
    agent = boss(str(data))
    agent.run("Settle A-1", execution_id="P")
    assert agent.submit_approval("P", approved=True).answer == "Boss: paid A-1"


@pytest.mark.parametrize("at", [1, 2])
def test_a_fork_after_the_child_finished_holds_a_copy_that_outlives_the_origins_tree(tmp_path: Path, at: int) -> None:
    _origin_finished(tmp_path)
    d = DataDir(tmp_path)
    d.fork("P", at=at, new_id="F")
    named = [r.child_id for r in d.store.read("F").records if isinstance(r, ChildSuspended)]
    assert named == ["F:c1.0"]  # the copied history names the fork's copy, never the origin's child
    copy = d.store.read("F:c1.0").records
    last = copy[-1]
    assert isinstance(last, ExecutionCompleted) and last.tally is not None and last.tally.log_sha256 is None
    assert d.execution("F:c1.0").detail.answer == "paid A-1"
    report = d.delete("P", children=True)
    assert sorted(x.id for x in report.deleted) == ["P", "P:c1.0"]
    assert "F" in report.forks and "F:c1.0" in report.forks  # copies: left, and listed
    assert d.health().healthy
    assert boss(str(tmp_path)).resume("F").answer == "Boss: paid A-1"
    assert paid == ["A-1"]  # the origin's payment only: the fork's call had its result already
    gone = d.delete("F", children=True)
    assert sorted(x.id for x in gone.deleted) == ["F", "F:c1.0"] and d.ids() == []


def test_a_fork_at_step_0_copies_no_child(tmp_path: Path) -> None:
    _origin_waiting(tmp_path)
    d = DataDir(tmp_path)
    d.fork("P", at=0, new_id="F")
    assert d.children("F") == [] and sorted(d.ids()) == ["F", "P", "P:c1.0"]


def test_a_fork_of_a_sub_agents_execution_is_top_level(tmp_path: Path) -> None:
    _origin_waiting(tmp_path)
    d = DataDir(tmp_path)
    d.fork("P:c1.0", at=1, new_id="G")
    state = d.execution("G").state
    assert state.parent_id is None and state.parent_call is None and state.dormant
    assert [c.id for c in d.children("P")] == ["P:c1.0"]  # the origin's parent did not gain a child
    report = d.delete("P", children=True, force=True)
    assert "G" not in [x.id for x in report.deleted] and d.ids() == ["G"]
    assert clerk(str(tmp_path)).submit_approval("G", approved=True).answer == "paid A-1"


# -- whole or nothing -----------------------------------------------------------------------------------------


def test_a_taken_id_for_a_childs_copy_refuses_the_fork_and_writes_nothing(tmp_path: Path) -> None:
    before = _origin_waiting(tmp_path)
    filer(str(tmp_path)).run("unrelated", execution_id="F:c1.0")
    taken = _logs(tmp_path)
    with pytest.raises(ExecutionIdConflictError, match=r"F:c1\.0"):
        DataDir(tmp_path).fork("P", at=1, new_id="F")
    assert _logs(tmp_path) == taken and set(taken) == {*before, "F:c1.0.log"}


def test_a_fork_that_failed_after_writing_the_copies_is_completed_by_forking_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _origin_waiting(tmp_path)
    real = FileStore.create

    def failing(self: FileStore, execution_id: str, records: object) -> None:
        if execution_id == "F":
            raise StoreError("disk full")
        real(self, execution_id, records)  # type: ignore[arg-type]

    monkeypatch.setattr(FileStore, "create", failing)
    with pytest.raises(StoreError):
        DataDir(tmp_path).fork("P", at=1, new_id="F")
    d = DataDir(tmp_path)
    assert "F" not in d.ids() and "F:c1.0" in d.ids()  # a copy with no fork above it
    monkeypatch.setattr(FileStore, "create", real)
    assert d.fork("P", at=1, new_id="F") == "F"
    assert boss(str(tmp_path)).submit_approval("F", approved=True).answer == "Boss: paid A-1"
    assert d.health().healthy


def test_forking_onto_an_existing_fork_is_refused_before_any_copy(tmp_path: Path) -> None:
    _origin_waiting(tmp_path)
    d = DataDir(tmp_path)
    d.fork("P", at=1, new_id="F")
    boss(str(tmp_path)).submit_approval("F", approved=True)
    taken = _logs(tmp_path)
    with pytest.raises(ExecutionIdConflictError, match="exists already"):
        d.fork("P", at=1, new_id="F")
    assert _logs(tmp_path) == taken  # the fork's completed copy was not touched


def test_a_fork_in_a_memory_store_copies_the_child_too() -> None:
    store = MemoryStore()
    agent = boss(store)
    agent.run("Settle A-1", execution_id="P")
    before = {eid: store.read_payloads(eid) for eid in store.list_ids()}
    DataDir(store).fork("P", at=1, new_id="F")
    assert agent.submit_approval("F", approved=True).answer == "Boss: paid A-1"
    assert {eid: store.read_payloads(eid) for eid in before} == before
    first = store.read("F:c1.0").records[0]
    assert isinstance(first, ExecutionStarted) and first.parent_id == "F" and first.forked_from == "P:c1.0"
    assert fold(store.read("P:c1.0").records).status.value == "waiting_approval"


def test_a_fork_through_a_seal_copies_the_children_sealed(tmp_path: Path) -> None:
    inner = FileStore(tmp_path / "data")
    sealed = SealedStore(inner, Keyring([("k1", bytes(range(32)))]))

    @tool
    def settle(invoice: str) -> str:
        """File the invoice, then pay it: two sub-agents from one call."""
        filed_note = delegate(filer(sealed), f"File {invoice}").answer or ""
        paid_note = delegate(clerk(sealed), f"Pay {invoice}").answer or ""
        return filed_note + "; " + paid_note

    agent = boss(sealed, tools=[settle])
    agent.run("go", execution_id="P")
    before = _logs(tmp_path / "data")
    DataDir(sealed).fork("P", at=1, new_id="F")
    assert sorted(c.id for c in DataDir(sealed).children("F")) == ["F:c1.0", "F:c1.0:2"]
    assert all(isinstance(r, SealedRecord) for eid in ("F", "F:c1.0", "F:c1.0:2") for r in inner.read(eid).records)
    assert agent.submit_approval("F", approved=True).answer == "Boss: filed A-1; paid A-1"
    assert filed == ["A-1"] and paid == ["A-1"]
    after = _logs(tmp_path / "data")
    assert {k: after[k] for k in before} == before
    assert DataDir(sealed).health().healthy


def test_only_the_children_of_the_copied_steps_are_copied(tmp_path: Path) -> None:
    data = str(tmp_path)

    @tool
    def file_via(invoice: str) -> str:
        """Have the filer file an invoice."""
        return delegate(filer(data), f"File {invoice}").answer or ""

    steps = [call("file_via", invoice="A-1"), call("file_via", invoice="A-2"), _echo_last("Boss: ")]
    Agent(data, agent_id="boss", tools=[file_via], provider=ScriptedProvider(steps)).run("go", execution_id="P")
    assert sorted(DataDir(tmp_path).ids()) == ["P", "P:c1.0", "P:c2.0"]
    DataDir(tmp_path).fork("P", at=1, new_id="F")
    assert [c.id for c in DataDir(tmp_path).children("F")] == ["F:c1.0"]  # step 2's child is not the fork's


def test_racing_forks_of_a_tree_onto_one_id_have_one_winner_and_409s(tmp_path: Path) -> None:
    from delite.errors import ExecutionStateError

    _origin_waiting(tmp_path)
    d = DataDir(tmp_path)
    outcomes = race(lambda: d.fork("P", at=1, new_id="F"))
    assert outcomes.count("F") == 1, outcomes
    assert all(isinstance(o, ExecutionStateError) and o.http_status == 409 for o in outcomes if o != "F")
    assert boss(str(tmp_path)).submit_approval("F", approved=True).answer == "Boss: paid A-1"
    assert d.health().healthy
