"""A pending call takes exactly one answer, for every kind of answer, checked under the claim from the log.

The kinds: a decision (approval, rejection, contract override), a client tool's result, a human's answer, an
in-doubt resolution (a result, an error, a re-run). The paths: recording only (``advance=False``, as the
CLI and the Runtime do) and continuing the run. A second answer raises ``AlreadyDecidedError`` (409, an
``ExecutionStateError``) and writes nothing; a batch naming an answered call is refused whole, in every log
it touches (a parent's and its sub-agents'). Races between real processes: ``tests/crash/test_answer_races.py``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from _stores import store_at
from hypothesis import given, settings
from hypothesis import strategies as st

import delite
from delite import Agent, MemoryStore, ScriptedProvider, Status, delegate, tool
from delite.errors import (
    AlreadyDecidedError,
    DeliteError,
    ExecutionAlreadyActiveError,
    ExecutionAlreadyClaimedError,
    ExecutionAlreadyTerminalError,
    ExecutionIdConflictError,
    ExecutionNotSuspendedError,
    ExecutionStateError,
    IdempotencyConflictError,
    InvalidToolResultError,
    SuspendKindMismatchError,
)
from delite.log.records import DecisionRecorded, InDoubtResolved, InputSubmitted, Record, ToolFinished, ToolStarted
from delite.providers import call
from delite.store import Store


@pytest.fixture
def data_dir(any_data_dir: Any) -> Any:
    """Every test here runs on the file store and on PostgreSQL (the files_only ones on files alone)."""
    return any_data_dir


def outputs(messages: list[dict[str, Any]]) -> str:
    return " | ".join(m["content"] for m in messages if m["role"] == "tool")


class Died(BaseException):
    """A process dying inside a tool body (as a SIGKILL would leave the log)."""


def build(store: Store, kind: str, ran: list[str], *, calls: int = 1) -> Agent:
    """An agent whose first turn asks for ``calls`` calls that suspend it for ``kind``."""

    @tool(requires_confirmation=True)
    def transfer(amount: int) -> str:
        """Move money."""
        ran.append(f"transfer {amount}")
        return f"moved {amount}"

    @tool(target="client")
    def read_cell(cell: str) -> str:
        """The user's spreadsheet."""
        raise AssertionError

    @tool(retry_in_doubt=False)
    def pay(amount: int) -> str:
        """Pay; not safe to retry blindly."""
        if ran and ran[-1] == "die":
            ran.pop()
            raise Died
        ran.append(f"pay {amount}")
        return f"paid {amount}"

    if kind == "human_input":
        asked = [{"name": "ask_human", "arguments": {"question": f"q{i}"}} for i in range(calls)]
    elif kind == "client_tool":
        asked = [{"name": "read_cell", "arguments": {"cell": f"B{i}"}} for i in range(calls)]
    else:
        name = "transfer" if kind == "approval" else "pay"
        asked = [{"name": name, "arguments": {"amount": i}} for i in range(calls)]
    turn = {"tool_calls": asked}
    return Agent(store=store, provider=ScriptedProvider([turn, outputs]), tools=[transfer, read_cell, pay])


def suspend(store: Store, kind: str, ran: list[str], *, calls: int = 1) -> tuple[Agent, str]:
    agent = build(store, kind, ran, calls=calls)
    if kind == "in_doubt":
        ran.append("die")
        with pytest.raises(Died):
            agent.run("go", execution_id="e1")
        r = agent.resume("e1")
    else:
        r = agent.run("go", execution_id="e1")
    assert r.is_suspended and r.suspend_reason is not None and r.suspend_reason.kind == kind, r
    return agent, "e1"


def records(store: Store, eid: str = "e1") -> list[Record]:
    return list(store.read(eid).records)


def answers_for(store: Store, call_id: str, eid: str = "e1") -> list[Record]:
    """The answers given from outside for one call (a tool's own result is not one)."""
    given = (DecisionRecorded, InputSubmitted, InDoubtResolved)
    return [
        r
        for r in records(store, eid)
        if (isinstance(r, given) or (isinstance(r, ToolFinished) and r.source in ("client", "operator")))
        and r.call_id == call_id
    ]


