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

from delite import Agent, Clarification, ScriptedProvider, ToolError, tool
from delite.log import read_log
from delite.log._framing import MAX_RECORD_SIZE
from delite.log.records import ToolFinished, ToolStarted
from delite.providers import call
from delite.tools._base import CallInDoubtError


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


class _BadRepr:
    """An object whose text cannot be had: its ``__repr__`` and ``__str__`` raise."""

    def __repr__(self) -> str:
        raise RuntimeError("repr failed")

    __str__ = __repr__


class _StrNotTextError(Exception):
    def __str__(self) -> Any:
        return 42  # noqa: PLE0307 - the bug being defended against


def _nested(depth: int) -> list[Any]:
    root: list[Any] = []
    cur = root
    for _ in range(depth):
        nxt: list[Any] = []
        cur.append(nxt)
        cur = nxt
    return root


# What a body may give that fails to become a record once it has run: a value too deep for the interpreter to
# convert, an error or a question whose text raises. Each escaped after the call's intent was written: the run
# raised, stayed running, and every resume ran the body again.
UNREADABLE = {
    "too-deep": (_nested(5000), "cannot be stored as JSON: RecursionError"),
    # converts where the writer stands, but a reader a few dozen frames deeper could not read it back
    "deep-past-the-bound": (_nested(300), "nested more than 256 levels deep"),
    "deep-near-the-limit": (_nested(984), ("nested more than 256 levels deep", "RecursionError")),  # by the stack
    "key-error-of-a-bad-repr": (KeyError(_BadRepr()), "the text of a KeyError the tool gave could not be read"),
    "str-not-text": (_StrNotTextError(), "the text of a _StrNotTextError the tool gave could not be read"),
    "tool-error-bad-message": (ToolError(_BadRepr()), "the text of a _BadRepr the tool gave could not be read"),  # type: ignore[arg-type]
    "question-bad-text": (Clarification(_BadRepr()), "the text of a _BadRepr the tool gave could not be read"),  # type: ignore[arg-type]
}


@pytest.mark.parametrize(("value", "said"), list(UNREADABLE.values()), ids=list(UNREADABLE))
def test_an_outcome_whose_text_or_value_raises_is_recorded_once(data_dir: Path, value: Any, said: Any) -> None:
    runs: list[str] = []
    r = _agent(data_dir, value, runs).run("go")
    assert r.status == "completed", r
    (finished,) = _finished(data_dir, r.execution_id)
    either = said if isinstance(said, tuple) else (said,)
    assert finished.result is None and finished.error is not None, finished
    assert any(text in finished.error for text in either), finished.error
    assert "repr failed" not in finished.error  # nothing of what the user's code said while failing
    again = _agent(data_dir, value, runs).resume(r.execution_id)
    assert again.status == "completed" and runs == ["produce 1"]  # the body ran once


def test_an_in_doubt_call_whose_message_raises_stays_in_doubt(data_dir: Path) -> None:
    runs: list[str] = []
    r = _agent(data_dir, CallInDoubtError(_BadRepr()), runs).run("go")  # type: ignore[arg-type]
    assert r.status == "suspended" and r.suspend_reason is not None and r.suspend_reason.kind == "in_doubt"
    assert "may or may not have acted" in (r.suspend_reason.calls[0].message or "")
    assert _finished(data_dir, r.execution_id) == [] and runs == ["produce 1"]  # still in doubt, as designed


def test_a_redactor_that_raises_records_that_it_did_and_nothing_else(data_dir: Path) -> None:
    runs: list[str] = []

    def broken(value: Any) -> Any:  # fine on the call's arguments, raises on its result
        if value == "s3cret-token":
            raise ValueError(f"cannot redact {value!r}")
        return value

    @tool(redact=broken)
    def secret() -> str:
        """Return a secret."""
        runs.append("secret")
        return "s3cret-token"

    def agent() -> Agent:
        return Agent(data_dir, provider=ScriptedProvider([call("secret"), "done"]), tools=[secret])

    r = agent().run("go")
    assert r.status == "completed" and runs == ["secret"]
    (finished,) = _finished(data_dir, r.execution_id)
    assert finished.result is None and finished.error == (
        "the tool's outcome could not be recorded: a redactor raised ValueError"
    )
    assert "s3cret" not in repr(store_at(data_dir).read(r.execution_id).records)
    assert agent().resume(r.execution_id).status == "completed" and runs == ["secret"]


def test_what_is_written_reads_back_from_a_deep_stack(data_dir: Path) -> None:
    # The bound is fixed, not where the writer's stack was: read 700 frames down, every record still decodes.
    runs: list[str] = []
    r = _agent(data_dir, _nested(250), runs).run("go")  # under the bound: recorded as the result
    (finished,) = _finished(data_dir, r.execution_id)
    assert finished.error is None and finished.result == _nested(250)

    def read_at(depth: int) -> Any:
        return read_at(depth - 1) if depth else store_at(data_dir).read(r.execution_id).records

    assert len(read_at(700)) == len(store_at(data_dir).read(r.execution_id).records)
