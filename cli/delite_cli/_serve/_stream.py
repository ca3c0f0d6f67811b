"""Server-sent events from an execution's log: one event per record, its sequence number as the event id.

A client that reconnects sends ``Last-Event-ID`` (browsers do it by themselves) and gets the records after
that one, so nothing is missed or repeated. A file store is followed by byte offset (each look reads only the
bytes appended since the last); any other store by ranged reads after the last sequence number seen. The
stream ends with an ``end`` event after a completion or cancellation record.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING

import msgspec
from starlette.concurrency import run_in_threadpool

from delite.errors import DeliteError, UsageError
from delite.log.records import AnyRecord, ExecutionCancelled, ExecutionCompleted
from delite.store._derive import event
from delite.store._records import FramedRange

if TYPE_CHECKING:
    from delite.datadir import DataDir, Event
    from delite.store._tail import LogTail

__all__ = ["Follower", "parse_last_id", "sse"]

POLL = 0.2
"""Seconds between looks at the log."""
KEEPALIVE = 15.0
"""Seconds of silence after which a comment line keeps proxies from closing the stream."""


def parse_last_id(raw: str | None) -> int:
    """The sequence number a client has seen (``Last-Event-ID`` or ``?after=``); 0 for none.

    Raises:
        UsageError: not a whole number from 0 up.
    """
    if raw is None or not raw.strip():
        return 0
    try:
        value = int(raw.strip())
    except ValueError:
        raise UsageError(f"Last-Event-ID must be a record's sequence number, not {raw[:40]!r}") from None
    if value < 0:
        raise UsageError(f"Last-Event-ID must be 0 or more, not {value}")
    return value


class Follower:
    """Reads an execution's records after a sequence number, a batch at each call of :meth:`more`."""

    def __init__(self, data: DataDir, execution_id: str, after: int) -> None:
        """Follow ``execution_id`` from record ``after + 1``."""
        from delite.store._file import FileStore

        self.data = data
        self.execution_id = execution_id
        self.seen = 0
        self.after = after
        self.ended = False
        """Whether the last record read (sent or not) ends the execution: completed or cancelled."""
        store = data.store
        self._tail: LogTail | None = store.tail(execution_id) if isinstance(store, FileStore) else None
        if self._tail is None:
            store.head(execution_id)  # not found: raise now
            self.seen = max(after - 1, 0)  # ranged reads start at the client's last record (to know if it ended)

    def more(self) -> list[Event]:
        """The records appended since the last call (those up to ``after`` left out)."""
        if self._tail is not None:
            batch: list[tuple[AnyRecord, int | None]] = list(self._tail.more())
        else:
            got = self.data.store.read(self.execution_id, after=self.seen)
            offsets: list[int | None] = list(got.offsets) if isinstance(got, FramedRange) else [None] * len(got.records)
            batch = list(zip(got.records, offsets, strict=True))
        found: list[Event] = []
        for record, offset in batch:
            self.seen += 1
            self.ended = isinstance(record, ExecutionCompleted | ExecutionCancelled)
            if self.seen > self.after:
                found.append(event(self.seen, record, offset))
        return found

    def close(self) -> None:
        """Close the log file, if one is open."""
        if self._tail is not None:
            self._tail.close()


def _frame(e: Event) -> bytes:
    return b"id: %d\nevent: record\ndata: %s\n\n" % (e.seq, msgspec.json.encode(e))


async def sse(
    follower: Follower,
    *,
    first: list[Event] | None = None,
    poll: float = POLL,
    keepalive: float = KEEPALIVE,
    stopping: Callable[[], bool] = lambda: False,
) -> AsyncIterator[bytes]:
    """The event stream: ``record`` events, comments to keep it open, and ``end`` once the execution ended.

    ``first`` is a batch the caller already read (so that a log that cannot be read is an error status, not a
    broken stream). A log that fails later (damaged while followed) ends the stream with a ``fault`` event
    whose data is ``{"type", "message", "status"}``. When the server shuts down (``stopping()``) the stream
    just ends; a browser reconnects with ``Last-Event-ID`` to the next server.
    """
    try:
        yield b"retry: 1000\n\n"
        quiet_since = time.monotonic()
        batch = first
        while not stopping():
            if batch is None:
                try:
                    batch = await run_in_threadpool(follower.more)
                except DeliteError as failed:
                    error = {"type": type(failed).__name__, "message": str(failed), "status": int(failed.http_status)}
                    yield b"event: fault\ndata: %s\n\n" % msgspec.json.encode(error)
                    return
            for found in batch:
                yield _frame(found)
            if follower.ended:
                yield b"id: %d\nevent: end\ndata: {}\n\n" % follower.seen
                return
            if batch:
                quiet_since = time.monotonic()
            elif time.monotonic() - quiet_since >= keepalive:
                yield b": still here\n\n"
                quiet_since = time.monotonic()
            batch = None
            await asyncio.sleep(poll)
    finally:
        follower.close()