# Every way to answer, by the kind it answers: (name, function(agent, eid, advance)).
Answer = Callable[[Agent, str, bool], Any]
ANSWERS: dict[str, list[tuple[str, Answer]]] = {
    "approval": [
        ("approve", lambda a, e, adv: a.decide(e, {"c1.0": True}, advance=adv)),
        ("reject", lambda a, e, adv: a.decide(e, {"c1.0": False}, reasons={"c1.0": "no"}, advance=adv)),
    ],
    "client_tool": [
        ("result 1", lambda a, e, adv: a.submit_tool_results(e, {"c1.0": 1}, advance=adv)),
        ("result 2", lambda a, e, adv: a.submit_tool_results(e, {"c1.0": "two"}, advance=adv)),
    ],
    "human_input": [
        ("Oslo", lambda a, e, adv: a.submit_input(e, "Oslo", advance=adv)),
        ("Bergen", lambda a, e, adv: a.submit_input(e, "Bergen", advance=adv)),
    ],
    "in_doubt": [
        ("sent", lambda a, e, adv: a.resolve(e, "c1.0", result="sent", advance=adv)),
        ("not sent", lambda a, e, adv: a.resolve(e, "c1.0", error="not sent", advance=adv)),
        ("rerun", lambda a, e, adv: a.resolve(e, "c1.0", rerun=True, advance=adv)),
    ],
}
KINDS = list(ANSWERS)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("first_advances", [False, True])
def test_a_second_answer_of_any_kind_is_refused_and_writes_nothing(
    data_dir: Path, kind: str, first_advances: bool
) -> None:
    store = store_at(data_dir)
    ran: list[str] = []
    agent, eid = suspend(store, kind, ran)
    name, first = ANSWERS[kind][0]
    first(agent, eid, first_advances)
    size = len(records(store))
    for _, again in ANSWERS[kind]:  # the same answer again, another answer, either path
        for advance in (False, True):
            with pytest.raises(ExecutionStateError) as refused:
                again(agent, eid, advance)
            assert refused.value.http_status == 409
            if not first_advances:  # still suspended with its answer: the answer is what refuses it
                assert isinstance(refused.value, AlreadyDecidedError), refused.value
            else:  # it went on and completed
                assert isinstance(refused.value, ExecutionAlreadyTerminalError), refused.value
            assert len(records(store)) == size
    assert len(answers_for(store, "c1.0")) == 1
    done = agent.resume(eid)
    assert done.status is Status.COMPLETED
    tool_messages = [m for m in agent.get(eid).messages if m["role"] == "tool"]
    assert len(tool_messages) == 1, tool_messages  # the model saw one result for the call
    assert done.answer == tool_messages[0]["content"], name


def test_a_later_rerun_request_is_refused(data_dir: Path) -> None:
    """The in-doubt payment is never recorded as both sent and not sent, nor run again after it was settled."""
    store = store_at(data_dir)
    ran: list[str] = []
    agent, eid = suspend(store, "in_doubt", ran)
    agent.resolve(eid, "c1.0", result={"sent": True}, advance=False)
    with pytest.raises(AlreadyDecidedError, match=r"c1\.0 already has its answer"):
        agent.resolve(eid, "c1.0", rerun=True, advance=False)
    with pytest.raises(AlreadyDecidedError):
        agent.resolve(eid, "c1.0", error="not sent")
    assert agent.resume(eid).answer == '{"sent":true}' and ran == []
    assert [type(r).__name__ for r in answers_for(store, "c1.0")] == ["ToolFinished"]


def test_a_rerun_request_takes_no_second_answer(data_dir: Path) -> None:
    store = store_at(data_dir)
    ran: list[str] = []
    agent, eid = suspend(store, "in_doubt", ran)
    agent.resolve(eid, "c1.0", rerun=True, advance=False)
    for kw in ({"rerun": True}, {"result": "sent"}, {"error": "not sent"}):
        with pytest.raises(AlreadyDecidedError):
            agent.resolve(eid, "c1.0", advance=False, **kw)
    assert agent.resume(eid).answer == "paid 0" and ran == ["pay 0"]
    assert sum(isinstance(r, ToolStarted) for r in records(store)) == 2  # the attempt in doubt, and the re-run


def test_a_batch_naming_an_answered_call_is_refused_whole(data_dir: Path) -> None:
    store = store_at(data_dir)
    ran: list[str] = []
    agent, eid = suspend(store, "approval", ran, calls=3)
    agent.approve(eid, "c1.1")
    size = len(records(store))
    with pytest.raises(AlreadyDecidedError, match=r"call c1\.1 already has its answer"):
        agent.decide(eid, {"c1.0": True, "c1.1": True, "c1.2": False}, advance=False)
    with pytest.raises(AlreadyDecidedError):
        agent.submit_approval(eid, decisions={"c1.0": True, "c1.1": False})
    assert len(records(store)) == size  # nothing of either batch
    assert [c.decision for c in agent.get(eid).calls.values()].count(None) == 2
    # "Every pending call" means every one still without a decision.
    done = agent.submit_approval(eid, approved=False, rejection_reason="no")
    assert done.status is Status.COMPLETED and ran == ["transfer 1"]
    decisions = [r for r in records(store) if isinstance(r, DecisionRecorded)]
    assert sorted((d.call_id, d.approved) for d in decisions) == [("c1.0", False), ("c1.1", True), ("c1.2", False)]


