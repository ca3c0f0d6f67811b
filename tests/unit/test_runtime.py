"""The Runtime: background executions, callbacks, signals, shutdown at a step boundary, recovery."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from _stores import close_all
from _stores import store_at as shared_store
from store_fixtures import ListStore

from delite import Agent, DataDir, Runtime, ScriptedProvider, Status, current_call, delegate, tool
from delite.errors import DeliteError, ProviderError, UsageError
from delite.log.records import ExecutionCompleted
from delite.providers import call
from delite.store import FileStore


def last_tool(messages: list[dict[str, Any]]) -> str:
    return next(m["content"] for m in reversed(messages) if m["role"] == "tool")


@pytest.fixture(params=["file", "memory", "list", "postgresql"])
def place(request: pytest.FixtureRequest, data_dir: Path) -> Iterator[dict[str, Any]]:
    """Where recovery tests keep their executions, as Agent and Runtime take it: a data directory or a store.

    Recovery asks the store (``runnable()``), so it behaves the same on both.
    """
    if request.param in ("file", "postgresql"):
        where = data_dir if request.param == "file" else request.getfixturevalue("pg_schema_url")
        yield {"data_dir": where}
        close_all()
        return
    from delite import MemoryStore

    yield {"store": MemoryStore() if request.param == "memory" else ListStore()}


def store_at(place: dict[str, Any]) -> Any:
    """The store itself (a file store on the data directory, as another process has)."""
    return place.get("store") or shared_store(place["data_dir"])


@pytest.fixture
def ledger() -> list[str]:
    return []


@pytest.fixture
def work(ledger: list[str]) -> Any:
    @tool
    def work(i: int) -> str:
        """A unit of work with a side effect."""
        ledger.append(current_call().idempotency_key)
        return f"w{i}"

    return work


def test_go_runs_many_executions_at_once_and_calls_back(data_dir: Path, work: Any, ledger: list[str]) -> None:
    done: list[tuple[str, str, str | None]] = []
    with Runtime(data_dir, workers=4) as rt:
        agent = Agent(
            data_dir,
            runtime=rt,
            agent_id="worker",
            provider=ScriptedProvider.tool_loop(3, "work", delay=0.01),
            tools=[work],
        )

        @rt.on_complete
        def completed(agent_id: str, execution_id: str, response: Any) -> None:
            done.append((agent_id, execution_id, response.answer))

        ids = [rt.go(agent, "go") for _ in range(40)]
        responses = [rt.wait(eid, timeout=60) for eid in ids]
        assert rt.running == 0
    assert [r.answer for r in responses] == ["done"] * 40
    assert sorted(e for _, e, _ in done) == sorted(ids) and {a for a, _, _ in done} == {"worker"}
    assert len(ledger) == 120 and len(set(ledger)) == 120
    report = DataDir(data_dir).health()
    assert report.healthy and report.logs == 40
    store = FileStore(data_dir)
    assert all(isinstance(store.read(e).records[-1], ExecutionCompleted) for e in ids)


def test_signal_records_the_decision_and_resumes(data_dir: Path) -> None:
    moved: list[int] = []

    @tool(requires_confirmation=True)
    def transfer(amount: int) -> str:
        """Move money."""
        moved.append(amount)
        return f"moved {amount}"

    @tool(target="client")
    def read_cell(cell: str) -> str:
        """Client side."""
        raise AssertionError

    paused: list[tuple[str, str, Any]] = []
    script = [call("transfer", amount=5), call("read_cell", cell="B2"), call("ask_human", question="ok?"), last_tool]
    with Runtime(data_dir) as rt:
        agent = Agent(
            data_dir, runtime=rt, agent_id="bank", provider=ScriptedProvider(script), tools=[transfer, read_cell]
        )
        rt.on_suspend(lambda agent_id, eid, reason: paused.append((agent_id, eid, reason)))
        eid = rt.go(agent, "move 5")
        assert rt.wait(eid).status is Status.WAITING_APPROVAL and moved == []
        assert paused[-1][0] == "bank" and paused[-1][2].kind == "approval"
        rt.signal(eid, paused[-1][2].confirmation_id, True)
        assert rt.wait(eid).status is Status.WAITING_CLIENT_TOOL and moved == [5]
        rt.submit_tool_results(eid, {"c2.0": "42"})
        assert rt.wait(eid).status is Status.WAITING_HUMAN_INPUT
        rt.submit_input(eid, "yes")
        assert rt.wait(eid).answer == "yes"
    assert [p[2].kind for p in paused] == ["approval", "client_tool", "human_input"]


def test_a_refused_signal_raises_and_records_nothing(data_dir: Path) -> None:
    @tool(requires_confirmation=True)
    def transfer(amount: int) -> str:
        """Move money."""
        return "moved"

    with Runtime(data_dir) as rt:
        agent = Agent(
            data_dir, runtime=rt, provider=ScriptedProvider([call("transfer", amount=1), "ok"]), tools=[transfer]
        )
        eid = rt.go(agent, "go")
        rt.wait(eid)
        with pytest.raises(DeliteError, match=r"no call with id c9\.9") as info:  # a typed error, not any
            rt.signal(eid, "c9.9", True)
        assert info.value.http_status == 400
        assert agent.get(eid).status is Status.WAITING_APPROVAL
        rt.signal(eid, "c1.0", False, reason="no")
        assert rt.wait(eid).answer == "ok"


def test_a_raising_callback_is_logged_and_changes_nothing(
    data_dir: Path, work: Any, caplog: pytest.LogCaptureFixture
) -> None:
    seen: list[str] = []
    with Runtime(data_dir) as rt:
        agent = Agent(data_dir, runtime=rt, provider=ScriptedProvider.tool_loop(1, "work"), tools=[work])

        @rt.on_complete
        def broken(agent_id: str, eid: str, response: Any) -> None:
            raise RuntimeError("callback bug")

        @rt.on_complete
        def fine(agent_id: str, eid: str, response: Any) -> None:
            seen.append(eid)

        with caplog.at_level(logging.ERROR, logger="delite.runtime"):
            first = rt.go(agent, "one")
            assert rt.wait(first).answer == "done"
            second = rt.go(agent, "two")
            assert rt.wait(second).answer == "done"
    assert seen == [first, second]
    assert sum("callback bug" in (r.exc_text or "") for r in caplog.records) == 2


def test_a_failed_run_calls_on_fail_and_wait_raises(data_dir: Path) -> None:
    def broken(messages: Any, tools: Any, model: Any) -> Any:
        raise ValueError("model down")

    failures: list[tuple[str, BaseException]] = []
    with Runtime(data_dir) as rt:
        agent = Agent(data_dir, runtime=rt, provider=broken)
        rt.on_fail(lambda agent_id, eid, error: failures.append((eid, error)))
        eid = rt.go(agent, "x")
        with pytest.raises(ProviderError, match="model down"):
            rt.wait(eid)
    assert failures[0][0] == eid and isinstance(failures[0][1], ProviderError)
    assert agent.get(eid).status is Status.FAILED


def test_shutdown_stops_at_a_step_boundary_and_a_new_runtime_recovers(place: dict[str, Any], ledger: list[str]) -> None:
    held = threading.Condition()
    holding = {"on": True, "count": 0}
    release = threading.Event()

    @tool
    def work(i: int) -> str:
        """A unit of work with a side effect; in the first runtime, the third call waits to be released."""
        ledger.append(current_call().idempotency_key)
        if i == 2 and holding["on"]:
            with held:
                holding["count"] += 1
                held.notify_all()
            release.wait(30)
        return f"w{i}"

    def agent(rt: Runtime) -> Agent:
        return Agent(
            **place,
            runtime=rt,
            agent_id="slow",
            provider=ScriptedProvider.tool_loop(60, "work", delay=0.01),
            tools=[work],
        )

    rt = Runtime(**place)
    ids = [rt.go(agent(rt), "go") for _ in range(3)]
    with held:  # the barrier: all three runs are inside their third tool call
        assert held.wait_for(lambda: holding["count"] == 3, timeout=30)
    rt.shutdown(wait=False)  # asked to stop while every run has a tool call in flight...
    release.set()  # ...which finishes and is recorded first
    rt.shutdown(wait=True)
    holding["on"] = False
    assert len(ledger) == 9  # each run stopped at the boundary after its third call: no fourth one started
    with pytest.raises(UsageError, match="shut down"):
        rt.go(agent(rt), "more")
    store = store_at(place)
    states = [Agent(**place, provider=ScriptedProvider([])).get(eid) for eid in ids]
    assert all(s.status is Status.RUNNING for s in states)  # left running, at a step boundary
    assert not any(store.is_claimed(eid) for eid in ids)  # every claim released
    assert all(not s.open_calls() or all(c.attempts == 0 for c in s.open_calls()) for s in states)  # none in doubt

    completed: list[str] = []
    rt2 = Runtime(**place)
    agent(rt2)
    rt2.on_complete(lambda agent_id, eid, response: completed.append(eid))
    rt2.start()
    assert sorted(rt2.recovered) == sorted(ids)
    assert all(rt2.wait(eid, timeout=60).answer == "done" for eid in ids)
    rt2.shutdown()
    assert sorted(completed) == sorted(ids)
    assert len(ledger) == 180 and len(set(ledger)) == 180  # every step once: nothing redone, nothing in doubt


def test_recovery_can_be_turned_off_and_skips_other_agents(place: dict[str, Any]) -> None:
    class Stop(BaseException):
        """Stands in for the process dying."""

    armed = {"on": True}

    @tool
    def work(i: int) -> str:
        """Work; dies while armed."""
        if armed["on"]:
            raise Stop
        return f"w{i}"

    def agent(agent_id: str) -> Agent:
        return Agent(**place, agent_id=agent_id, provider=ScriptedProvider.tool_loop(3, "work"), tools=[work])

    for agent_id, eid in (("a", "left"), ("b", "theirs")):
        with pytest.raises(Stop):
            agent(agent_id).run("go", execution_id=eid)
    armed["on"] = False

    off = Runtime(**place, recover=False)
    off.join(agent("a"))
    off.start()
    assert off.recovered == []
    off.shutdown()
    assert agent("a").get("left").status is Status.RUNNING

    on = Runtime(**place)
    on.join(agent("a"))
    on.start()
    assert on.recovered == ["left"]  # not "theirs": agent b did not join
    assert on.wait("left").answer == "done"
    on.join(agent("b"))  # an agent joining a started runtime: its executions are recovered at once
    assert on.recovered == ["left", "theirs"]
    assert on.wait("theirs").answer == "done"
    on.shutdown()


def test_signal_on_a_sub_agent_resumes_the_top_execution(data_dir: Path) -> None:
    moved: list[int] = []

    @tool(requires_confirmation=True)
    def transfer(amount: int) -> str:
        """Move money."""
        moved.append(amount)
        return f"moved {amount}"

    with Runtime(data_dir) as rt:
        child = Agent(
            data_dir,
            runtime=rt,
            agent_id="child",
            provider=ScriptedProvider([call("transfer", amount=3), last_tool]),
            tools=[transfer],
        )

        @tool
        def ask(task: str) -> str:
            """Delegate."""
            return delegate(child, task).answer or ""

        parent = Agent(
            data_dir,
            runtime=rt,
            agent_id="parent",
            provider=ScriptedProvider([call("ask", task="t"), last_tool]),
            tools=[ask],
        )
        eid = rt.go(parent, "go")
        r = rt.wait(eid)
        assert r.status is Status.WAITING_APPROVAL and r.suspend_reason is not None
        child_id, call_id = r.suspend_reason.confirmation_id.split("/")  # type: ignore[union-attr]
        rt.signal(child_id, call_id, True)  # answered on the child: the parent resumes and continues it
        assert rt.wait(eid).answer == "moved 3" and moved == [3]


def test_go_with_an_idempotency_key_returns_the_bound_execution(data_dir: Path, work: Any) -> None:
    with Runtime(data_dir) as rt:
        agent = Agent(data_dir, runtime=rt, provider=ScriptedProvider.tool_loop(1, "work"), tools=[work])
        first = rt.go(agent, "go", idempotency_key="req-1")
        assert rt.wait(first).answer == "done"
        assert rt.go(agent, "go", idempotency_key="req-1") == first
        assert rt.wait(first).answer == "done"


def test_go_asks_the_store_whether_an_execution_exists_only_for_an_id_it_did_not_make(
    data_dir: Path, work: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A fresh id names nothing yet: ``go()`` starts it without asking; a given id or a bound key is looked up."""
    asked: list[str] = []
    real = FileStore.exists

    def exists(store: FileStore, execution_id: str) -> bool:
        asked.append(execution_id)
        return real(store, execution_id)

    monkeypatch.setattr(FileStore, "exists", exists)
    with Runtime(data_dir) as rt:
        agent = Agent(data_dir, runtime=rt, provider=ScriptedProvider.tool_loop(1, "work"), tools=[work])
        fresh = rt.go(agent, "go")
        assert rt.wait(fresh).answer == "done"
        assert fresh not in asked
        named = rt.go(agent, "go", execution_id="named-1")
        assert rt.wait(named).answer == "done" and "named-1" in asked
        keyed = rt.go(agent, "go", idempotency_key="req-1")
        assert rt.wait(keyed).answer == "done"
        assert rt.go(agent, "go", idempotency_key="req-1") == keyed
        assert rt.wait(keyed).answer == "done"
    with Runtime(data_dir) as rt:  # another runtime: the execution exists, it is continued (here: answered)
        agent = Agent(data_dir, runtime=rt, provider=ScriptedProvider.tool_loop(1, "work"), tools=[work])
        asked.clear()
        assert rt.go(agent, "go", execution_id=fresh) == fresh
        assert asked == [fresh]
        assert rt.wait(fresh).answer == "done"
    assert DataDir(data_dir).health().healthy


