"""Streaming runs (``agent.stream`` / ``agent.stream_events``): event order, retries mid-stream, a consumer
that goes away, errors and suspensions. Durability is the run's own: only complete turns are recorded."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from delite import Agent, RetryPolicy, ScriptedProvider, tool
from delite.engine._events import (
    Completed,
    RetryScheduled,
    Suspended,
    TextDelta,
    ToolCallFinished,
    ToolCallStarted,
)
from delite.errors import ProviderError
from delite.log.records import ModelResponded
from delite.providers import ModelTurn, call
from delite.store import FileStore

FAST = RetryPolicy(base_delay=0.001)


@tool
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


def test_events_in_order(data_dir: Path) -> None:
    agent = Agent(data_dir, provider=ScriptedProvider([call("add", a=2, b=3), "The sum is 5."]), tools=[add])
    stream = agent.stream_events("2+3?")
    events = list(stream)
    assert [type(e).__name__ for e in events] == [
        "ToolCallStarted",
        "ToolCallFinished",
        "TextDelta",
        "TextDelta",
        "TextDelta",
        "TextDelta",
        "Completed",
    ]
    started, finished = events[0], events[1]
    assert isinstance(started, ToolCallStarted) and (started.name, started.arguments, started.attempt) == (
        "add",
        {"a": 2, "b": 3},
        1,
    )
    assert isinstance(finished, ToolCallFinished) and (finished.result, finished.error) == (5, None)
    assert "".join(e.text for e in events if isinstance(e, TextDelta)) == "The sum is 5."
    assert {e.step for e in events if isinstance(e, TextDelta)} == {2}
    last = events[-1]
    assert isinstance(last, Completed) and last.response.answer == "The sum is 5."
    assert stream.response is last.response
    assert all(e.execution_id == stream.execution_id != "" for e in events)
    with pytest.raises(RuntimeError, match="only once"):
        iter(stream)


def test_a_provider_that_cannot_stream_gives_each_turn_at_once(data_dir: Path) -> None:
    def plain(messages: list[dict[str, Any]], tools: list[dict[str, Any]], model: str | None) -> dict[str, Any]:
        return {"content": "Hello there."}

    stream = Agent(data_dir, provider=plain).stream("hi")
    assert list(stream) == ["Hello there."]
    assert stream.response is not None and stream.response.answer == "Hello there."


class Flaky:
    """Streams part of its answer, breaks, then streams ``retry_text`` in full."""

    name = "flaky"

    def __init__(self, first: str, retry_text: str) -> None:
        self.first = first
        self.retry_text = retry_text
        self.calls = 0

    def __call__(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]], model: str | None) -> ModelTurn:
        return ModelTurn(content=self.retry_text)

    def stream(
        self,
        messages: list[dict[str, Any]],
        tools: list[dict[str, Any]],
        model: str | None,
        *,
        on_text: Callable[[str], None],
    ) -> ModelTurn:
        self.calls += 1
        if self.calls == 1:
            on_text(self.first)
            raise ProviderError("connection reset mid-stream", provider=self.name, retryable=True)
        for i in range(0, len(self.retry_text), 3):
            on_text(self.retry_text[i : i + 3])
        return ModelTurn(content=self.retry_text)


def test_retry_mid_stream_in_both_forms(data_dir: Path) -> None:
    agent = Agent(data_dir, provider=Flaky("Hello wor", "Hello world."), retry=FAST)
    events = list(agent.stream_events("hi", execution_id="e1"))
    retry = next(e for e in events if isinstance(e, RetryScheduled))
    assert (retry.step, retry.attempt) == (1, 1) and "connection reset" in retry.error
    assert "".join(e.text for e in events if isinstance(e, TextDelta) and e.attempt == 2) == "Hello world."
    turns = [r for r in FileStore(data_dir).read("e1").records if isinstance(r, ModelResponded)]
    assert [(t.content, t.attempt) for t in turns] == [("Hello world.", 2)]  # never the half turn

    # The text form shows the retried text from where the shown text ends...
    agent2 = Agent(data_dir, provider=Flaky("Hello wor", "Hello world."), retry=FAST)
    chunks = list(agent2.stream("hi", execution_id="e2"))
    assert "".join(chunks) == "Hello world."
    # ...and marks a retry that says something else with a line break, since shown text cannot be taken back.
    agent3 = Agent(data_dir, provider=Flaky("Hello wor", "Goodbye."), retry=FAST)
    assert "".join(agent3.stream("hi", execution_id="e3")) == "Hello wor\nGoodbye."


class Endless:
    """Streams one piece, then keeps streaming until the consumer is gone (never finishes a turn)."""

    name = "endless"

    def __call__(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]], model: str | None) -> ModelTurn:
        raise AssertionError("not used")

    def stream(
        self,
        messages: list[dict[str, Any]],
        tools: list[dict[str, Any]],
        model: str | None,
        *,
        on_text: Callable[[str], None],
    ) -> ModelTurn:
        on_text("Once upon")
        for _ in range(500):
            time.sleep(0.01)
            on_text(" and")
        raise AssertionError("the consumer left; the stream should have been stopped")


def test_consumer_leaving_stops_the_run_like_a_crash(data_dir: Path) -> None:
    agent = Agent(data_dir, provider=Endless())
    stream = agent.stream("tell me a story", execution_id="gone")
    for chunk in stream:
        assert chunk == "Once upon"
        break
    stream.close()
    state = agent.get("gone")
    assert state.steps == 0 and not state.status.is_terminal  # nothing half-done was recorded
    again = Agent(data_dir, provider=ScriptedProvider(["The end."]), on_drift="allow")
    assert again.run("tell me a story", execution_id="gone").answer == "The end."  # claim released, resumable


def test_errors_are_raised_from_the_iteration(data_dir: Path) -> None:
    def broken(messages: list[dict[str, Any]], tools: list[dict[str, Any]], model: str | None) -> dict[str, Any]:
        raise ProviderError("bad request", provider="broken")

    agent = Agent(data_dir, provider=broken)
    with pytest.raises(ProviderError, match="bad request"):
        list(agent.stream("hi", execution_id="err"))
    assert agent.get("err").status.value == "failed"


def test_suspension_ends_the_stream(data_dir: Path) -> None:
    agent = Agent(
        data_dir, provider=ScriptedProvider([call("add", a=1, b=1), "2"]), tools=[add], require_approval=["add"]
    )
    events = list(agent.stream_events("1+1?"))
    last = events[-1]
    assert isinstance(last, Suspended) and last.response.suspend_reason is not None
    assert last.response.suspend_reason.kind == "approval"
    assert not any(isinstance(e, ToolCallStarted) for e in events)


def test_leaving_while_a_tool_runs_lets_it_finish_and_record_its_result(data_dir: Path) -> None:
    import threading

    left = threading.Event()
    runs: list[int] = []
    waited: list[bool] = []

    @tool
    def slow(n: int) -> int:
        """A tool that is still running when the consumer leaves, and ends only after it has."""
        waited.append(left.wait(30))
        runs.append(n)
        return n

    agent = Agent(data_dir, provider=ScriptedProvider([call("slow", n=1), "done"]), tools=[slow])
    events = agent.stream_events("go", execution_id="mid-tool")
    real_close = events.close

    def close() -> None:  # the consumer leaving: the barrier the tool waits for
        left.set()
        real_close()

    events.close = close  # type: ignore[method-assign]
    for event in events:
        assert isinstance(event, ToolCallStarted)
        break  # leaving the loop closes the stream, which waits for the run to stop
    assert waited == [True]  # the tool was let finish after the consumer had left
    state = agent.get("mid-tool")
    assert runs == [1] and state.steps >= 1
    call_state = next(iter(state.calls.values()))
    assert call_state.finished is not None and not call_state.in_doubt  # its result was recorded
    assert agent.run("go", execution_id="mid-tool").answer == "done"
    assert runs == [1]  # and it did not run again
