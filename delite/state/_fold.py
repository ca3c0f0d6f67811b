"""A pure fold from records to :class:`~delite.state._model.ExecutionState`: no I/O, no clock, no randomness.

``fold(records)`` builds the state from scratch; ``apply(state, record)`` advances a state by one record in
place (the engine keeps one state and applies each record as it appends it, so no step re-folds the log).
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterable
from decimal import Decimal, InvalidOperation
from typing import Any

import msgspec

from delite._gc import paused
from delite.errors import LogCorruptError
from delite.log.records import (
    ChildSuspended,
    DecisionRecorded,
    DriftAccepted,
    ExecutionCancelled,
    ExecutionCompleted,
    ExecutionFailed,
    ExecutionResumed,
    ExecutionStarted,
    ExecutionSuspended,
    InDoubtResolved,
    InputRequested,
    InputSubmitted,
    MCPCatalogRecorded,
    ModelCallFailed,
    ModelResponded,
    OutputRejected,
    Record,
    SealedRecord,
    ToolFinished,
    ToolStarted,
    Usage,
)
from delite.state._model import CallState, ExecutionState, Status, Totals, _ResultTail

__all__ = ["apply", "fold", "fold_summary", "tool_message_content"]

_json = msgspec.json.Encoder()


def tool_message_content(finished: ToolFinished) -> str:
    """What the model is shown for a tool call's outcome."""
    if finished.error is not None:
        return f"Error: {finished.error}"
    result = finished.result
    if isinstance(result, str):
        return result
    return _json.encode(result).decode()


def _call(s: ExecutionState, call_id: str) -> CallState:
    """The call ``call_id`` of ``s`` (a KeyError if the log never recorded it), decoding a history only on a miss."""
    try:
        return s._calls[call_id]  # noqa: SLF001 - the fold's own bookkeeping
    except KeyError:
        if s._history is None:  # noqa: SLF001
            raise
    s._decode_history()  # noqa: SLF001
    return s._calls[call_id]  # noqa: SLF001


def _started(s: ExecutionState, r: ExecutionStarted) -> None:
    s.execution_id = r.execution_id
    s.agent_id = r.agent_id
    s.input = r.input
    s.history = r.history
    s.metadata = r.metadata
    s.config = r.config
    s.known_tools.update(t.name for t in r.config.tools)
    s.model = r.model
    s.idempotency_key = r.idempotency_key
    s.parent_id = r.parent_id
    s.parent_call = r.parent_call
    s.depth = r.depth
    s.output_schema = r.output_schema
    s.created_at = r.at
    s.status = Status.RUNNING
    s.dormant = r.forked_from is not None and s.resumes <= r.fork_resumes
    s._fork_resumes = r.fork_resumes  # noqa: SLF001 - the fold's own bookkeeping
    if r.config.prompt:
        s.messages.append({"role": "system", "content": r.config.prompt})
    if r.output_prompt:
        s.messages.append({"role": "system", "content": r.output_prompt})
    s.messages.extend(r.history)
    s.messages.append({"role": "user", "content": r.input})


def _responded(s: ExecutionState, r: ModelResponded) -> None:
    s._turns.append(r)  # noqa: SLF001 - the fold's own bookkeeping
    totals = s.totals
    totals.llm_calls += 1
    _add_usage(totals, r.usage, unknown_cost=True)
    calls = r.tool_calls
    messages = s.messages
    if calls:
        # One pass over the calls builds the message's list and the calls' states (a step folds in one go).
        shown: list[dict[str, Any]] = []
        states = s._calls  # noqa: SLF001
        step = r.step
        encode = _json.encode
        for i, c in enumerate(calls):
            arguments = encode(c.arguments).decode()
            function = {"name": c.name, "arguments": arguments}
            shown.append({"id": c.provider_id or c.id, "type": "function", "function": function})
            states[c.id] = CallState(call=c, step=step, index=i)
        messages.append({"role": "assistant", "content": r.content, "tool_calls": shown})
        s._results = _ResultTail(step, len(messages))  # noqa: SLF001 - the fold's own bookkeeping
    else:
        messages.append({"role": "assistant", "content": r.content})
        s._results = None  # noqa: SLF001
    s.status = Status.RUNNING
    s.suspend_reason = None


def _tool_started(s: ExecutionState, r: ToolStarted) -> None:
    try:
        call = s._calls[r.call_id]  # noqa: SLF001 - the fold's own bookkeeping
    except KeyError:
        call = _call(s, r.call_id)  # in a history not decoded yet, or nowhere (a KeyError again)
    call.attempts = max(call.attempts, r.attempt)
    call.idempotency_key = r.idempotency_key
    call.rerun_requested = False
    call.child_id = None
    s.totals.tool_calls += 1


