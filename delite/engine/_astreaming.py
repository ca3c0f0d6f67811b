"""``agent.astream(...)`` and ``agent.astream_events(...)``: the streaming API for asyncio.

The run is ``agent.arun`` as a task on the caller's event loop, reporting to an event sink whose queue the
consumer awaits; everything else is as in :mod:`delite.engine._streaming` (a separate module so that
``import delite`` does not import asyncio).
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any, Self

from delite.engine._events import EventSink, StreamClosed, StreamEvent
from delite.engine._response import AnyResponse
from delite.engine._streaming import TextAssembler, TextView, item_event

__all__ = ["AsyncEventStream", "AsyncTextStream"]


class AsyncEventStream:
    """:class:`EventStream` for asyncio (``agent.astream_events``): the run is a task on the caller's loop.

    Stopping early stops the run at its next event, as with the sync form, and waits for it to let go of
    the execution: use ``async with agent.astream_events(...) as events:`` (or ``await events.aclose()``), as
    Python runs an abandoned async iterator's cleanup only later. Attributes as in :class:`EventStream`.
    """

    def __init__(self, run: Callable[[], Coroutine[Any, Any, AnyResponse]]) -> None:
        """Wrap a coroutine function that runs the execution (``lambda: agent.arun(...)``)."""
        self._run = run
        self._sink: _AsyncSink | None = None
        self._task: asyncio.Task[AnyResponse] | None = None
        self.response: AnyResponse | None = None

    @property
    def execution_id(self) -> str:
        """The execution's id ("" until the run has started)."""
        if self.response is not None:
            return self.response.execution_id
        return self._sink.execution_id if self._sink is not None else ""

    def __aiter__(self) -> AsyncIterator[StreamEvent]:
        """Start the run and yield its events."""
        if self._task is not None:
            raise RuntimeError("a stream can be iterated only once")
        loop = asyncio.get_running_loop()
        sink = self._sink = _AsyncSink(loop)
        context = contextvars.copy_context()
        context.run(sink.install)
        self._task = loop.create_task(self._run(), context=context)
        self._task.add_done_callback(sink.finished)
        return self._events()

    async def _events(self) -> AsyncIterator[StreamEvent]:
        sink = self._sink
        assert sink is not None
        try:
            while self.response is None and (event := item_event(self, *(await sink.items.get()))) is not None:
                yield event
        finally:
            await self.aclose()

    async def aclose(self) -> None:
        """Stop the run at its next event (if still running) and wait for it to let go."""
        if self._sink is not None:
            self._sink.closed.set()
        task = self._task
        if task is not None and not task.done():
            await asyncio.wait({task})

    async def __aenter__(self) -> Self:
        """``async with``: the run is stopped (if still running) when the block ends."""
        return self

    async def __aexit__(self, *exc: object) -> None:
        """Stop the run and wait for it to let go."""
        await self.aclose()


class AsyncTextStream(TextView[AsyncEventStream]):
    """:class:`TextStream` for asyncio: ``async for chunk in agent.astream(...)``."""

    async def aclose(self) -> None:
        """Stop the run at its next event; see :meth:`AsyncEventStream.aclose`."""
        await self.events.aclose()

    async def __aenter__(self) -> Self:
        """``async with``: the run is stopped (if still running) when the block ends."""
        return self

    async def __aexit__(self, *exc: object) -> None:
        """Stop the run and wait for it to let go."""
        await self.events.aclose()

    def __aiter__(self) -> AsyncIterator[str]:
        """Start the run and yield its text."""
        return self._text(self.events.__aiter__())

    async def _text(self, events: AsyncIterator[StreamEvent]) -> AsyncIterator[str]:
        text = TextAssembler()
        try:
            async for event in events:
                out = text.feed(event)
                if out:
                    yield out
        finally:
            await self.events.aclose()


class _AsyncSink(EventSink):
    """An event sink whose consumer awaits on an event loop; the run may report from any thread."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__()
        self.loop = loop
        self.items: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()

    def put(self, item: tuple[str, Any]) -> None:
        self.loop.call_soon_threadsafe(self.items.put_nowait, item)

    def finished(self, task: asyncio.Task[AnyResponse]) -> None:
        """The run's task ended: hand its outcome to the consumer."""
        if task.cancelled():
            self.items.put_nowait(("closed", None))
            return
        error = task.exception()
        if isinstance(error, StreamClosed):
            self.items.put_nowait(("closed", None))
        elif error is not None:
            self.items.put_nowait(("error", error))
        else:
            self.items.put_nowait(("done", task.result()))