def test_cancel_through_the_runtime(data_dir: Path) -> None:
    @tool(requires_confirmation=True)
    def transfer(amount: int) -> str:
        """Move money."""
        return "moved"

    cancelled: list[str] = []
    with Runtime(data_dir) as rt:
        agent = Agent(
            data_dir, runtime=rt, provider=ScriptedProvider([call("transfer", amount=1), "ok"]), tools=[transfer]
        )
        rt.on_cancel(lambda agent_id, eid, response: cancelled.append(eid))
        eid = rt.go(agent, "go")
        rt.wait(eid)
        assert rt.cancel(eid).status is Status.CANCELLED
    assert cancelled == [eid]


def test_wait_on_an_execution_the_runtime_did_not_run(data_dir: Path, work: Any) -> None:
    Agent(data_dir, provider=ScriptedProvider.tool_loop(1, "work"), tools=[work]).run("go", execution_id="elsewhere")
    with Runtime(data_dir) as rt:
        assert rt.wait("elsewhere").answer == "done"
        with pytest.raises(LookupError):
            rt.future("elsewhere")


def test_joining_with_another_data_directory_is_refused(tmp_path: Path) -> None:
    rt = Runtime(tmp_path / "a")
    with pytest.raises(UsageError, match="uses"):
        Agent(tmp_path / "b", runtime=rt, provider=ScriptedProvider([]))
    assert Agent(runtime=rt, provider=ScriptedProvider([])).store is rt.store  # no data_dir: the runtime's
    with pytest.raises(UsageError):
        Runtime(tmp_path / "a", workers=0)