def test_every_pending_call_already_decided(data_dir: Path) -> None:
    store = store_at(data_dir)
    agent, eid = suspend(store, "approval", [], calls=2)
    agent.decide(eid, {"c1.0": True, "c1.1": True}, advance=False)
    with pytest.raises(AlreadyDecidedError, match="every pending call already has its answer"):
        agent.submit_approval(eid, approved=False)


def test_client_results_batch(data_dir: Path) -> None:
    store = store_at(data_dir)
    agent, eid = suspend(store, "client_tool", [], calls=2)
    with pytest.raises(InvalidToolResultError, match=r"missing results for c1\.1"):
        agent.submit_tool_results(eid, {"c1.0": 1}, advance=False)
    with pytest.raises(InvalidToolResultError, match=r"no pending client call with id c9\.9"):
        agent.submit_tool_results(eid, {"c1.0": 1, "c1.1": 2, "c9.9": 3})
    agent.submit_tool_results(eid, {"c1.0": 1, "c1.1": 2}, advance=False)
    size = len(records(store))
    for results in ({"c1.0": 1, "c1.1": 2}, {"c1.1": 5}, {"c1.0": 9}):
        with pytest.raises(AlreadyDecidedError):
            agent.submit_tool_results(eid, results, advance=False)
    assert len(records(store)) == size
    assert agent.resume(eid).answer == "1 | 2"


def test_several_questions_take_one_answer_each(data_dir: Path) -> None:
    store = store_at(data_dir)
    agent, eid = suspend(store, "human_input", [], calls=2)
    agent.submit_input(eid, "yes", advance=False)
    with pytest.raises(AlreadyDecidedError):
        agent.submit_input(eid, "no", advance=False)
    assert agent.resume(eid).answer == "yes | yes"
    assert len([r for r in records(store) if isinstance(r, InputSubmitted)]) == 2


