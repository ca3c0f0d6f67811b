"""The log, projected into spans: one function of the records, used live and after the fact.

A :class:`Projector` reads one execution's records in order and tells a :class:`Sink` which spans start,
which events happen on them and when they end, with the times the records carry. The live observer
(:mod:`delite._telemetry._observer`) feeds it each batch as it is appended and its sink drives the OpenTelemetry
API; the offline export (:mod:`delite._telemetry._otlp`) feeds it a whole log and its sink writes OTLP/JSON.
Both see the same calls, so both produce the same spans.

The shape:

* an *advance* (segment) is the records from an ``execution-started`` or ``execution-resumed`` record up to
  the record that stops it (suspended, completed, failed, cancelled) or the next advance: one
  ``invoke_agent {agent}`` span;
* a ``model-responded`` record is a ``chat {model}`` child (it ends at the record's time and lasted
  ``duration_ms``); a failed attempt is a ``chat`` child with ``error.type``;
* ``tool-started`` starts an ``execute_tool {tool}`` child, ``tool-finished`` ends it; a tool still open when
  its advance stops ends with it (``delite.tool.outcome`` says why);
* a sub-agent's first advance is a child of the tool call that delegated (``parent_id``/``parent_call``);
* decisions, suspensions, budget stops, contract refusals, drift, in-doubt retries and cancels are events;
* a record written outside any advance (an answer saved without continuing) is a ``delite.record`` span of
  its own, linked like a resumed advance.

Replaying a recorded step appends nothing, so it projects to nothing: no span is ever emitted twice.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any, Protocol

from delite._telemetry import _names as n
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
    ModelCallFailed,
    ModelResponded,
    OutputRejected,
    Record,
    RecordedToolCall,
    ToolFinished,
    ToolStarted,
    Usage,
)

__all__ = ["Options", "Projector", "Sink", "SpanStart", "provider_value", "to_ns"]

Attributes = dict[str, Any]


def to_ns(seconds: float) -> int:
    """A record's time (seconds since the epoch) in nanoseconds, as OpenTelemetry counts them."""
    return round(seconds * 1e9)


def provider_value(fingerprint_provider: str) -> str:
    """The conventions' provider name from the provider recorded in the fingerprint (``openai:gpt-4o`` -> openai)."""
    vendor = fingerprint_provider.partition(":")[0].strip().lower()
    return _CONVENTION_PROVIDERS.get(vendor, vendor) or "_OTHER"


_CONVENTION_PROVIDERS = {"openai-responses": "openai"}
"""delite's provider names that are not the conventions' (the Responses API is OpenAI's, as the Chat API)."""


@dataclass(frozen=True)
class Options:
    """What the projection includes.

    Attributes:
        names: the attribute names of the conventions version to emit.
        capture_content: include prompts, answers, tool arguments and results (never idempotency keys).
        chat_spans: emit delite's own ``chat`` spans (off when the contrib openai/anthropic
            instrumentations already emit them).
    """

    names: n.Names = n.DEFAULT
    capture_content: bool = False
    chat_spans: bool = True


@dataclass
class SpanStart:
    """A span the projection starts.

    ``key`` names it within the projection (unique per execution: the execution id and the sequence number of
    the record that started it). ``parent`` is the key of a span of the same execution; ``delegated_by`` is
    the (parent execution id, call id) of the tool call that started a sub-agent, for its first advance;
    ``link`` is the trace context stored in the log by the execution's first advance (for later advances);
    ``first`` marks that first advance, whose context the live observer stores in the log.
    """

    key: str
    name: str
    client: bool
    start: float
    attributes: Attributes
    parent: str | None = None
    delegated_by: tuple[str, str] | None = None
    link: dict[str, str] | None = None
    first: bool = False
    call: tuple[str, str] | None = None
    """For a tool span, (execution id, call id): where a sub-agent it starts finds its parent."""
    caller: object | None = None
    """Live only: the tracing context the claim was made in (a web request's span): an advance's parent."""