def test_callbacks_run_off_the_runtime_loop_and_may_signal(data_dir: Path) -> None:
    @tool(requires_confirmation=True)
    def transfer(amount: int) -> str:
        """Move money."""
        return f"moved {amount}"

    threads: set[str] = set()
    with Runtime(data_dir) as rt:
        agent = Agent(
            data_dir, runtime=rt, provider=ScriptedProvider([call("transfer", amount=2), last_tool]), tools=[transfer]
        )

        @rt.on_suspend
        def auto_approve(agent_id: str, eid: str, reason: Any) -> None:
            threads.add(threading.current_thread().name)
            rt.signal(eid, reason.confirmation_id, True)  # a callback may answer at once

        eid = rt.go(agent, "go")
        first = rt.wait(eid)  # returns once its callbacks ran: the signal has started the next run
        assert first.status is Status.WAITING_APPROVAL
        assert rt.wait(eid).answer == "moved 2"
    assert threads == {"delite-rt-callbacks"}


def test_recovery_asks_the_store_so_it_works_on_any_store() -> None:
    """Recovery uses the store's index (``runnable()``), not the file layout: on a MemoryStore shared by two
    runtimes of one process, an execution the first left running with no owner is resumed by the second, and a
    fork nobody resumed is left alone."""
    from delite import MemoryStore

    class Stop(BaseException):
        """Stands in for the owner dying."""

    armed = {"on": True}

    @tool
    def work(i: int) -> str:
        """Work; dies while armed."""
        if armed["on"]:
            raise Stop
        return f"w{i}"

    store = MemoryStore()
    owner = Agent(store=store, agent_id="a", provider=ScriptedProvider.tool_loop(3, "work"), tools=[work])
    with pytest.raises(Stop):
        owner.run("go", execution_id="left")
    armed["on"] = False
    assert owner.get("left").status is Status.RUNNING and not store.is_claimed("left")
    assert [s.id for s in store.runnable()] == ["left"]

    rt = Runtime(store=store)
    rt.join(Agent(store=store, agent_id="a", provider=ScriptedProvider.tool_loop(3, "work"), tools=[work]))
    rt.start()
    assert rt.recovered == ["left"]
    assert rt.wait("left").answer == "done"
    rt.shutdown()


