"""The live observer: each batch of records written to a log becomes spans, metrics and log lines, at once.

It runs the :class:`~delite._telemetry._projection.Projector` over the new records of every claim (after
learning the records the claim started from), so live spans are the offline projection made as the log
grows. Every method catches and counts its own exceptions (:attr:`LiveObserver.errors`): an error in
telemetry never reaches the run. No OpenTelemetry import here: the sink and the meter come from
:mod:`delite._telemetry._otel` when the API is installed.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from decimal import Decimal
from typing import Any, Protocol

import msgspec

from delite._telemetry import _names as n
from delite._telemetry._hook import ObservedLog
from delite._telemetry._projection import Attributes, Options, Projector, Sink, SpanStart
from delite.log.records import (
    DecisionRecorded,
    ExecutionCancelled,
    ExecutionCompleted,
    ExecutionFailed,
    ExecutionResumed,
    ExecutionStarted,
    ExecutionSuspended,
    ModelCallFailed,
    ModelResponded,
    Record,
    ToolFinished,
    ToolStarted,
)

__all__ = ["LiveObserver", "LiveSink", "Meter", "QuietSink"]

logger = logging.getLogger(n.LOGGER)


class LiveSink(Sink, Protocol):
    """A sink that can also tell a started span's W3C context, and forget a span never to be ended."""

    def context(self, key: str) -> dict[str, str] | None:
        """The ``traceparent`` (and ``tracestate``) of the span ``key``, if it is recording."""

    def discard(self, key: str) -> None:
        """Forget the span ``key`` without ending it (it is never exported)."""

    def capture(self) -> object | None:
        """The current tracing context (the caller's), to parent spans started later in another thread."""

    def attach(self, context: object) -> object | None:
        """Make a context from :meth:`capture` current; a token for :meth:`detach`."""

    def detach(self, token: object) -> None:
        """Undo :meth:`attach`."""


class Meter(Protocol):
    """Where metrics go: counters and up-down counters are ``add``-ed, histograms ``record``-ed, by name."""

    def add(self, metric: str, value: float, attributes: Attributes) -> None:
        """Add to a counter."""

    def record(self, metric: str, value: float, attributes: Attributes) -> None:
        """Record a value in a histogram."""


class QuietSink:
    """No spans (OpenTelemetry is not installed): the observer still writes its log lines."""

    def start(self, span: SpanStart) -> None:
        """Drop it."""

    def event(self, key: str, name: str, at: float, attributes: Attributes) -> None:
        """Drop it."""

    def end(self, key: str, at: float, attributes: Attributes, error: str | None) -> None:
        """Drop it."""

    def context(self, key: str) -> dict[str, str] | None:  # noqa: ARG002 - the protocol's signature
        """No context."""
        return None

    def discard(self, key: str) -> None:
        """Nothing to forget."""

    def capture(self) -> object | None:
        """No context."""
        return None

    def attach(self, context: object) -> object | None:  # noqa: ARG002 - the protocol's signature
        """Nothing to attach."""
        return None

    def detach(self, token: object) -> None:
        """Nothing to detach."""


class _Claim:
    """The observer's state for one claim: its projector, and for a creating claim the records it created."""

    def __init__(self, projector: Projector, created: list[Record] | None = None) -> None:
        self.projector = projector
        self.created = created


