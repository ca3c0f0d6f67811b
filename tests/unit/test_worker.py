"""Runtime.work in one process: what a worker takes on, what it leaves alone, how it drains.

The real-process version (several ``delite worker`` processes, signals, SIGKILL) is ``tests/fleet``.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
import time
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from store_fixtures import ListStore

from delite import Agent, MemoryStore, Runtime, ScriptedProvider, Status, current_call, tool
from delite.errors import UsageError
from delite.providers import call
from delite.runtime import WorkEvent, WorkReport
from delite.store import FileStore, Store


@pytest.fixture(params=["file", "memory", "list", "pg"])
def store(request: pytest.FixtureRequest, data_dir: Path) -> Iterator[Store]:
    if request.param == "pg":
        from delite.store._postgres import PostgresStore

        pg = PostgresStore(request.getfixturevalue("pg_url"))
        yield pg
        pg.close()
    elif request.param == "file":
        yield FileStore(data_dir)
    else:
        yield MemoryStore() if request.param == "memory" else ListStore()


class Model:
    """Replies from a script chosen by the execution's input."""

    name = "worker-test-model"

    def __call__(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]], model: str | None) -> Any:
        first = next(m["content"] for m in messages if m["role"] == "user")
        last = messages[-1].get("content")
        scripts: dict[str, list[Any]] = {
            "pay": [call("pay", amount=5), "paid"],
            "ask": [call("ask_human", question="Which city?"), lambda m: f"going to {last}"],
            "locate": [call("locate"), lambda m: f"you are in {last}"],
            "slow": [call("slow"), "slow done"],
            "boom": [],  # the model has nothing to say: the run fails
        }
        script = scripts.get(first, [call("work", i=0), call("work", i=1), f"done {first}"])
        return ScriptedProvider(script)(messages, tools, model)


class Tools:
    def __init__(self) -> None:
        self.ledger: list[str] = []
        self.busy = 0
        self.most = 0
        self.lock = threading.Lock()
        self.slow_started = threading.Event()

    def build(self) -> list[Any]:
        @tool
        def work(i: int) -> str:
            """Work, counting how many run at once."""
            with self.lock:
                self.busy += 1
                self.most = max(self.most, self.busy)
            time.sleep(0.03)
            with self.lock:
                self.busy -= 1
                self.ledger.append(current_call().idempotency_key)
            return f"w{i}"

        @tool(requires_confirmation=True)
        def pay(amount: int) -> str:
            """Pay."""
            self.ledger.append(current_call().idempotency_key)
            return f"paid {amount}"

        @tool(target="client")
        def locate() -> str:
            """Where the user is (the client knows)."""
            return ""

        @tool
        def slow() -> str:
            """A slow step."""
            self.slow_started.set()
            time.sleep(0.5)
            self.ledger.append(current_call().idempotency_key)
            return "slow"

        return [work, pay, locate, slow]


def agent_on(store: Store, tools: Tools, *, agent_id: str = "w", runtime: Runtime | None = None, **kw: Any) -> Agent:
    return Agent(store=store, provider=Model(), tools=tools.build(), agent_id=agent_id, runtime=runtime, **kw)


@contextlib.contextmanager
def working(rt: Runtime, *agents: Agent, **options: Any) -> Iterator[dict[str, WorkReport]]:
    out: dict[str, WorkReport] = {}
    thread = threading.Thread(target=lambda: out.setdefault("report", rt.work(*agents, **options)))
    thread.start()
    try:
        yield out
    finally:
        rt.stop_working()
        thread.join(30)
        assert not thread.is_alive()