def test_without_a_callback_wait_gets_the_outcome_from_the_loop_and_a_later_callback_still_hears_it(
    data_dir: Path,
) -> None:
    """No callback for a run's end: its outcome goes to wait() at once, not through the callback thread."""
    resolved_on: list[str] = []
    heard: list[tuple[str, str]] = []
    gate = threading.Event()

    def gated(messages: list[dict[str, Any]]) -> str:
        assert gate.wait(30)  # the model answers once the test is listening to the future
        return "done"

    with Runtime(data_dir) as rt:
        agent = Agent(data_dir, runtime=rt, provider=ScriptedProvider([gated]))
        eid = rt.go(agent, "go")
        rt.future(eid).add_done_callback(lambda _: resolved_on.append(threading.current_thread().name))
        gate.set()
        assert rt.wait(eid).answer == "done"

        @rt.on_complete
        def late(agent_id: str, execution_id: str, response: Any) -> None:
            heard.append((execution_id, response.answer))

        # With a callback now: its run's outcome reaches wait() only after the callback ran.
        second = rt.go(agent, "again")
        assert rt.wait(second).answer == "done"
        assert (second, "done") in heard
    assert heard[0] == (eid, "done")  # the first run's event, kept for the callback registered after it
    assert resolved_on == ["delite-runtime"]  # resolved on the loop, not by the callback thread
