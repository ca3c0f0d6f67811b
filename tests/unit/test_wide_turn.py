"""A wide turn: many tool calls in one model response run in a bounded number of threads, results in order."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

import pytest
from _stores import store_at
from hypothesis import given, settings
from hypothesis import strategies as st

from delite import Agent, ScriptedProvider, tool
from delite.engine._aio import WORKERS
from delite.engine._effects import TOOL_THREADS
from delite.log.records import ExecutionStarted, ModelResponded, RecordedToolCall, ToolFinished
from delite.state._fold import fold

N = 300


@pytest.fixture
def data_dir(any_data_dir: Any) -> Any:
    """Every test here runs on the file store and on PostgreSQL (the files_only ones on files alone)."""
    return any_data_dir


def _wide(n: int) -> ScriptedProvider:
    calls = [{"name": "work", "arguments": {"i": i}} for i in range(n)]

    def answer(messages: list[dict[str, Any]]) -> str:
        return ",".join(m["content"] for m in messages if m["role"] == "tool")

    return ScriptedProvider([{"tool_calls": calls}, answer])


def _agent(data_dir: Path, threads: set[str], lock: threading.Lock) -> Agent:
    @tool
    def work(i: int) -> str:
        """Notes the thread it runs in."""
        with lock:
            threads.add(threading.current_thread().name)
        return str(i)

    return Agent(data_dir, provider=_wide(N), tools=[work])


def test_a_wide_turn_runs_in_a_bounded_pool_and_shows_results_in_order(data_dir: Path) -> None:
    threads: set[str] = set()
    lock = threading.Lock()
    r = _agent(data_dir, threads, lock).run("go", execution_id="w")
    assert r.answer == ",".join(str(i) for i in range(N))
    assert 1 <= len(threads) <= TOOL_THREADS
    records = store_at(data_dir).read("w").records
    assert sum(isinstance(x, ToolFinished) for x in records) == N


def test_a_wide_turn_through_the_async_api_is_bounded_too(data_dir: Path) -> None:
    threads: set[str] = set()
    lock = threading.Lock()
    r = asyncio.run(_agent(data_dir, threads, lock).arun("go", execution_id="a"))
    assert r.answer == ",".join(str(i) for i in range(N))
    assert 1 <= len(threads) <= WORKERS


@settings(max_examples=60, deadline=None)
@given(st.integers(min_value=1, max_value=12).flatmap(lambda n: st.permutations(list(range(n)))))
def test_results_in_any_order_fold_to_the_conversation_in_the_order_asked(order: list[int]) -> None:
    n = len(order)
    calls = [RecordedToolCall(id=f"c1.{i}", name="t", arguments={}) for i in range(n)]
    records: list[Any] = [
        ExecutionStarted(at=0.0, execution_id="x", input="go"),
        ModelResponded(at=0.0, step=1, tool_calls=calls),
    ]
    records += [ToolFinished(at=0.0, call_id=f"c1.{i}", result=str(i)) for i in order]
    state = fold(records)
    tools = [m for m in state.messages if m["role"] == "tool"]
    assert [m["content"] for m in tools] == [str(i) for i in range(n)]
    assert state.messages[-n - 1]["role"] == "assistant"
