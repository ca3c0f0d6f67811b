"""The async driver makes a sync tool's step in one thread hop: the model turn's append, the body, its result.

(:func:`delite.engine._aio._segment`.) What a run records and returns is the sync driver's; what changes is
where the effects are made, so these tests pin the hop count and every way a segment can end: handed back to
the loop, cancelled at each of its effects, or the operation raising inside it.
"""

from __future__ import annotations

import asyncio
import contextvars
import threading
from pathlib import Path
from typing import Any

import pytest
from _stores import store_at

from delite import Agent, RetryPolicy, ScriptedProvider, tool
from delite.engine import _aio
from delite.engine._begin import begin
from delite.engine._effects import NEXT_RESULT, Append, Invocation, Sleep, StartCalls
from delite.errors import ProviderError
from delite.log.records import ModelResponded, ToolFinished, ToolStarted
from delite.providers import call
from delite.store._file import FileExecutionLog
from delite.tools._base import ToolCallContext


@pytest.fixture
def data_dir(any_data_dir: Any) -> Any:
    """Every test here runs on the file store and on PostgreSQL."""
    return any_data_dir


def outputs(messages: list[dict[str, Any]]) -> str:
    return " | ".join(m["content"] for m in messages if m["role"] == "tool")


class Hops:
    """Counts the calls handed to delite's I/O threads and to the worker threads while installed."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.count = 0
        for pool in (_aio.io_pool(), _aio.work_pool()):
            real = pool.submit

            def submit(fn: Any, *args: Any, _real: Any = real) -> None:
                self.count += 1
                _real(fn, *args)

            monkeypatch.setattr(pool, "submit", submit)


def kinds(data_dir: Any, eid: str) -> list[str]:
    return [type(r).__name__ for r in store_at(data_dir).read(eid).records]


def test_a_sync_tool_step_is_one_hop_and_records_what_run_does(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ran: list[str] = []

    @tool
    def step(i: int) -> str:
        """A sync tool."""
        ran.append(threading.current_thread().name)
        return f"s{i}"

    def agent(steps: int) -> Agent:
        return Agent(data_dir, provider=ScriptedProvider.tool_loop(steps, "step"), tools=[step], durability="full")

    sync = agent(6).run("go", execution_id="s")
    hops = Hops(monkeypatch)

    async def main(steps: int, eid: str) -> tuple[str, str | None, int]:
        before = hops.count
        response = await agent(steps).arun("go", execution_id=eid)
        return threading.current_thread().name, response.answer, hops.count - before

    loop_thread, answer, six = asyncio.run(main(6, "a"))
    _, _, three = asyncio.run(main(3, "b"))
    assert answer == sync.answer == "done"
    assert kinds(data_dir, "a") == kinds(data_dir, "s")
    assert len(ran) == 6 + 6 + 3 and loop_thread not in ran[6:]
    # One hop per tool step (the turn's append, the body, its result); the rest (the claim, the last turn's
    # append, the release) is the same whatever the number of steps. It was three per step.
    assert six - three == 3, (six, three)


def test_turns_of_one_several_and_async_bodies_in_a_row(data_dir: Path) -> None:
    @tool
    def upper(text: str) -> str:
        """A sync tool."""
        return text.upper()

    @tool
    async def lower(text: str) -> str:
        """An async tool."""
        await asyncio.sleep(0)
        return text.lower()

    def script() -> ScriptedProvider:
        both = {
            "tool_calls": [
                {"name": "upper", "arguments": {"text": "b"}},
                {"name": "upper", "arguments": {"text": "c"}},
            ]
        }
        return ScriptedProvider(
            [call("upper", text="a"), both, call("lower", text="D"), call("upper", text="e"), outputs]
        )

    sync = Agent(data_dir, provider=script(), tools=[upper, lower]).run("go", execution_id="s")
    done = asyncio.run(Agent(data_dir, provider=script(), tools=[upper, lower]).arun("go", execution_id="a"))
    assert done.answer == sync.answer == "A | B | C | d | E"
    assert kinds(data_dir, "a") == kinds(data_dir, "s")


def test_what_a_body_sets_in_its_context_stays_there(data_dir: Path) -> None:
    seen: contextvars.ContextVar[str] = contextvars.ContextVar("seen", default="unset")
    saw: list[str] = []

    @tool
    def mark(i: int) -> str:
        """Sets a context variable, as user code may."""
        saw.append(seen.get())
        seen.set(f"set by {i}")
        return "ok"

    async def main() -> None:
        seen.set("the caller's")
        agent = Agent(data_dir, provider=ScriptedProvider.tool_loop(3, "mark"), tools=[mark])
        assert (await agent.arun("go")).answer == "done"
        assert seen.get() == "the caller's"

    asyncio.run(main())
    assert saw == ["the caller's"] * 3


def test_cancelled_during_the_append_before_a_body_the_body_never_runs(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The append is let finish (the intent is on disk), the body is not started, the claim is let go."""
    ran: list[int] = []
    writing = threading.Event()
    go_on = threading.Event()
    real_append = _aio._append

    def held_append(effect: Any) -> None:
        if any(isinstance(r, ToolStarted) for r in effect.records) and not go_on.is_set():
            writing.set()
            go_on.wait(30)
        real_append(effect)

    monkeypatch.setattr(_aio, "_append", held_append)

    @tool
    def act(i: int) -> str:
        """Acts on the world."""
        ran.append(i)
        return "acted"

    async def main() -> None:
        agent = Agent(data_dir, provider=ScriptedProvider.tool_loop(1, "act"), tools=[act], durability="full")
        task = asyncio.create_task(agent.arun("go", execution_id="c"))
        await asyncio.to_thread(writing.wait, 30)
        task.cancel()
        await asyncio.sleep(0.01)
        assert not task.done()  # it waits for the append the thread is making
        go_on.set()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert ran == []
        records = store_at(data_dir).read("c").records
        assert [type(r) for r in records[-2:]] == [ModelResponded, ToolStarted]
        assert not store_at(data_dir).is_claimed("c")
        assert (await agent.aresume("c")).answer == "done"
        assert ran == [0]

    asyncio.run(main())