def test_threads_racing_on_one_call_record_one_answer(data_dir: Path) -> None:
    """Threads of one process exclude each other through the claim as processes do."""
    import threading

    store = store_at(data_dir)
    agent, eid = suspend(store, "client_tool", [])
    barrier = threading.Barrier(8)
    outcomes: list[object] = []

    def give(i: int) -> None:
        barrier.wait()
        while True:
            try:
                Agent(data_dir).submit_tool_results(eid, {"c1.0": i}, advance=False)
                outcomes.append(i)
                return
            except ExecutionAlreadyClaimedError:
                continue  # busy: try again until the answer is found
            except ExecutionStateError as e:
                outcomes.append(type(e).__name__)
                return

    threads = [threading.Thread(target=give, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    winners = [o for o in outcomes if isinstance(o, int)]
    assert len(winners) == 1 and outcomes.count("AlreadyDecidedError") == 7, outcomes
    assert agent.resume(eid).answer == str(winners[0])


# -- sub-agents: the answer goes into the child's log, checked under both claims -----------------------------


def team(data_dir: Path, ran: list[str]) -> Agent:
    """A parent whose turn asks for its own gated ``transfer`` and for ``ask``, which delegates to a child
    whose own ``transfer`` is gated: one suspension lists both calls."""

    @tool(requires_confirmation=True)
    def transfer(amount: int) -> str:
        """Move money."""
        ran.append(f"transfer {amount}")
        return f"moved {amount}"

    child = Agent(
        data_dir, agent_id="child", provider=ScriptedProvider([call("transfer", amount=2), outputs]), tools=[transfer]
    )

    @tool
    def ask(task: str) -> str:
        """Delegate."""
        return delegate(child, task).answer or ""

    two = {
        "tool_calls": [{"name": "transfer", "arguments": {"amount": 1}}, {"name": "ask", "arguments": {"task": "t"}}]
    }
    return Agent(data_dir, agent_id="parent", provider=ScriptedProvider([two, outputs]), tools=[transfer, ask])


def test_a_batch_across_a_parent_and_its_child_is_all_or_nothing(data_dir: Path) -> None:
    ran: list[str] = []
    parent = team(data_dir, ran)
    r = parent.run("go", execution_id="p")
    assert r.suspend_reason is not None and r.suspend_reason.confirmation_ids == ["c1.0", "p:c1.1/c1.0"]
    store = store_at(data_dir)
    parent.approve("p", "c1.0")
    sizes = (len(records(store, "p")), len(records(store, "p:c1.1")))
    with pytest.raises(AlreadyDecidedError):
        parent.decide("p", {"c1.0": False, "p:c1.1/c1.0": True}, advance=False)
    assert (len(records(store, "p")), len(records(store, "p:c1.1"))) == sizes  # not even the child's part
    parent.decide("p", {"p:c1.1/c1.0": True}, advance=False)
    for again in ({"p:c1.1/c1.0": False}, {"c1.0": True, "p:c1.1/c1.0": True}):
        with pytest.raises(AlreadyDecidedError):
            parent.decide("p", again, advance=False)
    with pytest.raises(AlreadyDecidedError):  # the child's call, answered directly in its own log
        parent.decide("p:c1.1", {"c1.0": False}, advance=False)
    with pytest.raises(AlreadyDecidedError, match="every pending call already has its answer"):
        parent.submit_approval("p", approved=True)
    assert (len(records(store, "p")), len(records(store, "p:c1.1"))) == (sizes[0], sizes[1] + 1)
    done = parent.resume("p")
    assert done.status is Status.COMPLETED and sorted(ran) == ["transfer 1", "transfer 2"]
    assert len(answers_for(store, "c1.0", "p:c1.1")) == 1


def test_a_childs_call_answered_after_the_parent_moved_on(data_dir: Path) -> None:
    ran: list[str] = []
    parent = team(data_dir, ran)
    parent.run("go", execution_id="p")
    parent.submit_approval("p", approved=True)
    with pytest.raises(ExecutionAlreadyTerminalError):
        parent.decide("p", {"p:c1.1/c1.0": True})
    with pytest.raises(ExecutionAlreadyTerminalError):
        parent.decide("p:c1.1", {"c1.0": True})


# -- a property: any sequence of answers, of any kind, by either path ----------------------------------------


attempts = st.lists(
    st.tuples(st.sampled_from(KINDS), st.integers(min_value=0, max_value=2), st.booleans()), min_size=1, max_size=6
)


@settings(max_examples=60, deadline=None)
@given(kind=st.sampled_from(KINDS), tries=attempts)
def test_any_sequence_of_answers_records_at_most_one_per_call(kind: str, tries: list[tuple[str, int, bool]]) -> None:
    store = MemoryStore()
    ran: list[str] = []
    agent, eid = suspend(store, kind, ran)
    accepted: list[str] = []
    for answer_kind, index, advance in tries:
        options = ANSWERS[answer_kind]
        name, give = options[index % len(options)]
        before = len(records(store))
        refused: DeliteError | None = None
        try:
            give(agent, eid, advance)
        except DeliteError as e:
            refused = e
        if refused is not None:
            assert isinstance(refused, ExecutionStateError), refused
            assert refused.http_status == 409
            assert len(records(store)) == before  # a refused answer writes nothing
            assert answer_kind != kind or accepted, f"the first answer of the right kind was refused: {refused}"
            continue
        assert answer_kind == kind and not accepted, (accepted, name)
        accepted.append(name)
    assert len(answers_for(store, "c1.0")) == len(accepted) <= 1
    if accepted:
        final = agent.resume(eid)
        assert final.status is Status.COMPLETED
        assert len([m for m in agent.get(eid).messages if m["role"] == "tool"]) == 1


# -- the error tree ------------------------------------------------------------------------------------------


def test_every_state_changed_error_is_one_public_409_class() -> None:
    family = [
        AlreadyDecidedError,
        ExecutionAlreadyActiveError,
        ExecutionAlreadyClaimedError,
        ExecutionAlreadyTerminalError,
        ExecutionIdConflictError,
        ExecutionNotSuspendedError,
        IdempotencyConflictError,
        SuspendKindMismatchError,
    ]
    for cls in family:
        assert issubclass(cls, ExecutionStateError) and cls.http_status == 409
    assert ExecutionStateError.http_status == 409 and issubclass(ExecutionStateError, DeliteError)
    e = IdempotencyConflictError("k", "e1")
    assert (e.execution_id, e.idempotency_key, e.current_status, e.detail) == ("e1", "k", "", "")
    import pickle

    again = pickle.loads(pickle.dumps(e))
    assert str(again) == str(e) and isinstance(again, ExecutionStateError)
    decided = pickle.loads(
        pickle.dumps(AlreadyDecidedError("e1", "waiting_approval", "call c1.0 already has its answer"))
    )
    assert str(decided) == "execution 'e1': already decided or answered: call c1.0 already has its answer"


def test_every_error_is_importable_from_delite() -> None:
    from delite import errors

    for name in errors.__all__:
        assert name in delite.__all__, name
        assert getattr(delite, name) is getattr(errors, name)
    assert delite.__all__ == sorted(delite.__all__)


def test_another_input_for_an_existing_id_is_a_state_conflict(data_dir: Path) -> None:
    agent = Agent(data_dir, provider=ScriptedProvider(["ok"]))
    agent.run("x", execution_id="job-1")
    size = len(records(store_at(data_dir), "job-1"))
    with pytest.raises(ExecutionIdConflictError, match="another input") as conflict:
        agent.run("y", execution_id="job-1")
    assert conflict.value.http_status == 409 and isinstance(conflict.value, delite.UsageError)
    assert len(records(store_at(data_dir), "job-1")) == size
