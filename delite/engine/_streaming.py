"""``agent.stream(...)`` and ``agent.stream_events(...)``: a run whose progress is read as it happens.

The run itself is the ordinary one (``agent.run``), advanced in a worker thread; the loop reports to an
:class:`~delite.engine._events.EventSink` and the consumer reads events from its queue. Streaming changes
nothing about durability: a model turn is recorded once complete, a broken stream is a failed attempt that
is retried, and a consumer that stops reading unwinds the run at its next event exactly as a crash would
there (every record written so far stays; ``resume`` continues).
"""

from __future__ import annotations

import contextvars
import threading
from collections.abc import Callable, Iterator
from typing import Any, Generic, Protocol, TypeVar

from delite.engine._events import (
    Cancelled,
    Completed,
    EventSink,
    Failed,
    StreamClosed,
    StreamEvent,
    Suspended,
    TextDelta,
)
from delite.engine._response import AnyResponse, Response
from delite.state._model import Status

__all__ = ["EventStream", "TextAssembler", "TextStream", "TextView", "final_event", "item_event"]


class _RunView(Protocol):
    """What a text stream reads of its event stream (sync or async)."""

    response: AnyResponse | None

    @property
    def execution_id(self) -> str:
        """The execution's id ("" until the run has started)."""
        ...


E = TypeVar("E", bound=_RunView)


def item_event(stream: _RunView, kind: str, value: Any) -> StreamEvent | None:
    """The event a sink's item stands for, or None when the stream ends without one.

    ``("done", response)`` is the last event's: the response is kept on ``stream``, which then ends; an
    ``("error", e)`` item raises the run's error.
    """
    if kind == "event":
        event: StreamEvent = value
        return event
    if kind == "done":
        stream.response = value
        return final_event(value)
    if kind == "error":
        raise value
    return None


class TextView(Generic[E]):
    """The part of a text stream that reads its event stream: its response and execution id (sync or async)."""

    def __init__(self, events: E) -> None:
        """Wrap an event stream."""
        self.events = events

    @property
    def response(self) -> AnyResponse | None:
        """The run's response, once the stream is exhausted."""
        return self.events.response

    @property
    def execution_id(self) -> str:
        """The execution's id ("" until the run has started)."""
        return self.events.execution_id


def final_event(response: Response) -> StreamEvent:
    """The last event of a run's stream, from its response."""
    eid = response.execution_id
    if response.status is Status.COMPLETED:
        return Completed(eid, response)
    if response.status is Status.CANCELLED:
        return Cancelled(eid, response)
    if response.status is Status.FAILED:
        return Failed(eid, response)
    return Suspended(eid, response)


class EventStream:
    """The typed events of one run, in order; the last is ``Completed``, ``Suspended``, ``Cancelled`` or ``Failed``.

    An error the run raises is raised from the iteration.

    The run starts when iteration starts. Leaving the loop early (``break``, an exception, ``close()``)
    stops the run at its next event and waits for that; the execution stays resumable. A tool that has
    started is let finish (its result is recorded), so leaving never puts a call in doubt.

    Attributes:
        execution_id: the execution's id, known once the run has started (and always after it ended).
        response: the run's :class:`~delite.Response` once the stream is exhausted, else None.
    """

    def __init__(self, run: Callable[[], AnyResponse]) -> None:
        """Wrap a call that runs the execution (``lambda: agent.run(...)``)."""
        self._run = run
        self._sink = EventSink()
        self._thread: threading.Thread | None = None
        self.response: AnyResponse | None = None

    @property
    def execution_id(self) -> str:
        """The execution's id ("" until the run has started)."""
        return self.response.execution_id if self.response is not None else self._sink.execution_id

    def _work(self) -> None:
        self._sink.install()
        try:
            response = self._run()
        except StreamClosed:
            self._sink.queue.put(("closed", None))
        except BaseException as e:  # noqa: BLE001 - handed to the consumer's thread, which re-raises it
            self._sink.queue.put(("error", e))
        else:
            self._sink.queue.put(("done", response))

    def __iter__(self) -> Iterator[StreamEvent]:
        """Start the run and yield its events."""
        if self._thread is not None:
            raise RuntimeError("a stream can be iterated only once")
        context = contextvars.copy_context()
        self._thread = threading.Thread(target=context.run, args=(self._work,), name="delite-stream", daemon=True)
        self._thread.start()
        return self._events()

    def _events(self) -> Iterator[StreamEvent]:
        queue = self._sink.queue
        try:
            while self.response is None and (event := item_event(self, *queue.get())) is not None:
                yield event
        finally:
            self.close()

    def close(self) -> None:
        """Stop the run at its next event (if still running) and wait for its thread to let go."""
        self._sink.closed.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join()


class TextStream(TextView[EventStream]):
    """The text of a run's model turns as it arrives (``for chunk in agent.stream(...)``).

    Each model turn's text is streamed; turns are separated by a blank line. If a stream breaks and the call
    is retried, the retry's text is yielded from where the shown text ends when it agrees with it; when it
    does not, a line break is yielded and the retry's text follows (use :meth:`Agent.stream_events
    <delite.Agent.stream_events>` to handle retries exactly). When nothing was streamed (a finished
    execution replayed from its log) the answer is yielded whole. ``response`` holds the run's
    :class:`~delite.Response` once the stream is exhausted.
    """

    def close(self) -> None:
        """Stop the run at its next event; see :meth:`EventStream.close`."""
        self.events.close()

    def __iter__(self) -> Iterator[str]:
        """Start the run and yield its text."""
        return self._text(iter(self.events))

    def _text(self, events: Iterator[StreamEvent]) -> Iterator[str]:
        text = TextAssembler()
        try:
            for event in events:
                out = text.feed(event)
                if out:
                    yield out
        finally:
            close: Any = getattr(events, "close", None)
            if close is not None:
                close()


class TextAssembler:
    """Turns a run's events into the text to show (see :class:`TextStream`); shared by the sync and async forms."""

    def __init__(self) -> None:
        """Nothing shown yet."""
        self.step = self.attempt = self.last_step_shown = 0
        self.shown: list[str] = []  # the text shown for the current step
        self.replay: str | None = None  # while a retried attempt repeats what was shown: that text
        self.current = ""  # the retried attempt's text so far
        self.anything = False

    def feed(self, event: StreamEvent) -> str | None:
        """The text to show for this event, if any."""
        if isinstance(event, TextDelta):
            if event.step != self.step:
                self.step, self.attempt, self.shown, self.replay = event.step, event.attempt, [], None
            elif event.attempt != self.attempt:
                self.attempt = event.attempt
                self.replay, self.current = ("".join(self.shown), "") if self.shown else (None, "")
            if self.replay is None:
                if not event.text:
                    return None
                out = ("\n\n" if self.anything and not self.shown else "") + event.text
                self.shown.append(event.text)
            else:
                self.current += event.text
                replay, current = self.replay, self.current
                if replay.startswith(current):
                    return None  # the retry is repeating what was already shown
                out = current[len(replay) :] if current.startswith(replay) else "\n" + current
                self.shown, self.replay = [current], None
            self.anything = True
            self.last_step_shown = self.step
            return out
        if isinstance(event, Completed):
            answer = event.response.answer
            if answer and self.last_step_shown != event.response.steps:
                return ("\n\n" if self.anything else "") + answer
        return None