def sync_loop(steps: int, tool_name: str) -> Any:
    """A plain sync model (no ``acall``, so it runs in a worker thread): ``steps`` calls of ``tool_name``, then "done"."""

    def model(messages: list[dict[str, Any]], tools: Any, model: Any) -> dict[str, Any]:
        done = sum(m["role"] == "tool" for m in messages)
        if done < steps:
            return {"tool_calls": [{"name": tool_name, "arguments": {"i": done}}]}
        return {"content": "done"}

    return model


@pytest.mark.parametrize("model", ["async", "sync"])
def test_cancelled_during_the_body_it_ends_first_and_its_result_is_not_recorded(data_dir: Path, model: str) -> None:
    started = threading.Event()
    release = threading.Event()
    ran: list[int] = []

    @tool
    def slow(i: int) -> str:
        """A body that takes a while."""
        ran.append(i)
        started.set()
        release.wait(30)
        return "slow"

    async def main() -> None:
        provider = ScriptedProvider.tool_loop(1, "slow") if model == "async" else sync_loop(1, "slow")
        agent = Agent(data_dir, provider=provider, tools=[slow], durability="full")
        task = asyncio.create_task(agent.arun("go", execution_id="b"))
        await asyncio.to_thread(started.wait, 30)
        task.cancel()
        await asyncio.sleep(0.01)
        assert not task.done() and store_at(data_dir).is_claimed("b")  # the body still runs, the claim is held
        release.set()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert not store_at(data_dir).is_claimed("b")
        assert not any(isinstance(r, ToolFinished) for r in store_at(data_dir).read("b").records)
        assert (await agent.aresume("b")).answer == "done"  # in doubt, run again (retry_in_doubt)
        assert ran == [0, 0]

    asyncio.run(main())


class Crash(BaseException):
    """Not an Exception: a body raising it is not an outcome but a crash of the run."""


def test_a_crash_inside_a_body_propagates_from_the_run_and_lets_go(data_dir: Path) -> None:
    @tool
    def boom(i: int) -> str:
        """Crashes."""
        raise Crash

    async def main() -> None:
        agent = Agent(data_dir, provider=ScriptedProvider.tool_loop(1, "boom"), tools=[boom], durability="full")
        with pytest.raises(Crash):
            await agent.arun("go", execution_id="x")

    asyncio.run(main())
    assert not store_at(data_dir).is_claimed("x")
    assert kinds(data_dir, "x")[-1] == "ToolStarted"  # in doubt, as after a crash of the process


