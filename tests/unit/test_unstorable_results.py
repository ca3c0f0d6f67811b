"""A tool result that cannot be stored is recorded once, as that call's tool error (issue: never left in doubt).

The body ran: its outcome must be durable before the next step, so a result the log cannot hold (text UTF-8
cannot encode, a value that is not JSON, a record over the size limit, an error message too large) becomes
the call's recorded error, the model is told, and no resume ever runs the body again.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from _stores import store_at

from delite import Agent, ScriptedProvider, tool
from delite.log import read_log
from delite.log._framing import MAX_RECORD_SIZE
from delite.log.records import ToolFinished, ToolStarted
from delite.providers import call


@pytest.fixture
def data_dir(any_data_dir: Any) -> Any:
    """Every test here runs on the file store and on PostgreSQL (the files_only ones on files alone)."""
    return any_data_dir


def _agent(data_dir: Path, value: Any, runs: list[str], *, parallel: bool = False) -> Agent:
    @tool
    def produce(i: int) -> Any:
        """Return something the log may not be able to hold."""
        runs.append(f"produce {i}")
        if isinstance(value, BaseException):
            raise value
        return value

    @tool
    def fine(i: int) -> str:
        """Return plain text."""
        runs.append(f"fine {i}")
        return f"fine {i}"

    first: Any = call("produce", i=1)
    if parallel:
        first = {"tool_calls": [{"name": "produce", "arguments": {"i": 1}}, {"name": "fine", "arguments": {"i": 2}}]}
    model = ScriptedProvider([first, lambda m: " | ".join(str(x["content"]) for x in m if x["role"] == "tool")])
    return Agent(data_dir, provider=model, tools=[produce, fine])


def _finished(data_dir: Path, eid: str) -> list[ToolFinished]:
    return [r for r in store_at(data_dir).read(eid).records if isinstance(r, ToolFinished)]


BAD_VALUES = {
    "lone-surrogate": "report-\udcff.txt",  # a non-UTF-8 file name decoded with surrogateescape
    "surrogate-in-a-dict": {"files": ["ok.txt", "bad-\ud800.txt"]},
    "surrogate-key": {"\udcffkey": 1},
    "not-json": object(),
}


@pytest.mark.parametrize("value", list(BAD_VALUES.values()), ids=list(BAD_VALUES))
def test_an_unstorable_result_is_recorded_once_as_a_tool_error(data_dir: Path, value: Any) -> None:
    runs: list[str] = []
    agent = _agent(data_dir, value, runs)
    r = agent.run("go")
    assert r.status == "completed", r
    assert runs == ["produce 1"]
    (finished,) = _finished(data_dir, r.execution_id)
    assert finished.result is None and finished.error is not None
    assert "tool returned a value" in finished.error
    assert "error" in (r.answer or "").lower() or finished.error in (r.answer or "")  # the model was told
    if isinstance(data_dir, Path):
        read_log(str(store_at(data_dir).layout.log(r.execution_id)))  # the log reads back whole
    again = _agent(data_dir, value, runs).resume(r.execution_id)
    assert again.answer == r.answer and runs == ["produce 1"]  # never run again


def test_one_unstorable_result_in_a_parallel_turn_leaves_the_others_alone(data_dir: Path) -> None:
    runs: list[str] = []
    r = _agent(data_dir, "bad-\udcff", runs, parallel=True).run("go")
    assert r.status == "completed"
    assert sorted(runs) == ["fine 2", "produce 1"]
    by_call = {f.call_id: f for f in _finished(data_dir, r.execution_id)}
    assert by_call["c1.0"].error is not None and by_call["c1.0"].result is None
    assert by_call["c1.1"].result == "fine 2" and by_call["c1.1"].error is None
    started = [s for s in store_at(data_dir).read(r.execution_id).records if isinstance(s, ToolStarted)]
    assert len(started) == 2  # one body each, no retry of an in-doubt call


def test_a_result_over_the_record_limit_is_recorded_as_an_error(data_dir: Path) -> None:
    runs: list[str] = []
    r = _agent(data_dir, "x" * (MAX_RECORD_SIZE + 1), runs).run("go")
    assert r.status == "completed" and runs == ["produce 1"]
    (finished,) = _finished(data_dir, r.execution_id)
    assert finished.result is None
    assert finished.error is not None and "over the limit" in finished.error


def test_an_error_message_too_large_to_record_is_cut(data_dir: Path) -> None:
    runs: list[str] = []
    r = _agent(data_dir, RuntimeError("y" * (MAX_RECORD_SIZE + 10)), runs).run("go")
    assert r.status == "completed" and runs == ["produce 1"]
    (finished,) = _finished(data_dir, r.execution_id)
    assert finished.error is not None and finished.error.endswith("[cut: the whole message was too large to record]")
    assert len(finished.error) < 100_000


def test_the_async_api_records_it_the_same_way(data_dir: Path) -> None:
    runs: list[str] = []
    agent = _agent(data_dir, "bad-\udcff", runs)
    r = asyncio.run(agent.arun("go"))
    assert r.status == "completed" and runs == ["produce 1"]
    (finished,) = _finished(data_dir, r.execution_id)
    assert finished.error is not None and finished.result is None