def _tool_finished(s: ExecutionState, r: ToolFinished) -> None:
    try:
        call = s._calls[r.call_id]  # noqa: SLF001 - the fold's own bookkeeping
    except KeyError:
        call = _call(s, r.call_id)  # in a history not decoded yet, or nowhere (a KeyError again)
    call.finished = r
    recorded = call.call
    message: dict[str, Any] = {
        "role": "tool",
        "tool_call_id": recorded.provider_id or recorded.id,
        "content": tool_message_content(r),
    }
    if r.error is not None:
        message["is_error"] = True  # providers whose API has the flag (Anthropic) pass it on
    # Calls that ran at the same time finish in any order; their results are shown in the order the model
    # asked for them, so the conversation does not depend on timing. Every result of a turn comes after
    # its assistant message and before anything else: the fold keeps where that tail starts and the call
    # indices in it, so placing a result is a binary search (a turn of n calls folds in O(n log n) at worst,
    # O(n) when results come in the order asked, as they mostly do), never a scan of the tail.
    messages = s.messages
    tail = s._results  # noqa: SLF001 - the fold's own bookkeeping
    if tail is None or tail.step != call.step or tail.start + len(tail.indices) != len(messages):
        messages.append(message)  # an older turn's call, or something was appended after the tail
        s._results = None  # noqa: SLF001
        return
    indices = tail.indices
    if not indices or indices[-1] <= call.index:
        indices.append(call.index)
        messages.append(message)
        return
    pos = bisect.bisect_right(indices, call.index)
    indices.insert(pos, call.index)
    messages.insert(tail.start + pos, message)


def _suspended(s: ExecutionState, r: ExecutionSuspended) -> None:
    s.status = Status.for_suspension(r.reason.kind)
    s.suspend_reason = r.reason


def _decision(s: ExecutionState, r: DecisionRecorded) -> None:
    _call(s, r.call_id).decision = r


def _input(s: ExecutionState, r: InputSubmitted) -> None:
    _call(s, r.call_id).human_input = r.text


def _input_requested(s: ExecutionState, r: InputRequested) -> None:
    _call(s, r.call_id).question = r.question


def _resolved(s: ExecutionState, r: InDoubtResolved) -> None:
    _call(s, r.call_id).rerun_requested = True


def _output_rejected(s: ExecutionState, r: OutputRejected) -> None:
    s.rejected_outputs += 1
    s.rejected_step = r.step
    s.messages.append({"role": "user", "content": r.prompt})


def _child_suspended(s: ExecutionState, r: ChildSuspended) -> None:
    _call(s, r.call_id).child_id = r.child_id


def _drift(s: ExecutionState, r: DriftAccepted) -> None:
    s.config = r.config
    s.known_tools.update(t.name for t in r.config.tools)


def _resumed(s: ExecutionState, _r: ExecutionResumed) -> None:
    s.resumes += 1
    if s.dormant and s.resumes > s._fork_resumes:  # noqa: SLF001
        s.dormant = False  # a process took the fork on (the copied resumes are the origin's)
    if not s.status.is_terminal:
        s.status = Status.RUNNING
        s.suspend_reason = None


def _model_failed(s: ExecutionState, r: ModelCallFailed) -> None:
    s.totals.model_failures += 1
    u = r.usage
    if u is not None:  # an attempt that got under way before it failed: billed, its counts a lower bound
        _add_usage(s.totals, u, unknown_cost=False)


def _add_usage(t: Totals, u: Usage, *, unknown_cost: bool) -> None:
    """Add a call's usage to the totals; ``unknown_cost``: a cost of None makes the total's cost unknown."""
    t.input_tokens += u.input_tokens
    t.output_tokens += u.output_tokens
    t.cached_input_tokens += u.cached_input_tokens
    t.cache_write_tokens += u.cache_write_tokens
    t.reasoning_tokens += u.reasoning_tokens
    if not u.known:
        t.usage_known = False
    if u.cost is None:
        if unknown_cost:
            t.cost_known = False
        return
    try:
        t.cost += Decimal(u.cost)
    except InvalidOperation:
        t.cost_known = False


def _completed(s: ExecutionState, r: ExecutionCompleted) -> None:
    s.status = Status.COMPLETED
    s.answer = r.answer
    s.output = r.output
    s.suspend_reason = None


def _failed(s: ExecutionState, r: ExecutionFailed) -> None:
    s.status = Status.FAILED
    s.error_type = r.error_type
    s.error_message = r.message


def _cancelled(s: ExecutionState, _r: ExecutionCancelled) -> None:
    s.status = Status.CANCELLED
    s.suspend_reason = None


def _mcp_catalog(s: ExecutionState, r: MCPCatalogRecorded) -> None:
    # The catalog itself is read from the log by the MCP tool source; the state only knows the tools' names,
    # so a call to one of them that the resuming agent cannot serve is a replay mismatch, not an unknown tool.
    s.known_tools.update(f"{r.server}__{t.name}" for t in r.tools)


