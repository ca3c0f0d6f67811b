"""The fold's conversation and call states, exactly: what the one-pass fold of a turn builds."""

from __future__ import annotations

import gc
from pathlib import Path
from typing import Any

import msgspec
import pytest

from delite import Agent, FileStore, ScriptedProvider, tool
from delite.errors import ExecutionIdConflictError, LogCorruptError
from delite.log.records import (
    ConfigFingerprint,
    ExecutionCancelled,
    ExecutionCompleted,
    ExecutionFailed,
    ExecutionResumed,
    ExecutionStarted,
    ModelCallFailed,
    ModelResponded,
    Record,
    RecordedToolCall,
    ToolFinished,
    ToolStarted,
    Usage,
)
from delite.state import CallState, ExecutionState, apply, fold
from delite.state._fold import fold_summary
from delite.state._outcome import finished_outcome, outcome
from delite.store._base import ExecutionLog


def _log() -> list[Record]:
    calls = [
        RecordedToolCall(id="c1.0", name="a", arguments={"x": 1}, provider_id="p0"),
        RecordedToolCall(id="c1.1", name="b", arguments={}),
        RecordedToolCall(id="c1.2", name="c", arguments={"s": "é"}, provider_id="p2"),
    ]
    return [
        ExecutionStarted(at=1.0, execution_id="e", input="hi", config=ConfigFingerprint(prompt="be brief")),
        ModelResponded(at=2.0, step=1, model="m", content="thinking", tool_calls=calls, usage=Usage(input_tokens=5)),
        ToolStarted(at=3.0, call_id="c1.0", idempotency_key="k0", attempt=1),
        ToolStarted(at=3.1, call_id="c1.1", idempotency_key="k1", attempt=1),
        ToolStarted(at=3.2, call_id="c1.2", idempotency_key="k2", attempt=2),
        # Finished out of the order asked: the conversation still shows them in the order asked.
        ToolFinished(at=4.0, call_id="c1.2", result="plain text"),
        ToolFinished(at=4.1, call_id="c1.0", result={"ok": [1, 2]}),
        ToolFinished(at=4.2, call_id="c1.1", error="boom"),
        ModelResponded(at=5.0, step=2, model="m", content="done", usage=Usage(output_tokens=3)),
    ]


EXPECTED = [
    {"role": "system", "content": "be brief"},
    {"role": "user", "content": "hi"},
    {
        "role": "assistant",
        "content": "thinking",
        "tool_calls": [
            {"id": "p0", "type": "function", "function": {"name": "a", "arguments": '{"x":1}'}},
            {"id": "c1.1", "type": "function", "function": {"name": "b", "arguments": "{}"}},
            {"id": "p2", "type": "function", "function": {"name": "c", "arguments": '{"s":"é"}'}},
        ],
    },
    {"role": "tool", "tool_call_id": "p0", "content": '{"ok":[1,2]}'},
    {"role": "tool", "tool_call_id": "c1.1", "content": "Error: boom", "is_error": True},
    {"role": "tool", "tool_call_id": "p2", "content": "plain text"},
    {"role": "assistant", "content": "done"},
]


def test_the_fold_builds_the_conversation_in_the_order_asked() -> None:
    s = fold(_log())
    assert s.messages == EXPECTED
    assert list(s.messages[2]) == ["role", "content", "tool_calls"]  # key order as providers have always seen it
    assert s.steps == 2 and s.records == 9 and s.updated_at == 5.0
    assert (s.totals.llm_calls, s.totals.tool_calls, s.totals.input_tokens, s.totals.output_tokens) == (2, 3, 5, 3)
    assert [(c.step, c.index, c.attempts, c.idempotency_key) for c in s.calls.values()] == [
        (1, 0, 1, "k0"),
        (1, 1, 1, "k1"),
        (1, 2, 2, "k2"),
    ]
    assert s.calls["c1.1"].finished is not None and s.calls["c1.1"].finished.error == "boom"
    assert s.open_calls() == []


def test_folding_record_by_record_gives_the_same_state() -> None:
    records = _log()
    one_by_one = ExecutionState()
    for r in records:
        apply(one_by_one, r)
    whole = fold(records)
    assert one_by_one.messages == whole.messages
    assert one_by_one.calls == whole.calls
    assert one_by_one.totals == whole.totals
    assert one_by_one.records == whole.records


