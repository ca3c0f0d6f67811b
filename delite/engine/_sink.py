"""The hook a streamed run reports through, apart from the events (:mod:`delite.engine._events`).

The loop asks on every step whether its run is streamed; that question must not import the event classes,
which only a streamed run needs.
"""

from __future__ import annotations

from contextvars import ContextVar
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from delite.engine._events import EventSink

__all__ = ["current_sink", "sink_var"]

sink_var: ContextVar[EventSink | None] = ContextVar("delite_event_sink", default=None)
"""The sink of the stream the current run reports to (None when it is not streamed)."""


def current_sink() -> EventSink | None:
    """The sink of the stream this thread runs for, or None when the run is not streamed."""
    return sink_var.get()