_HANDLERS: dict[type[Record], Callable[[ExecutionState, Any], None]] = {
    ExecutionStarted: _started,
    ModelResponded: _responded,
    ToolStarted: _tool_started,
    ToolFinished: _tool_finished,
    ExecutionSuspended: _suspended,
    DecisionRecorded: _decision,
    InputSubmitted: _input,
    InputRequested: _input_requested,
    InDoubtResolved: _resolved,
    DriftAccepted: _drift,
    OutputRejected: _output_rejected,
    ChildSuspended: _child_suspended,
    ExecutionResumed: _resumed,
    ModelCallFailed: _model_failed,
    ExecutionCompleted: _completed,
    ExecutionFailed: _failed,
    ExecutionCancelled: _cancelled,
    MCPCatalogRecorded: _mcp_catalog,
}


def _sealed(s: ExecutionState, r: SealedRecord) -> None:
    # Without the key a sealed record folds as its shell: the structure (status, steps, tokens) without content.
    _HANDLERS[type(r.shell)](s, r.shell)


_HANDLERS[SealedRecord] = _sealed


def _responded_summary(s: ExecutionState, r: ModelResponded) -> None:
    """:func:`_responded` without the conversation: the turn, the totals and the calls' states."""
    s._turns.append(r)  # noqa: SLF001 - the fold's own bookkeeping
    totals = s.totals
    totals.llm_calls += 1
    _add_usage(totals, r.usage, unknown_cost=True)
    states = s._calls  # noqa: SLF001
    step = r.step
    for i, c in enumerate(r.tool_calls):
        states[c.id] = CallState(call=c, step=step, index=i)
    s.status = Status.RUNNING
    s.suspend_reason = None


def _tool_finished_summary(s: ExecutionState, r: ToolFinished) -> None:
    """:func:`_tool_finished` without the conversation: the call's result (of a call the log recorded)."""
    _call(s, r.call_id).finished = r


# The summary fold: every handler as in the full fold but the two that build the conversation turn by turn.
_SUMMARY: dict[type[Record], Callable[[ExecutionState, Any], None]] = {
    **_HANDLERS,
    ModelResponded: _responded_summary,
    ToolFinished: _tool_finished_summary,
}


def _sealed_summary(s: ExecutionState, r: SealedRecord) -> None:
    _SUMMARY[type(r.shell)](s, r.shell)


_SUMMARY[SealedRecord] = _sealed_summary


def _inconsistent(state: ExecutionState, index: int, record: Record, e: KeyError) -> LogCorruptError:
    reason = f"record {index} ({type(record).__name__}) refers to unknown call {e.args[0]!r}"
    return LogCorruptError(state.execution_id or "?", -1, reason)


def apply(state: ExecutionState, record: Record) -> ExecutionState:
    """Advance ``state`` by one record, in place, and return it.

    Raises:
        LogCorruptError: the record refers to a tool call the log never recorded.
    """
    try:
        _HANDLERS[type(record)](state, record)
    except KeyError as e:
        raise _inconsistent(state, state.records, record, e) from None
    state.records += 1
    state.updated_at = record.at
    return state


def fold(records: Iterable[Record], state: ExecutionState | None = None) -> ExecutionState:
    """Fold records into a new state (or onto ``state``).

    Raises:
        LogCorruptError: a record refers to a tool call the log never recorded (a log not written by delite).
    """
    return _fold(records, ExecutionState() if state is None else state, _HANDLERS)


def fold_summary(records: Iterable[Record], state: ExecutionState | None = None) -> ExecutionState:
    """The fold of ``records`` without the model turns and tool results in ``messages``: for an outcome only.

    Status, result, totals, turns, calls and counts are exactly the full fold's, and every record is checked as
    the full fold checks it (a record naming a call the log never recorded raises); only the conversation is
    left out after the execution's first messages, which is what a finished execution asked for again needs
    (see :func:`delite.state._outcome.finished_outcome`). Never continue an execution from this state.

    Raises:
        LogCorruptError: a record refers to a tool call the log never recorded.
    """
    return _fold(records, ExecutionState() if state is None else state, _SUMMARY)


def _fold(
    records: Iterable[Record], s: ExecutionState, handlers: dict[type[Record], Callable[[ExecutionState, Any], None]]
) -> ExecutionState:
    n = 0
    last = None
    with paused():  # a long log builds a large conversation: trees only, nothing for the collector to find
        for record in records:
            try:
                handlers[type(record)](s, record)
            except KeyError as e:
                raise _inconsistent(s, s.records + n, record, e) from None
            n += 1
            last = record
    s.records += n
    if last is not None:
        s.updated_at = last.at
    return s
