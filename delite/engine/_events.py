"""The typed events of a streamed run (``agent.stream_events``), and the hook the loop reports them through.

Every event but :class:`TextDelta` describes something already durable in the log: a tool call's start is
reported once its intent is written, its end once its result is written. Text deltas are live: they show a
model turn as it arrives, before it is recorded. A turn is recorded only once complete, so text of an attempt
that failed mid-stream is void; the attempt that replaces it streams again (:class:`RetryScheduled` says so).
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from delite.engine._response import Response
from delite.engine._sink import current_sink, sink_var
from delite.errors import ControlSignal
from delite.log.records import ModelCallFailed, ModelResponded, Record, ToolFinished, ToolStarted
from delite.state._model import ExecutionState

__all__ = [
    "Cancelled",
    "Completed",
    "EventSink",
    "Failed",
    "RetryScheduled",
    "StreamClosed",
    "StreamEvent",
    "Suspended",
    "TextDelta",
    "ToolCallFinished",
    "ToolCallStarted",
    "current_sink",
    "sink_var",
]


@dataclass(frozen=True)
class StreamEvent:
    """Base of every event: the execution it belongs to."""

    execution_id: str


@dataclass(frozen=True)
class TextDelta(StreamEvent):
    """A piece of a model turn's text, live. ``step`` is the model call, ``attempt`` its try."""

    text: str
    step: int
    attempt: int = 1


@dataclass(frozen=True)
class ToolCallStarted(StreamEvent):
    """A tool call's intent is durable and its body is about to run (``attempt`` > 1: a retry)."""

    call_id: str
    name: str
    arguments: Any
    attempt: int = 1


@dataclass(frozen=True)
class ToolCallFinished(StreamEvent):
    """A tool call's outcome is durable: its ``result``, or its ``error``; ``source`` as in the log."""

    call_id: str
    name: str
    result: Any = None
    error: str | None = None
    source: str = "tool"


@dataclass(frozen=True)
class RetryScheduled(StreamEvent):
    """A model call attempt failed and will be retried; text streamed for this attempt is void."""

    step: int
    attempt: int
    error: str
    status_code: int | None = None


@dataclass(frozen=True)
class Completed(StreamEvent):
    """The run finished with an answer; the last event of its stream."""

    response: Response


@dataclass(frozen=True)
class Suspended(StreamEvent):
    """The run stopped to wait (approval, client tool, human input, budget...); the last event of its stream."""

    response: Response


@dataclass(frozen=True)
class Cancelled(StreamEvent):
    """The run was cancelled; the last event of its stream."""

    response: Response


@dataclass(frozen=True)
class Failed(StreamEvent):
    """The run stopped on an error it recorded; the last event of its stream (``resume`` retries it)."""

    response: Response


class StreamClosed(ControlSignal):
    """The consumer of a stream went away: unwinds the run as a crash would at that point.

    Raised at the next event that is not a tool call's start, so a tool whose intent was just written runs to
    its end and records its result instead of being left in doubt. A :class:`~delite.errors.ControlSignal`
    (a ``BaseException``), so a tool's ``except Exception`` cannot swallow it.
    """


class EventSink:
    """Turns what the loop does into events on a queue that the consumer's thread reads."""

    def __init__(self) -> None:
        """An empty queue; nothing bound yet."""
        self.queue: queue.SimpleQueue[tuple[str, Any]] = queue.SimpleQueue()
        self.closed = threading.Event()
        self.execution_id = ""
        self._state: ExecutionState | None = None
        self._streamed: set[int] = set()

    def install(self) -> None:
        """Make this the sink of the current context (the worker thread's)."""
        sink_var.set(self)

    def put(self, item: tuple[str, Any]) -> None:
        """Hand an item to the consumer (thread-safe)."""
        self.queue.put(item)

    def emit(self, event: StreamEvent, *, stop: bool = True) -> None:
        """Queue an event; once the consumer is gone, raise :class:`StreamClosed` (or, without ``stop``, drop it)."""
        if self.closed.is_set():
            if stop:
                raise StreamClosed
            return
        self.put(("event", event))

    def bind(self, state: ExecutionState) -> None:
        """The loop starts advancing this execution."""
        self._state = state
        self.execution_id = state.execution_id

    def text(self, step: int, attempt: int, text: str) -> None:
        """A piece of a streamed model turn."""
        self._streamed.add(step)
        self.emit(TextDelta(self.execution_id, text, step, attempt))

    def written(self, records: Sequence[Record], *, running: bool = False) -> None:
        """Records just appended to the log: report the ones a stream's consumer cares about.

        ``running``: tool bodies are still in flight (results of calls running at once come in one by one).
        """
        state = self._state
        eid = self.execution_id
        # A batch that holds a tool's intent is written just before that tool runs, and a result may come in
        # while others run: never stop there (a stopped run would leave those calls in doubt).
        stop = not running and not any(isinstance(r, ToolStarted) for r in records)
        for r in records:
            if isinstance(r, ToolStarted):
                found = state.call(r.call_id) if state is not None else None
                call = found.call if found is not None else None
                name, args = (call.name, call.arguments) if call is not None else ("", None)
                self.emit(ToolCallStarted(eid, r.call_id, name, args, r.attempt), stop=stop)
            elif isinstance(r, ToolFinished):
                found = state.call(r.call_id) if state is not None else None
                call = found.call if found is not None else None
                finished = ToolCallFinished(eid, r.call_id, call.name if call else "", r.result, r.error, r.source)
                self.emit(finished, stop=stop)
            elif isinstance(r, ModelResponded):
                if r.step not in self._streamed and r.content:  # the provider could not stream: all at once
                    self.emit(TextDelta(eid, r.content, r.step, r.attempt), stop=stop)
                self._streamed.add(r.step)
            elif isinstance(r, ModelCallFailed) and r.retryable:
                self.emit(RetryScheduled(eid, r.step, r.attempt, r.error, r.status_code), stop=stop)
