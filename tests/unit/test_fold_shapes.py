"""The fold's conversation and call states, exactly: what the one-pass fold of a turn builds."""

from __future__ import annotations

import gc

from delite.log.records import (
    ConfigFingerprint,
    ExecutionStarted,
    ModelResponded,
    Record,
    RecordedToolCall,
    ToolFinished,
    ToolStarted,
    Usage,
)
from delite.state import CallState, ExecutionState, apply, fold


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