class LiveObserver:
    """Spans, metrics and log lines from the records appended to observed logs (see the module docstring)."""

    def __init__(self, sink: LiveSink, meter: Meter | None, options: Options, *, logs: bool) -> None:
        """Observe into ``sink`` and ``meter`` with ``options``; ``logs`` writes a line per step."""
        self.sink = sink
        self.meter = meter
        self.options = options
        self.logs = logs
        self.enabled = True
        self.errors = 0
        self.last_error: BaseException | None = None
        self._lock = threading.RLock()

    def _failed(self, error: BaseException) -> None:
        self.errors += 1
        self.last_error = error

    # -- the store wrapper's calls ---------------------------------------------------------------------------

    def claiming(self) -> object | None:
        """The caller's tracing context, taken as the claim is made."""
        try:
            return self.sink.capture()
        except Exception as e:  # noqa: BLE001 - fail open
            self._failed(e)
            return None

    def enter(self, context: object | None) -> object | None:
        """Make the caller's context current (for a claim made on its behalf in another thread)."""
        try:
            return None if context is None else self.sink.attach(context)
        except Exception as e:  # noqa: BLE001 - fail open
            self._failed(e)
            return None

    def leave(self, token: object | None) -> None:
        """Undo :meth:`enter`."""
        try:
            if token is not None:
                self.sink.detach(token)
        except Exception as e:  # noqa: BLE001 - fail open
            self._failed(e)

    def creating(self, records: list[Record]) -> tuple[list[Record], object | None]:
        """Start the first advance's span and store its context in the ``execution-started`` record."""
        try:
            first = records[0]
            if not isinstance(first, ExecutionStarted):
                return records, None
            with self._lock:
                projector = Projector(self.sink, self.options)
                projector.feed(1, first)
                segment = projector.segment
                context = self.sink.context(segment.key) if segment is not None else None
                if context and first.trace_context is None:
                    records = [msgspec.structs.replace(first, trace_context=context), *records[1:]]
                for seq, record in enumerate(records[1:], start=2):
                    projector.feed(seq, record)
            return records, _Claim(projector, records)
        except Exception as e:  # noqa: BLE001 - fail open: telemetry never breaks a run
            self._failed(e)
            return records, None

    def dropped(self, token: object) -> None:
        """The claim found the execution already there: its first advance is another's; forget the span."""
        try:
            if isinstance(token, _Claim):
                with self._lock:
                    segment = token.projector.segment
                    if segment is not None:
                        for key in [*segment.tools.values(), segment.key]:
                            self.sink.discard(key)
        except Exception as e:  # noqa: BLE001 - fail open
            self._failed(e)

    def appended(self, log: ObservedLog, before: int, records: Sequence[Record]) -> None:
        """Project the records just written, then count and log them."""
        try:
            with self._lock:
                claim = log.token
                if not isinstance(claim, _Claim):
                    projector = Projector(self.sink, self.options)
                    projector.learn(list(log.records)[:before])
                    projector.caller = log.caller
                    claim = _Claim(projector)
                    log.token = claim
                if claim.created is not None:  # the records the claim created: counted once it is sure it did
                    created, claim.created = claim.created, None
                    for seq, record in enumerate(created, start=1):
                        self._measure(claim.projector, seq, record, retry=False, was="running")
                for seq, record in enumerate(records, start=before + 1):
                    self._one(claim.projector, seq, record)
        except Exception as e:  # noqa: BLE001 - fail open
            self._failed(e)

    def released(self, log: ObservedLog) -> None:
        """End the open advance (every path: completed, suspended, failed, cancelled, or an exception)."""
        try:
            with self._lock:
                claim = log.token
                log.token = None
                if isinstance(claim, _Claim):
                    if claim.created is not None:
                        for seq, record in enumerate(claim.created, start=1):
                            self._measure(claim.projector, seq, record, retry=False, was="running")
                    claim.projector.close()
        except Exception as e:  # noqa: BLE001 - fail open
            self._failed(e)

    # -- one record ------------------------------------------------------------------------------------------

    def _one(self, projector: Projector, seq: int, record: Record) -> None:
        retry = isinstance(record, ToolStarted) and projector.is_retry(record.call_id)
        was = projector.status
        projector.feed(seq, record)
        self._measure(projector, seq, record, retry=retry, was=was)

    def _measure(self, p: Projector, seq: int, r: Record, *, retry: bool, was: str) -> None:
        if self.meter is not None:
            try:
                self._metrics(self.meter, p, r, retry=retry, was=was)
            except Exception as e:  # noqa: BLE001 - fail open
                self._failed(e)
        if self.logs:
            self._log(p, seq, r)

    def _metrics(self, meter: Meter, p: Projector, r: Record, *, retry: bool, was: str) -> None:
        agent: Attributes = {n.AGENT_NAME: p.agent}
        if isinstance(r, ModelResponded | ModelCallFailed):
            usage = r.usage
            if usage is not None and usage.cost is not None:
                meter.add(n.METRIC_COST, float(Decimal(usage.cost)), agent)
            if isinstance(r, ModelResponded) and self.options.chat_spans:
                attrs: Attributes = {n.OPERATION_NAME: n.OP_CHAT, p.names.provider: p.provider}
                request_model = r.request_model or p.request_model
                if request_model:
                    attrs[n.REQUEST_MODEL] = request_model
                if r.model:
                    attrs[n.RESPONSE_MODEL] = r.model
                if r.server_address:
                    attrs[n.SERVER_ADDRESS] = r.server_address
                    if r.server_port is not None:
                        attrs[n.SERVER_PORT] = r.server_port
                u = r.usage
                meter.record(
                    n.METRIC_TOKEN_USAGE,
                    u.input_tokens + u.cached_input_tokens + u.cache_write_tokens,
                    {**attrs, n.TOKEN_TYPE: "input"},
                )
                meter.record(n.METRIC_TOKEN_USAGE, u.output_tokens, {**attrs, n.TOKEN_TYPE: "output"})
                meter.record(n.METRIC_OPERATION_DURATION, r.duration_ms / 1000.0, attrs)
        elif isinstance(r, ExecutionStarted):
            meter.add(n.METRIC_EXECUTIONS, 1, {**agent, n.EXECUTION_STATUS: "started"})
        elif isinstance(r, ExecutionResumed):
            if was == "suspended":
                meter.add(n.METRIC_SUSPENSIONS_WAITING, -1, agent)
        elif isinstance(r, ExecutionSuspended):
            meter.add(n.METRIC_EXECUTIONS, 1, {**agent, n.EXECUTION_STATUS: "suspended"})
            meter.add(n.METRIC_SUSPENSIONS_WAITING, 1, agent)
            if r.reason.kind == "in_doubt":
                meter.add(n.METRIC_IN_DOUBT, 1, {**agent, n.SUSPEND_KIND: "in_doubt"})
        elif isinstance(r, ExecutionCompleted | ExecutionFailed | ExecutionCancelled):
            status = {ExecutionCompleted: "completed", ExecutionFailed: "failed", ExecutionCancelled: "cancelled"}
            meter.add(n.METRIC_EXECUTIONS, 1, {**agent, n.EXECUTION_STATUS: status[type(r)]})
            if isinstance(r, ExecutionCancelled) and was == "suspended":
                meter.add(n.METRIC_SUSPENSIONS_WAITING, -1, agent)
        elif isinstance(r, ToolStarted) and retry:
            meter.add(n.METRIC_IN_DOUBT, 1, {**agent, n.TOOL_NAME: p.tool_name(r.call_id)})

    @staticmethod
    def _log(p: Projector, seq: int, r: Record) -> None:
        """One structured line per step under the ``delite`` logger (never content, never keys)."""
        fields: dict[str, Any]
        level = logging.INFO
        if isinstance(r, ModelResponded):
            event = "model_responded"
            fields = {
                "step": r.step,
                "model": r.model,
                "response_id": r.response_id,
                "input_tokens": r.usage.input_tokens,
                "output_tokens": r.usage.output_tokens,
                "cost": r.usage.cost,
                "tool_calls": [c.name for c in r.tool_calls],
                "duration_ms": r.duration_ms,
            }
        elif isinstance(r, ModelCallFailed):
            event, level = "model_call_failed", logging.WARNING
            fields = {"step": r.step, "attempt": r.attempt, "retryable": r.retryable, "status_code": r.status_code}
        elif isinstance(r, ToolFinished):
            event = "tool_finished"
            fields = {
                "call_id": r.call_id,
                "tool": p.tool_name(r.call_id),
                "source": r.source,
                "error": r.error is not None,
                "duration_ms": r.duration_ms,
            }
        elif isinstance(r, ExecutionStarted):
            event, fields = "execution_started", {"agent": r.agent_id, "parent_id": r.parent_id}
        elif isinstance(r, ExecutionResumed):
            event, fields = "execution_resumed", {"pid": r.pid}
        elif isinstance(r, ExecutionSuspended):
            event, fields = "execution_suspended", {"kind": r.reason.kind, "calls": r.reason.confirmation_ids}
        elif isinstance(r, DecisionRecorded):
            event, fields = "decision_recorded", {"call_id": r.call_id, "approved": r.approved}
        elif isinstance(r, ExecutionCompleted):
            event, fields = "execution_completed", {}
        elif isinstance(r, ExecutionFailed):
            event, level, fields = "execution_failed", logging.WARNING, {"error_type": r.error_type}
        elif isinstance(r, ExecutionCancelled):
            event, fields = "execution_cancelled", {}
        else:
            return
        if not logger.isEnabledFor(level):
            return
        pairs = " ".join(f"{k}={v}" for k, v in fields.items() if v is not None)
        logger.log(
            level,
            "%s execution_id=%s seq=%d %s",
            event,
            p.execution_id,
            seq,
            pairs,
            extra={"execution_id": p.execution_id, "delite_event": event, "delite_seq": seq, "delite": fields},
        )