def test_many_runs_with_sync_tools_on_one_loop(data_dir: Path) -> None:
    @tool
    def step(i: int) -> str:
        """A sync tool."""
        return f"s{i}"

    async def main() -> list[str | None]:
        agent = Agent(data_dir, provider=ScriptedProvider.tool_loop(4, "step", delay=0.001), tools=[step])
        responses = await asyncio.gather(*(agent.arun("go", execution_id=f"m{i}") for i in range(20)))
        return [r.answer for r in responses]

    assert asyncio.run(main()) == ["done"] * 20
    for i in range(20):
        assert kinds(data_dir, f"m{i}").count("ToolFinished") == 4


# -- the driver itself, with operations written for the case ------------------------------------------------------


class SlowLog:
    """A log whose appends ``fsync`` (so the driver hands them to threads) and record the thread they ran in."""

    def __init__(self) -> None:
        self.appends: list[tuple[str, list[Any]]] = []

    def waits(self, *, barrier: bool) -> bool:
        return True

    def append(self, records: list[Any], *, barrier: bool = False) -> None:
        self.appends.append((threading.current_thread().name, list(records)))


@tool
def double(n: int) -> int:
    """A sync tool."""
    return 2 * n


def one_call(n: int) -> Any:
    context = ToolCallContext(execution_id="e", call_id="c1.0", idempotency_key="k", attempt=1)
    return Invocation(0, double, {"n": n}, context)


def test_a_body_started_in_the_thread_but_not_run_there_is_run_by_the_loop() -> None:
    """An effect that needs the loop between a body's start and its result: the loop runs the body, as before."""
    log = SlowLog()

    def operation() -> Any:
        yield Append(log, ["intent"], barrier=True, ahead=True)
        yield StartCalls([one_call(21)])
        yield Sleep(0)  # handed back to the loop with the body not run
        outcomes = yield NEXT_RESULT
        yield Append(log, ["result"], barrier=True)
        return [o.value for o in outcomes]

    assert asyncio.run(_aio.adrive(operation())) == [42]
    assert [records for _, records in log.appends] == [["intent"], ["result"]]
    assert log.appends[0][0].startswith("delite-work")  # in the segment's thread


def test_an_operation_that_raises_in_the_thread_raises_from_the_driver() -> None:
    log = SlowLog()

    def operation() -> Any:
        yield Append(log, ["a"], barrier=True, ahead=True)
        raise LookupError("the operation's own error")

    with pytest.raises(LookupError, match="own error"):
        asyncio.run(_aio.adrive(operation()))
    assert [records for _, records in log.appends] == [["a"]]


def test_an_operation_that_returns_in_the_thread_returns_from_the_driver() -> None:
    log = SlowLog()

    def operation() -> Any:
        yield Append(log, ["intent"], barrier=True, ahead=True)
        yield StartCalls([one_call(5)])
        outcomes = yield NEXT_RESULT
        yield Append(log, ["result"], barrier=True)
        return outcomes[0].value

    assert asyncio.run(_aio.adrive(operation())) == 10
    names = {name for name, _ in log.appends}
    assert len(names) == 1 and next(iter(names)).startswith("delite-work")  # one thread, one hop


def test_cancelled_while_the_thread_ends_the_operation_the_driver_raises_the_cancellation() -> None:
    log = SlowLog()
    inside = threading.Event()
    go_on = threading.Event()
    real_append = log.append

    def held(records: list[Any], *, barrier: bool = False) -> None:
        inside.set()
        go_on.wait(30)
        real_append(records, barrier=barrier)

    log.append = held  # type: ignore[method-assign]

    def operation() -> Any:
        yield Append(log, ["last"], barrier=True, ahead=True)
        return "finished"

    async def main() -> None:
        task = asyncio.create_task(_aio.adrive(operation()))
        await asyncio.to_thread(inside.wait, 30)
        task.cancel()
        go_on.set()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    assert [records for _, records in log.appends] == [["last"]]  # the append was let finish


# -- the store calls that end a run share one hop ---------------------------------------------------------------------