class Sink(Protocol):
    """Where a projection goes: the live OpenTelemetry API or an OTLP/JSON document."""

    def start(self, span: SpanStart) -> None:
        """A span starts."""

    def event(self, key: str, name: str, at: float, attributes: Attributes) -> None:
        """An event happens on the span ``key``."""

    def end(self, key: str, at: float, attributes: Attributes, error: str | None) -> None:
        """The span ``key`` ends; ``attributes`` are set first; ``error`` marks it failed with that type."""


class _Quiet:
    """A sink that drops everything: used while learning the records an advance starts from."""

    def start(self, span: SpanStart) -> None:
        """Drop it."""

    def event(self, key: str, name: str, at: float, attributes: Attributes) -> None:
        """Drop it."""

    def end(self, key: str, at: float, attributes: Attributes, error: str | None) -> None:
        """Drop it."""


@dataclass
class _Segment:
    key: str
    cost: Decimal = Decimal(0)
    tools: dict[str, str] = field(default_factory=dict)  # call id -> key of its open span
    status: str = "running"
    error: str | None = None
    answer: str | None = None


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)


def _cost(usage: Usage | None) -> Decimal | None:
    if usage is None or usage.cost is None:
        return None
    try:
        return Decimal(usage.cost)
    except InvalidOperation:
        return None