def test_call_states_are_not_tracked_by_the_collector_and_stay_mutable() -> None:
    s = fold(_log()[:5])  # the turn's calls started, none finished
    call = s.calls["c1.0"]
    assert isinstance(call, CallState)
    assert not gc.is_tracked(call)  # tens of thousands in a long log: nothing for the collector to walk
    assert not gc.is_tracked(s._results)
    assert [c.call.id for c in s.open_calls()] == ["c1.0", "c1.1", "c1.2"]
    assert all(c.in_doubt for c in s.open_calls())
    call.rerun_requested = True  # the engine updates call states in place
    assert not call.in_doubt
    assert call == CallState(call=call.call, step=1, attempts=1, idempotency_key="k0", rerun_requested=True)


def _ending(tail: list[Record]) -> list[Record]:
    return [*_log(), *tail]


FINISHED = {
    "completed": [ExecutionCompleted(at=6.0, answer="the answer", output={"n": 1})],
    "cancelled": [ExecutionCancelled(at=6.0, reason="stop")],
    "failed, resumed, completed": [
        ModelCallFailed(at=6.0, step=3, error="rate limited", usage=Usage(input_tokens=2, known=False)),
        ExecutionFailed(at=6.1, error_type="X", message="no"),
        ExecutionResumed(at=7.0),
        ExecutionCompleted(at=8.0, answer="later"),
    ],
}


@pytest.mark.parametrize("name", list(FINISHED))
def test_a_finished_logs_outcome_is_the_full_folds_without_its_conversation(name: str) -> None:
    records = _ending(FINISHED[name])
    summary = fold_summary(records)
    assert finished_outcome(records) == outcome(summary) == outcome(fold(records))
    assert summary.calls == fold(records).calls and summary.steps == 2
    assert len(summary.messages) == 2  # the system prompt and the input, no turn and no tool result


def test_only_a_finished_log_has_an_outcome_of_its_own() -> None:
    assert finished_outcome([]) is None
    assert finished_outcome(_log()) is None  # running
    assert finished_outcome(_ending([ExecutionFailed(at=6.0, error_type="X", message="no")])) is None


def test_the_summary_fold_checks_every_record_as_the_full_fold_does() -> None:
    records = _ending([ToolFinished(at=6.0, call_id="never-asked", result=1), ExecutionCompleted(at=7.0)])
    with pytest.raises(LogCorruptError, match="unknown call 'never-asked'"):
        fold(records)
    with pytest.raises(LogCorruptError, match="unknown call 'never-asked'"):
        finished_outcome(records)


def test_a_finished_execution_without_a_snapshot_is_answered_without_the_full_fold(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    @tool
    def noop(i: int) -> dict[str, Any]:
        """A result large enough that the log passes the snapshot threshold."""
        return {"i": i, "pad": "x" * 200}

    def agent() -> Agent:
        return Agent(tmp_path, provider=ScriptedProvider.tool_loop(300, "noop"), tools=[noop])

    with agent() as a:
        first = a.run("go", execution_id="e1")
    snap = tmp_path / "snapshots" / "e1.snap"
    assert first.status.value == "completed" and not snap.exists()  # its tally answers for it: none is kept
    store = FileStore(tmp_path)
    with store.claim("e1") as log:  # a log written before terminal records held a tally (see test_tally.py)
        *before, last = log.records
        assert isinstance(last, ExecutionCompleted) and last.tally is not None
        store.rewrite(log, [*before, msgspec.structs.replace(last, tally=None)])

    def no_full_fold(self: ExecutionLog) -> ExecutionState:
        raise AssertionError("a finished execution was folded whole")

    monkeypatch.setattr(ExecutionLog, "state", no_full_fold)
    with agent() as a:
        assert a.run("go", execution_id="e1") == first
        assert snap.exists()  # offered again for the next claim
        snap.unlink()
        assert a.resume("e1") == first
    monkeypatch.undo()
    with agent() as a, pytest.raises(ExecutionIdConflictError):
        a.run("another input", execution_id="e1")  # the full fold still tells a conflicting input
