"""The agent's edges: who closes a store, control signals beside the error tree, one operation per twin pair."""

from __future__ import annotations

import asyncio
import inspect
from pathlib import Path
from typing import Any

import pytest

import delite
from delite import Agent, MemoryStore, Runtime, ScriptedProvider, Status, delegate, tool
from delite.engine._events import StreamClosed
from delite.errors import ControlSignal, DeliteError
from delite.providers import call
from delite.store import FileStore
from delite.tools._base import DelegationSuspended


class CountingMemoryStore(MemoryStore):
    """A real MemoryStore that counts the times it is closed."""

    def __init__(self) -> None:
        super().__init__()
        self.closes = 0

    def close(self) -> None:
        self.closes += 1
        super().close()


class CountingFileStore(FileStore):
    """A real FileStore that counts the times it is closed."""

    closes = 0

    def close(self) -> None:
        self.closes += 1
        super().close()


def scripted(*turns: Any) -> ScriptedProvider:
    return ScriptedProvider(list(turns))


@pytest.mark.parametrize("kind", ["memory", "file"])
def test_an_agent_handed_a_store_leaves_it_open_for_the_next_agent(data_dir: Path, kind: str) -> None:
    store = CountingMemoryStore() if kind == "memory" else CountingFileStore(data_dir)
    with Agent(store=store, provider=scripted("one")) as first:
        eid = first.run("x").execution_id
        assert first.owns_store is False
    assert store.closes == 0
    second = Agent(store=store, provider=scripted("two"))
    assert second.get(eid).status is Status.COMPLETED
    assert second.run("y").answer == "two"
    second.close()
    asyncio.run(second.aclose())
    assert store.closes == 0


def test_an_agent_closes_the_store_it_opened(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("delite.store._file.FileStore", CountingFileStore)  # the agent imports it when it opens one
    agent = Agent(data_dir, provider=scripted("ok"))
    assert agent.owns_store is True and isinstance(agent.store, CountingFileStore)
    agent.run("x")
    agent.close()
    assert agent.store.closes == 1
    monkeypatch.chdir(data_dir.parent)
    assert Agent().owns_store is True  # the default data directory is opened, so owned, too


def test_a_runtime_closes_what_it_opened_and_not_what_it_was_handed(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    handed = CountingMemoryStore()
    with Runtime(store=handed) as rt:
        agent = Agent(runtime=rt, provider=scripted("done"))
        assert agent.store is handed and agent.owns_store is False
        assert rt.wait(rt.go(agent, "x")).answer == "done"
        agent.close()
        assert handed.closes == 0
    assert rt.owns_store is False and handed.closes == 0
    assert Agent(store=handed, provider=scripted("again")).run("y").answer == "again"

    monkeypatch.setattr("delite.store._file.FileStore", CountingFileStore)  # open_store imports it when it opens one
    rt = Runtime(data_dir)
    borrower = Agent(runtime=rt, provider=scripted("ok"))
    assert rt.owns_store is True and borrower.store is rt.store and borrower.owns_store is False
    borrower.run("x")
    borrower.close()
    assert rt.store.closes == 0  # the agent borrowed it: the runtime closes it
    rt.close()
    assert rt.store.closes == 1


def test_control_signals_share_one_base_outside_the_error_tree() -> None:
    assert issubclass(StreamClosed, ControlSignal) and issubclass(DelegationSuspended, ControlSignal)
    assert not issubclass(ControlSignal, Exception) and issubclass(ControlSignal, BaseException)
    assert not issubclass(ControlSignal, DeliteError)
    assert delite.ControlSignal is ControlSignal and "ControlSignal" in delite.errors.__all__
    for signal in (StreamClosed(), DelegationSuspended("child", None)):
        with pytest.raises(ControlSignal):
            careful(signal)


def careful(signal: BaseException) -> str:
    """What a user's tool writes: ``except Exception`` must not swallow a control signal."""
    try:
        raise signal
    except Exception:
        return "swallowed"


def test_a_tools_except_exception_does_not_swallow_a_sub_agents_suspension(data_dir: Path) -> None:
    @tool(requires_confirmation=True)
    def transfer(amount: int) -> str:
        """Move money (a human approves it)."""
        return f"moved {amount}"

    swallowed: list[BaseException] = []

    @tool
    def ask(task: str) -> str:
        """Delegate to a child agent, catching every error as careful tool code does."""
        child = Agent(
            data_dir, agent_id="child", provider=scripted(call("transfer", amount=5), "paid"), tools=[transfer]
        )
        try:
            return delegate(child, task).answer or ""
        except Exception as e:
            swallowed.append(e)
            return "failed"

    parent = Agent(data_dir, agent_id="parent", provider=scripted(call("ask", task="pay"), "done"), tools=[ask])
    response = parent.run("go")
    assert swallowed == []
    assert response.status is Status.WAITING_APPROVAL and response.suspend_reason is not None


def test_the_twins_keep_their_signatures_and_docstrings() -> None:
    pairs = ["response", "submit_approval", "decide", "submit_tool_results", "submit_input", "resolve", "cancel"]
    for name in pairs:
        sync, twin = getattr(Agent, name), getattr(Agent, "a" + name)
        assert sync.__name__ == name and twin.__name__ == "a" + name
        assert inspect.iscoroutinefunction(twin) and not inspect.iscoroutinefunction(sync)
        assert inspect.signature(sync) == inspect.signature(twin)
        assert "self" in inspect.signature(sync).parameters
        assert sync.__doc__ and len(sync.__doc__) > 40 and f":meth:`{name}`" in (twin.__doc__ or "")
    params = inspect.signature(Agent.resolve).parameters
    assert list(params) == ["self", "execution_id", "call_id", "result", "error", "rerun", "advance"]
    assert params["advance"].default is True and params["rerun"].kind is inspect.Parameter.KEYWORD_ONLY


def test_unknown_run_options_are_refused_before_anything_is_written(data_dir: Path) -> None:
    agent = Agent(data_dir, provider=scripted("ok"))
    with pytest.raises(TypeError, match="stream\\(\\) got an unexpected keyword argument 'executon_id'"):
        agent.stream("x", executon_id="e1")  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="astream_events\\(\\) got an unexpected keyword argument 'meta'"):
        agent.astream_events("x", meta={})  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="arun\\(\\) got an unexpected keyword argument 'modl'"):
        asyncio.run(agent.arun("x", modl="m"))  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="astream\\(\\) got an unexpected keyword argument 'id'"):
        agent.astream("x", id="e1")  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="stream_events\\(\\) got an unexpected keyword argument 'id'"):
        agent.stream_events("x", id="e1")  # type: ignore[call-arg]
    assert not (data_dir / "executions").exists() or not any((data_dir / "executions").iterdir())
    chunks = list(stream := agent.stream("x", execution_id="e1", metadata={"k": 1}))
    assert "".join(chunks) == "ok" and stream.response is not None and stream.response.execution_id == "e1"
    assert agent.get("e1").metadata == {"k": 1}