def test_the_store_calls_that_end_a_run_and_its_release_take_one_hop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Under ``arun`` (``off``: its appends are writes to the page cache, made on the loop): the claim, then the
    snapshot of the outcome and the release of the claim in one hop. It was four: the claim, the fold of the
    records the claim had just created, the snapshot, the release."""
    where: list[str] = []
    agent = Agent(tmp_path, provider=ScriptedProvider(["the answer"]), durability="off")
    log_class = FileExecutionLog
    for name in ("save_outcome", "release"):
        real = getattr(log_class, name)

        def spy(log: Any, *args: Any, _real: Any = real, _name: str = name) -> Any:
            where.append(f"{_name} in {threading.current_thread().name}")
            return _real(log, *args)

        monkeypatch.setattr(log_class, name, spy)
    hops = Hops(monkeypatch)
    response = asyncio.run(agent.arun("go", execution_id="one"))
    assert response.answer == "the answer"
    assert hops.count == 2, hops.count
    assert len(where) == 2 and where[0].split(" in ")[1] == where[1].split(" in ")[1], where
    assert not agent.store.is_claimed("one")
    assert agent.store.read("one").records[-1].__class__.__name__ == "ExecutionCompleted"
    assert asyncio.run(agent.arun("go", execution_id="one")).answer == "the answer"  # answered from its snapshot


def test_a_resume_claims_and_folds_in_one_hop(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A claim and the fold of what it read are one hop; a finished execution's resume is one hop in all (it was
    two: the claim, then the release), an unfinished one's two (it was four: claim, fold, snapshot, release)."""
    failing = [True]

    async def model(messages: list[dict[str, Any]], tools: Any, model: Any) -> dict[str, Any]:
        if failing[0]:
            raise RuntimeError("the model is down")
        return {"content": "back"}

    agent = Agent(tmp_path, provider=model, durability="off", retry=RetryPolicy(max_attempts=1))
    with pytest.raises(ProviderError, match="down"):
        asyncio.run(agent.arun("go", execution_id="f"))
    failing[0] = False
    hops = Hops(monkeypatch)
    assert asyncio.run(agent.aresume("f")).answer == "back"
    assert hops.count == 2, hops.count
    before = hops.count
    assert asyncio.run(agent.aresume("f")).answer == "back"
    assert hops.count - before == 1, hops.count - before
    assert not agent.store.is_claimed("f")


def test_a_run_begun_in_the_caller_thread_takes_one_hop_to_its_end(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """How a Runtime starts one (``begin``, then the rest on a loop): no hop to fold what the claim created, one for
    the snapshot and the release together (it was three)."""
    agent = Agent(tmp_path, provider=ScriptedProvider(["the answer"]), durability="off")
    started_run = begin(agent._start("go", execution_id="begun"))  # what Runtime.go does
    assert started_run.log.created
    hops = Hops(monkeypatch)
    response = asyncio.run(_aio.adrive(started_run.rest()))
    assert response.answer == "the answer"
    assert hops.count == 1, hops.count
    assert not agent.store.is_claimed("begun")


def test_a_release_that_fails_in_the_thread_raises_from_the_driver(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    agent = Agent(tmp_path, provider=ScriptedProvider(["the answer"]), durability="off")
    log_class = FileExecutionLog
    real = log_class.release
    calls: list[str] = []

    def failing(log: Any) -> None:
        calls.append(threading.current_thread().name)
        if len(calls) == 1:
            raise OSError("the release failed once")
        real(log)

    monkeypatch.setattr(log_class, "release", failing)
    with pytest.raises(OSError, match="failed once"):
        asyncio.run(agent.arun("go", execution_id="r"))
    monkeypatch.setattr(log_class, "release", real)
    assert agent.store.read("r").records[-1].__class__.__name__ == "ExecutionCompleted"
    assert len(calls) == 1 and calls[0].startswith("delite-io")  # raised in the thread, raised once by the driver


# -- a provider with no async path: its calls run in worker threads, between the segments ------------------------


def test_cancelled_during_a_sync_model_call_the_caller_does_not_wait_for_it(data_dir: Path) -> None:
    """As before the segments: the call goes on in its thread, its answer is never recorded, the run stops now."""
    gate = threading.Event()
    asked = threading.Event()
    calls: list[int] = []

    def slow_model(messages: list[dict[str, Any]], tools: Any, model: Any) -> dict[str, Any]:
        calls.append(len(calls))
        if len(calls) == 1:  # the first call blocks until the test lets it go; its answer comes too late
            asked.set()
            gate.wait(30)
            return {"content": "too late"}
        return {"content": "done"}

    async def main() -> None:
        agent = Agent(data_dir, provider=slow_model)
        task = asyncio.create_task(agent.arun("go", execution_id="m"))
        await asyncio.to_thread(asked.wait, 30)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(task, 10)  # returns while the model call is still blocked
        assert not gate.is_set()
        assert not store_at(data_dir).is_claimed("m")
        gate.set()
        await asyncio.sleep(0.05)  # the call ends in its thread; nothing of it reaches the log
        assert "ModelResponded" not in kinds(data_dir, "m")
        assert (await agent.aresume("m")).answer == "done"
        assert len(calls) == 2

    asyncio.run(main())
