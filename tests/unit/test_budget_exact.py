"""Budget limits are exact: checked per call, within one turn too, never one call past the limit."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

import pytest
from _stores import store_at

from delite import Agent, Budget, ScriptedProvider, Status, tool
from delite.engine._loop import RetryPolicy
from delite.errors import ProviderError
from delite.log.records import ExecutionSuspended, ToolStarted, Usage


@pytest.fixture
def data_dir(any_data_dir: Any) -> Any:
    """Every test here runs on the file store and on PostgreSQL (the files_only ones on files alone)."""
    return any_data_dir


def _wide(n: int) -> ScriptedProvider:
    calls = [{"name": "work", "arguments": {"i": i}} for i in range(n)]
    return ScriptedProvider([{"tool_calls": calls}, "done"])


def _agent(data_dir: Path, n: int, budget: Budget, ran: list[int], *, parallel: bool = True) -> Agent:
    lock = threading.Lock()

    @tool
    def work(i: int) -> int:
        """One paid unit of work."""
        with lock:
            ran.append(i)
        return i

    return Agent(data_dir, provider=_wide(n), tools=[work], budget=budget, parallel_tool_calls=parallel)


@pytest.mark.parametrize(("n", "limit", "parallel"), [(10, 2, True), (10, 0, True), (5, 3, False), (4, 4, True)])
def test_a_turn_runs_no_more_tool_bodies_than_the_limit(data_dir: Path, n: int, limit: int, parallel: bool) -> None:
    ran: list[int] = []
    agent = _agent(data_dir, n, Budget(max_tool_calls=limit), ran, parallel=parallel)
    r = agent.run("go", execution_id="b")
    if limit >= n:
        assert r.suspend_reason is not None and r.suspend_reason.limit == "max_tool_calls"  # before the next model call
        assert sorted(ran) == list(range(n))
        return
    assert r.is_suspended and r.suspend_reason is not None
    assert r.suspend_reason.kind == "budget" and r.suspend_reason.limit == "max_tool_calls"
    assert r.suspend_reason.spent["tool_calls"] == limit
    assert sorted(ran) == list(range(limit))
    store = store_at(data_dir)
    size = len(store.read("b").records)
    assert sum(isinstance(x, ToolStarted) for x in store.read("b").records) == limit  # the rest never started
    assert agent.resume("b").is_suspended  # still over: nothing runs, nothing is written
    assert len(store.read("b").records) == size
    agent.budget = Budget(max_tool_calls=n)
    assert agent.resume("b").is_suspended  # every call ran; the limit now stops the next model call
    agent.budget = None
    assert agent.resume("b").answer == "done"
    assert sorted(ran) == list(range(n))  # each body ran exactly once


def test_the_async_api_enforces_the_limit_within_a_turn(data_dir: Path) -> None:
    ran: list[int] = []
    agent = _agent(data_dir, 10, Budget(max_tool_calls=3), ran)
    r = asyncio.run(agent.arun("go", execution_id="a"))
    assert r.suspend_reason is not None and r.suspend_reason.limit == "max_tool_calls"
    assert sorted(ran) == [0, 1, 2]


def test_a_billed_failed_attempt_counts_before_the_retry(data_dir: Path) -> None:
    calls: list[int] = []

    def provider(messages: Any, tools: Any, model: Any) -> Any:
        calls.append(1)
        error = ProviderError("overloaded", provider="p", retryable=True)
        error.usage = Usage(input_tokens=600, output_tokens=0)  # the attempt was billed before it failed
        raise error

    agent = Agent(
        data_dir,
        provider=provider,
        budget=Budget(max_tokens=500),
        retry=RetryPolicy(max_attempts=5, base_delay=0.0, max_delay=0.0),
    )
    r = agent.run("go", execution_id="t")
    assert r.status is Status.SUSPENDED and r.suspend_reason is not None
    assert r.suspend_reason.limit == "max_tokens" and r.suspend_reason.spent["tokens"] == 600
    assert len(calls) == 1  # no second attempt was paid for past the limit
    assert isinstance(store_at(data_dir).read("t").records[-1], ExecutionSuspended)
