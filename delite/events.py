"""The typed events of a streamed run, as ``agent.stream_events`` and ``agent.astream_events`` yield them.

Every event but :class:`TextDelta` describes something already durable in the log; see
``docs/providers.md`` ("Streaming") for what each one means and when it is sent.
"""

from __future__ import annotations

from delite.engine._events import (
    Cancelled,
    Completed,
    Failed,
    RetryScheduled,
    StreamEvent,
    Suspended,
    TextDelta,
    ToolCallFinished,
    ToolCallStarted,
)

__all__ = [
    "Cancelled",
    "Completed",
    "Failed",
    "RetryScheduled",
    "StreamEvent",
    "Suspended",
    "TextDelta",
    "ToolCallFinished",
    "ToolCallStarted",
]