def wait_for(check: Any, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def status(store: Store, eid: str) -> Status:
    return store.state(eid).status


def test_a_worker_takes_enqueued_executions_within_its_concurrency(store: Store) -> None:
    tools = Tools()
    client = agent_on(store, tools)
    ids = [client.enqueue(f"job {i}") for i in range(8)]
    events: list[WorkEvent] = []
    heard: list[str] = []
    with Runtime(store=store, recover=False) as rt:
        rt.on_complete(lambda agent_id, eid, response: heard.append(eid))
        worker = agent_on(store, Tools(), runtime=rt)
        with working(rt, worker, concurrency=2, poll=0.05, on_event=events.append) as out:
            wait_for(lambda: all(status(store, e) is Status.COMPLETED for e in ids))
        report = out["report"]
    assert (report.taken, report.completed, report.left, report.drained) == (8, 8, 0, True)
    assert report.clean
    assert sorted(heard) == sorted(ids)  # the runtime's callbacks hear about the worker's runs
    taken = [e.execution_id for e in events if e.event == "taken"]
    assert sorted(taken) == sorted(ids)
    assert {store.state(e).answer for e in ids} == {f"done job {i}" for i in range(8)}


def test_concurrency_bounds_the_runs_in_flight(data_dir: Path) -> None:
    store = FileStore(data_dir)
    tools = Tools()
    client = agent_on(store, Tools())
    ids = [client.enqueue(f"job {i}") for i in range(6)]
    with Runtime(store=store, recover=False) as rt:
        worker = agent_on(store, tools, runtime=rt)
        with working(rt, worker, concurrency=2, poll=0.05):
            wait_for(lambda: all(status(store, e) is Status.COMPLETED for e in ids))
    assert tools.most == 2 and len(tools.ledger) == 12


@pytest.mark.parametrize("kind", ["approval", "input", "client"])
def test_an_answer_recorded_elsewhere_makes_a_suspension_work_again(store: Store, kind: str) -> None:
    tools = Tools()
    text = {"approval": "pay", "input": "ask", "client": "locate"}[kind]
    recorder = agent_on(store, Tools())
    eid = recorder.enqueue(text)
    with Runtime(store=store, recover=False) as rt:
        worker = agent_on(store, tools, runtime=rt)
        with working(rt, worker, poll=0.05) as out:
            wait_for(lambda: status(store, eid).is_suspended)
            time.sleep(0.2)  # a few polls: an unanswered suspension is never taken
            assert store.runnable() == []
            call_id = store.state(eid).suspend_reason.confirmation_ids[0]  # type: ignore[union-attr]
            if kind == "approval":
                recorder.approve(eid, call_id)
            elif kind == "input":
                recorder.submit_input(eid, "Paris", advance=False)
            else:
                recorder.submit_tool_results(eid, {call_id: "Lyon"}, advance=False)
            wait_for(lambda: status(store, eid) is Status.COMPLETED)
        report = out["report"]
    assert (report.taken, report.suspended, report.completed) == (2, 1, 1)
    assert store.state(eid).answer == {"approval": "paid", "input": "going to Paris", "client": "you are in Lyon"}[kind]


def test_stop_working_drains_the_step_in_flight(data_dir: Path) -> None:
    store = FileStore(data_dir)
    tools = Tools()
    eid = agent_on(store, Tools()).enqueue("slow")
    with Runtime(store=store, recover=False) as rt:
        worker = agent_on(store, tools, runtime=rt)
        with working(rt, worker, poll=0.05) as out:
            assert tools.slow_started.wait(10)
        report = out["report"]
    assert (report.taken, report.left, report.drained, report.clean) == (1, 1, True, False)
    assert len(tools.ledger) == 1  # the call in flight finished
    state = store.state(eid)
    assert state.status is Status.RUNNING and not store.is_claimed(eid)
    assert [c.finished is not None for c in state.calls.values()] == [True]  # and was recorded
    assert [s.id for s in store.runnable()] == [eid]


def test_a_run_that_cannot_advance_is_reported_once_not_retried_in_a_loop(data_dir: Path) -> None:
    store = FileStore(data_dir)
    eid = Agent(store=store, provider=Model(), prompt="one prompt", agent_id="w").enqueue("job 1")
    events: list[WorkEvent] = []
    with Runtime(store=store, recover=False) as rt:
        drifted = Agent(store=store, provider=Model(), prompt="another prompt", agent_id="w", runtime=rt)
        with working(rt, drifted, poll=0.02, on_event=events.append) as out:
            wait_for(lambda: len(events) >= 2)
            time.sleep(0.3)  # fifteen polls
        report = out["report"]
    assert [(e.event, e.execution_id) for e in events] == [("taken", eid), ("error", eid)]
    assert events[1].error is not None and "DriftError" in events[1].error
    assert report.errors == 1 and status(store, eid) is Status.RUNNING


def test_a_run_that_fails_is_reported_failed_and_left_alone(store: Store) -> None:
    eid = agent_on(store, Tools()).enqueue("boom")
    events: list[WorkEvent] = []
    with Runtime(store=store, recover=False) as rt:
        failures: list[str] = []
        rt.on_fail(lambda agent_id, execution_id, error: failures.append(execution_id))
        with working(rt, agent_on(store, Tools(), runtime=rt), poll=0.02, on_event=events.append) as out:
            wait_for(lambda: len(events) >= 2)
            time.sleep(0.2)
        report = out["report"]
    assert [(e.event, e.execution_id) for e in events] == [("taken", eid), ("failed", eid)]
    assert status(store, eid) is Status.FAILED and report.failed == 1 and failures == [eid]


def test_a_cancelled_or_foreign_execution_is_not_taken(data_dir: Path) -> None:
    store = FileStore(data_dir)
    tools = Tools()
    cancelled = agent_on(store, Tools()).enqueue("job 1")
    agent_on(store, Tools()).cancel(cancelled)
    foreign = agent_on(store, Tools(), agent_id="someone-else").enqueue("job 2")
    mine = agent_on(store, Tools()).enqueue("job 3")
    events: list[WorkEvent] = []
    rt = Runtime(store=store, recover=False)
    with rt, working(rt, agent_on(store, tools, runtime=rt), poll=0.02, on_event=events.append):
        wait_for(lambda: status(store, mine) is Status.COMPLETED)
        time.sleep(0.2)
    assert {e.execution_id for e in events} == {mine}
    assert status(store, cancelled) is Status.CANCELLED and status(store, foreign) is Status.RUNNING
    assert store.head(foreign) == 1


def test_work_checks_its_arguments(data_dir: Path) -> None:
    store = FileStore(data_dir)
    with Runtime(store=store, recover=False) as rt:
        agent = agent_on(store, Tools())
        for bad in ({"concurrency": 0}, {"concurrency": True}, {"poll": 0}, {"poll": "1"}, {"on_event": 3}):
            with pytest.raises(UsageError):
                rt.work(agent, **bad)
        with pytest.raises(UsageError):
            rt.work("not an agent")  # type: ignore[arg-type]
        with pytest.raises(UsageError, match="needs an agent"):
            rt.work()


def test_stop_working_before_work_returns_at_once(data_dir: Path) -> None:
    store = FileStore(data_dir)
    with Runtime(store=store, recover=False) as rt:
        agent = agent_on(store, Tools(), runtime=rt)
        rt.stop_working()
        report = rt.work(agent, poll=10)
    assert report == WorkReport(drained=True)


def test_shutting_the_runtime_down_ends_its_work_loop(data_dir: Path) -> None:
    store = FileStore(data_dir)
    tools = Tools()
    eid = agent_on(store, Tools()).enqueue("slow")
    rt = Runtime(store=store, recover=False)
    worker = agent_on(store, tools, runtime=rt)
    out: dict[str, WorkReport] = {}
    thread = threading.Thread(target=lambda: out.setdefault("report", rt.work(worker, poll=0.05)))
    thread.start()
    assert tools.slow_started.wait(10)
    rt.shutdown()  # from another thread: the loop drains and returns
    thread.join(10)
    assert not thread.is_alive() and out["report"].left == 1
    assert status(store, eid) is Status.RUNNING and not store.is_claimed(eid)


def test_stop_working_may_interrupt_the_work_loop_anywhere_as_a_signal_handler_does(data_dir: Path) -> None:
    """A signal handler runs between two bytecodes of the thread it interrupts, wherever that thread is: inside
    the worker loop's waits, with their locks held. ``stop_working()`` called at each such instant (a tracer
    calls it in the loop's own thread, at the k-th line the loop runs in the waiting code, round after round
    until a round gets to the loop's third look for work: its start and two whole turns) must not deadlock.
    A ``threading.Event`` set from there waited forever on the lock its own thread held (a drained ``delite
    worker`` that never exited)."""
    waiting_code = ("threading.py", "queue.py", "_flag.py", "_worker.py")
    store = MemoryStore()
    rt = Runtime(store=store, recover=False)
    agent = agent_on(store, Tools(), runtime=rt)
    k = looks = 0
    while looks < 3:
        k += 1
        seen = {"lines": 0, "looks": 0, "fired": False}

        def tracer(frame: types.FrameType, event: str, arg: object, seen: dict[str, Any] = seen, k: int = k) -> Any:
            if seen["fired"]:
                return None
            if event == "call" and frame.f_code.co_name == "_take_more":
                seen["looks"] += 1
            elif event == "line" and frame.f_code.co_filename.endswith(waiting_code):
                seen["lines"] += 1
                if seen["lines"] == k:
                    seen["fired"] = True
                    rt.stop_working()  # as a SIGTERM handler would, right here
            return tracer

        def serve(tracer: Any = tracer) -> None:
            sys.settrace(tracer)
            try:
                rt.work(agent, poll=0.001)
            finally:
                sys.settrace(None)

        thread = threading.Thread(target=serve, daemon=True)
        thread.start()
        thread.join(30)
        assert not thread.is_alive(), f"stop_working() at line {k} of the loop's waits: work() never returned"
        assert seen["fired"]
        looks = seen["looks"]
    rt.close()  # not on a failure: it would wait for the stuck loop


def test_a_real_signal_whose_handler_calls_stop_working_ends_a_long_poll_at_once(data_dir: Path) -> None:
    """The work loop waiting out a 30 s poll in the main thread; SIGUSR1's handler calls ``stop_working()``."""
    store = FileStore(data_dir)
    with Runtime(store=store, recover=False) as rt:
        agent = agent_on(store, Tools(), runtime=rt)
        previous = signal.signal(signal.SIGUSR1, lambda _s, _f: rt.stop_working())
        timer = threading.Timer(0.3, os.kill, (os.getpid(), signal.SIGUSR1))
        try:
            timer.start()
            began = time.monotonic()
            report = rt.work(agent, poll=30)
            waited = time.monotonic() - began
        finally:
            timer.cancel()
            signal.signal(signal.SIGUSR1, previous)
    assert report.drained and waited < 20, waited