class Projector:
    """One execution's records, in order, as spans on a :class:`Sink` (see the module docstring)."""

    def __init__(self, sink: Sink, options: Options) -> None:
        """Project onto ``sink`` with ``options``; feed records with :meth:`learn` and :meth:`feed`."""
        self.sink = sink
        self.options = options
        self.names = options.names
        self.execution_id = ""
        self.agent = "default"
        self.provider = "_OTHER"
        self.request_model: str | None = None
        self.parent: tuple[str, str] | None = None
        self.output_type = "text"
        self.trace_context: dict[str, str] | None = None
        self.calls: dict[str, RecordedToolCall] = {}
        self.child_waits: set[str] = set()  # calls that waited on a sub-agent: their next start is no retry
        self.started: set[str] = set()
        self.finished: set[str] = set()
        self.segment: _Segment | None = None
        self.drift: tuple[int, DriftAccepted] | None = None
        self.last_at = 0.0
        self.status = "running"
        self.caller: object | None = None  # live: the context of the claim that feeds this projector

    # -- feeding -------------------------------------------------------------------------------------------------

    def learn(self, records: Iterable[Record]) -> None:
        """Take in records written before (by an earlier advance): remember them, emit nothing."""
        sink, self.sink = self.sink, _Quiet()
        try:
            for seq, record in enumerate(records, start=1):
                self.feed(seq, record)
            self.segment = self.drift = None
        finally:
            self.sink = sink

    def feed(self, seq: int, record: Record) -> None:
        """Project one record, the ``seq``-th of the log."""
        drift, self.drift = self.drift, None
        if isinstance(record, ExecutionStarted):
            self._started(seq, record)
        elif isinstance(record, ExecutionResumed):
            self._begin(seq, record.at, resumed=True)
            if drift is not None and self.segment is not None:  # the drift this advance went on despite
                self._in_segment(drift[0], drift[1], self.segment)
            drift = None
        elif self.segment is None and isinstance(record, DriftAccepted):
            self.drift = (seq, record)  # written just before the resumption it belongs to: wait for it
        elif self.segment is None:
            self._detached(seq, record)
        else:
            self._in_segment(seq, record, self.segment)
        if drift is not None:
            self._detached(*drift)
        self.last_at = max(self.last_at, record.at)

    def is_retry(self, call_id: str) -> bool:
        """Whether a ``tool-started`` for ``call_id`` now runs an in-doubt call again (started, never finished)."""
        return call_id in self.started and call_id not in self.finished and call_id not in self.child_waits

    def tool_name(self, call_id: str) -> str:
        """The name of the tool a call asked for (the call id when the records do not say)."""
        call = self.calls.get(call_id)
        return call.name if call is not None else call_id

    def close(self) -> None:
        """End the open advance at its last record's time (the claim was released, or the records ran out)."""
        if self.drift is not None:
            drift, self.drift = self.drift, None
            self._detached(*drift)
        if self.segment is not None:
            self._end_segment(self.segment, self.last_at)

    # -- advances --------------------------------------------------------------------------------------------

    def _started(self, seq: int, r: ExecutionStarted) -> None:
        self.execution_id = r.execution_id
        self.agent = r.agent_id
        self.provider = provider_value(r.config.provider)
        self.request_model = r.model or r.config.model
        self.parent = (r.parent_id, r.parent_call) if r.parent_id and r.parent_call else None
        self.output_type = "json" if r.output_schema is not None else "text"
        self.trace_context = r.trace_context
        self._begin(seq, r.at, resumed=False, started=r)

    def _begin(self, seq: int, at: float, *, resumed: bool, started: ExecutionStarted | None = None) -> None:
        if self.segment is not None:
            self._end_segment(self.segment, self.last_at)
        attrs: Attributes = {
            n.OPERATION_NAME: n.OP_INVOKE_AGENT,
            n.AGENT_NAME: self.agent,
            n.AGENT_ID: self.agent,
            n.CONVERSATION_ID: self.execution_id,
            n.OUTPUT_TYPE: self.output_type,
            self.names.provider: self.provider,
            n.EXECUTION_ID: self.execution_id,
            n.SEGMENT_RESUMED: resumed,
            n.SEQUENCE: seq,
        }
        if self.request_model:
            attrs[n.REQUEST_MODEL] = self.request_model
        if self.parent is not None:
            attrs[n.PARENT_EXECUTION_ID] = self.parent[0]
        if started is not None and self.options.capture_content:
            messages = [*started.history, {"role": "user", "content": started.input}]
            attrs[n.INPUT_MESSAGES] = _json(messages)
        key = f"{self.execution_id}#{seq}"
        self.segment = _Segment(key)
        self.status = "running"
        self.sink.start(
            SpanStart(
                key=key,
                name=f"{n.OP_INVOKE_AGENT} {self.agent}",
                client=False,
                start=at,
                attributes=attrs,
                delegated_by=self.parent,
                link=self.trace_context if resumed else None,
                first=not resumed,
                caller=self.caller,
            )
        )

    def _end_segment(self, seg: _Segment, at: float) -> None:
        for call_id, key in list(seg.tools.items()):
            outcome = "waiting_on_sub_agent" if call_id in self.child_waits else "unfinished"
            self.sink.end(key, at, {n.TOOL_OUTCOME: outcome}, None)
        seg.tools.clear()
        attrs: Attributes = {n.EXECUTION_STATUS: seg.status, n.COST: float(seg.cost)}
        if seg.answer is not None and self.options.capture_content:
            attrs[n.OUTPUT_MESSAGES] = _json([{"role": "assistant", "content": seg.answer}])
        self.sink.end(seg.key, at, attrs, seg.error)
        self.segment = None

    def _stop(self, seg: _Segment, at: float, status: str) -> None:
        seg.status = self.status = status
        self._end_segment(seg, at)

    # -- records inside an advance ---------------------------------------------------------------------------

    def _in_segment(self, seq: int, r: Record, seg: _Segment) -> None:
        key = seg.key
        if isinstance(r, ModelResponded):
            self._chat(seq, r, seg)
        elif isinstance(r, ModelCallFailed):
            self._chat_failed(seq, r, seg)
        elif isinstance(r, ToolStarted):
            self._tool_started(seq, r, seg)
        elif isinstance(r, ToolFinished):
            self._tool_finished(r, seg)
        elif isinstance(r, ChildSuspended):
            self.child_waits.add(r.call_id)
            attrs = {n.TOOL_CALL_ID: r.call_id, n.CHILD_ID: r.child_id}
            self.sink.event(seg.tools.get(r.call_id, key), n.EVENT_CHILD_SUSPENDED, r.at, attrs)
        elif isinstance(r, ExecutionSuspended):
            self._suspended(r, key)
            self._stop(seg, r.at, "suspended")
        elif isinstance(r, ExecutionCompleted):
            seg.answer = r.answer
            self.sink.event(key, n.EVENT_COMPLETED, r.at, {})
            self._stop(seg, r.at, "completed")
        elif isinstance(r, ExecutionFailed):
            seg.error = r.error_type or "ExecutionFailed"
            self.sink.event(key, n.EVENT_FAILED, r.at, {n.ERROR_TYPE: seg.error, n.MESSAGE: r.message})
            self._stop(seg, r.at, "failed")
        elif isinstance(r, ExecutionCancelled):
            self.sink.event(key, n.EVENT_CANCELLED, r.at, {n.CANCEL_REASON: r.reason})
            self._stop(seg, r.at, "cancelled")
        else:
            name, attrs = self._event(r)
            self.sink.event(key, name, r.at, attrs)

    def _event(self, r: Record) -> tuple[str, Attributes]:
        """The event of a record that is neither a step nor the end of an advance."""
        content = self.options.capture_content
        if isinstance(r, DecisionRecorded):
            attrs: Attributes = {n.TOOL_CALL_ID: r.call_id, n.DECISION_APPROVED: r.approved}
            if r.call_id in self.calls:
                attrs[n.TOOL_NAME] = self.calls[r.call_id].name
            if content and r.reason:
                attrs[n.MESSAGE] = r.reason
            return n.EVENT_DECISION, attrs
        if isinstance(r, InputSubmitted):
            attrs = {n.TOOL_CALL_ID: r.call_id}
            if content:
                attrs[n.MESSAGE] = r.text
            return n.EVENT_INPUT_SUBMITTED, attrs
        if isinstance(r, InputRequested):
            attrs = {n.TOOL_CALL_ID: r.call_id}
            if content:
                attrs[n.MESSAGE] = r.question
            return n.EVENT_INPUT_REQUESTED, attrs
        if isinstance(r, InDoubtResolved):
            return n.EVENT_IN_DOUBT_RESOLVED, {n.TOOL_CALL_ID: r.call_id, n.MESSAGE: r.action}
        if isinstance(r, DriftAccepted):
            changed = sorted({str(c[0]) for c in r.changes if c})
            return n.EVENT_DRIFT, {n.DRIFT_CHANGES: changed, n.DRIFT_POLICY: r.policy}
        if isinstance(r, OutputRejected):
            attrs = {n.STEP: r.step}
            if content:
                attrs[n.MESSAGE] = r.error
            return n.EVENT_OUTPUT_REJECTED, attrs
        if isinstance(r, ToolFinished):  # an answer recorded outside an advance (a client's, an operator's)
            return n.EVENT_TOOL_RESULT, self._result_attrs(r)
        if isinstance(r, ExecutionCancelled):
            return n.EVENT_CANCELLED, {n.CANCEL_REASON: r.reason}
        if isinstance(r, ChildSuspended):
            return n.EVENT_CHILD_SUSPENDED, {n.TOOL_CALL_ID: r.call_id, n.CHILD_ID: r.child_id}
        kind = getattr(type(r), "__struct_config__", None)
        return "delite." + str(getattr(kind, "tag", type(r).__name__)), {}

    def _suspended(self, r: ExecutionSuspended, key: str) -> None:
        reason = r.reason
        attrs: Attributes = {n.SUSPEND_KIND: reason.kind, n.SUSPEND_CALLS: [c.call_id for c in reason.calls]}
        if reason.message:
            attrs[n.MESSAGE] = reason.message
        if reason.limit is not None:
            attrs[n.SUSPEND_LIMIT] = reason.limit
        self.sink.event(key, n.EVENT_SUSPENDED, r.at, attrs)
        special = {"budget": n.EVENT_BUDGET_STOP, "contract": n.EVENT_CONTRACT_REFUSAL, "in_doubt": n.EVENT_IN_DOUBT}
        if reason.kind in special:
            self.sink.event(key, special[reason.kind], r.at, attrs)

    # -- steps -----------------------------------------------------------------------------------------------

    def _chat_attrs(self, model: str | None, step: int, attempt: int, requested: str | None = None) -> Attributes:
        attrs: Attributes = {
            n.OPERATION_NAME: n.OP_CHAT,
            self.names.provider: self.provider,
            n.CONVERSATION_ID: self.execution_id,
            n.EXECUTION_ID: self.execution_id,
            n.STEP: step,
            n.ATTEMPT: attempt,
        }
        request_model = requested or self.request_model
        if request_model:
            attrs[n.REQUEST_MODEL] = request_model
        if model:
            attrs[n.RESPONSE_MODEL] = model
        return attrs

    def _chat_name(self, model: str | None, requested: str | None = None) -> str:
        chosen = requested or self.request_model or model
        return f"{n.OP_CHAT} {chosen}" if chosen else n.OP_CHAT

    def _chat(self, seq: int, r: ModelResponded, seg: _Segment) -> None:
        for call in r.tool_calls:
            self.calls[call.id] = call
        cost = _cost(r.usage)
        if cost is not None:
            seg.cost += cost
        if not self.options.chat_spans:
            return
        u = r.usage
        attrs = self._chat_attrs(r.model, r.step, r.attempt, r.request_model)
        # The provider's own reasons when it reported them (records from before they were kept: inferred).
        attrs[n.RESPONSE_FINISH_REASONS] = list(r.finish_reasons) or ["tool_calls" if r.tool_calls else "stop"]
        if r.response_id:
            attrs[n.RESPONSE_ID] = r.response_id
        if r.server_address:
            attrs[n.SERVER_ADDRESS] = r.server_address
            if r.server_port is not None:
                attrs[n.SERVER_PORT] = r.server_port
        attrs[n.INPUT_TOKENS] = u.input_tokens + u.cached_input_tokens + u.cache_write_tokens
        attrs[n.OUTPUT_TOKENS] = u.output_tokens
        attrs[self.names.cache_read_tokens] = u.cached_input_tokens
        attrs[self.names.cache_write_tokens] = u.cache_write_tokens
        attrs[self.names.reasoning_tokens] = u.reasoning_tokens
        if cost is not None:
            attrs[n.COST] = float(cost)
        attrs[n.COST_KNOWN] = u.known
        if self.options.capture_content:
            parts: list[dict[str, Any]] = []
            if r.content:
                parts.append({"type": "text", "content": r.content})
            parts.extend(
                {"type": "tool_call", "id": c.id, "name": c.name, "arguments": c.arguments} for c in r.tool_calls
            )
            attrs[n.OUTPUT_MESSAGES] = _json([{"role": "assistant", "parts": parts}])
        key = f"{self.execution_id}#{seq}"
        start = r.at - r.duration_ms / 1000.0
        self.sink.start(
            SpanStart(
                key=key,
                name=self._chat_name(r.model, r.request_model),
                client=True,
                start=start,
                attributes=attrs,
                parent=seg.key,
            )
        )
        self.sink.end(key, r.at, {}, None)

    def _chat_failed(self, seq: int, r: ModelCallFailed, seg: _Segment) -> None:
        cost = _cost(r.usage)
        if cost is not None:
            seg.cost += cost
        if not self.options.chat_spans:
            return
        attrs = self._chat_attrs(r.model, r.step, r.attempt)
        if r.usage is not None:
            attrs[n.INPUT_TOKENS] = r.usage.input_tokens + r.usage.cached_input_tokens + r.usage.cache_write_tokens
            attrs[n.OUTPUT_TOKENS] = r.usage.output_tokens
        attrs[n.MESSAGE] = r.error
        key = f"{self.execution_id}#{seq}"
        error = str(r.status_code) if r.status_code is not None else "ModelCallFailed"
        self.sink.start(
            SpanStart(key=key, name=self._chat_name(r.model), client=True, start=r.at, attributes=attrs, parent=seg.key)
        )
        self.sink.end(key, r.at, {}, error)

    def _tool_started(self, seq: int, r: ToolStarted, seg: _Segment) -> None:
        call = self.calls.get(r.call_id)
        name = call.name if call is not None else r.call_id
        retry = self.is_retry(r.call_id)
        self.child_waits.discard(r.call_id)
        self.started.add(r.call_id)
        if retry:
            attrs = {n.TOOL_CALL_ID: r.call_id, n.TOOL_NAME: name, n.ATTEMPT: r.attempt}
            self.sink.event(seg.key, n.EVENT_IN_DOUBT_RETRY, r.at, attrs)
        attrs = {
            n.OPERATION_NAME: n.OP_EXECUTE_TOOL,
            n.TOOL_NAME: name,
            n.TOOL_CALL_ID: r.call_id,
            n.TOOL_TYPE: "function",
            n.EXECUTION_ID: self.execution_id,
            n.ATTEMPT: r.attempt,
        }
        if self.options.capture_content and call is not None:
            attrs[n.TOOL_CALL_ARGUMENTS] = _json(call.arguments)
        key = f"{self.execution_id}#{seq}"
        seg.tools[r.call_id] = key
        self.sink.start(
            SpanStart(
                key=key,
                name=f"{n.OP_EXECUTE_TOOL} {name}",
                client=False,
                start=r.at,
                attributes=attrs,
                parent=seg.key,
                call=(self.execution_id, r.call_id),
            )
        )

    def _result_attrs(self, r: ToolFinished) -> Attributes:
        attrs: Attributes = {n.TOOL_CALL_ID: r.call_id, n.TOOL_SOURCE: r.source}
        call = self.calls.get(r.call_id)
        if call is not None:
            attrs[n.TOOL_NAME] = call.name
        if r.error is not None:
            attrs[n.ERROR_TYPE] = self._tool_error(r)
        if self.options.capture_content:
            attrs[n.TOOL_CALL_RESULT] = _json(r.result if r.error is None else r.error)
        return attrs

    @staticmethod
    def _tool_error(r: ToolFinished) -> str:
        return r.source if r.source in ("rejected", "invalid") else "tool_error"

    def _tool_finished(self, r: ToolFinished, seg: _Segment) -> None:
        self.finished.add(r.call_id)
        key = seg.tools.pop(r.call_id, None)
        if key is None:  # no body ran in this advance: a client's result, a rejection, an operator's answer
            self.sink.event(seg.key, n.EVENT_TOOL_RESULT, r.at, self._result_attrs(r))
            return
        attrs: Attributes = {n.TOOL_SOURCE: r.source, n.TOOL_OUTCOME: "error" if r.error is not None else "ok"}
        if self.options.capture_content:
            attrs[n.TOOL_CALL_RESULT] = _json(r.result if r.error is None else r.error)
        self.sink.end(key, r.at, attrs, self._tool_error(r) if r.error is not None else None)

    # -- records outside any advance -------------------------------------------------------------------------

    def _detached(self, seq: int, r: Record) -> None:
        if isinstance(r, ToolFinished):
            self.finished.add(r.call_id)
        if isinstance(r, ExecutionCancelled):
            self.status = "cancelled"
        name, attrs = self._event(r)
        key = f"{self.execution_id}#{seq}"
        span_attrs: Attributes = {
            n.EXECUTION_ID: self.execution_id,
            n.AGENT_NAME: self.agent,
            n.SEQUENCE: seq,
            n.RECORD_KIND: name,
        }
        self.sink.start(
            SpanStart(
                key=key,
                name=f"{n.RECORD_SPAN} {self.agent}",
                client=False,
                start=r.at,
                attributes=span_attrs,
                link=self.trace_context,
                caller=self.caller,
            )
        )
        self.sink.event(key, name, r.at, attrs)
        self.sink.end(key, r.at, {}, None)
