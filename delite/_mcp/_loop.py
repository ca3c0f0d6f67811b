"""delite's MCP event loop: one daemon thread per process that owns every MCP session.

The ``mcp`` package is async only, and its sessions are bound to the event loop (and the task) that opened
them. Keeping them on one loop of delite's own lets a session outlive a run: the sync API blocks on it, the
async API awaits it (``asyncio.wrap_future``, no thread held), and a later run in the same process reuses the
connection. A session is never relied upon across processes: a resumed execution reconnects on demand.
"""

from __future__ import annotations

import asyncio
import atexit
import threading
import weakref
from collections.abc import Coroutine
from concurrent.futures import Future
from typing import Any, TypeVar

__all__ = ["MCPLoop", "mcp_loop"]

T = TypeVar("T")


class MCPLoop:
    """An event loop running in a daemon thread; coroutines are submitted to it from any thread."""

    def __init__(self) -> None:
        """Start the thread and its loop."""
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name="delite-mcp", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    def submit(self, coro: Coroutine[Any, Any, T]) -> Future[T]:
        """Schedule ``coro`` on the loop; cancelling the returned future cancels it."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run ``coro`` on the loop and block until it ends (never call this from the loop's own thread)."""
        if threading.current_thread() is self._thread:
            coro.close()
            raise RuntimeError("MCPLoop.run called from the MCP loop itself")
        future = self.submit(coro)
        try:
            return future.result()
        except BaseException:
            future.cancel()
            raise

    async def arun(self, coro: Coroutine[Any, Any, T]) -> T:
        """Await ``coro`` run on the loop, from another event loop (a cancellation here cancels it there)."""
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:  # pragma: no cover - always called from a coroutine
            running = None
        if running is self.loop:
            return await coro
        return await asyncio.wrap_future(self.submit(coro))


_lock = threading.Lock()
_instance: MCPLoop | None = None
_closers: weakref.WeakSet[Any] = weakref.WeakSet()  # sessions to close at exit (none kept alive by it)


def mcp_loop() -> MCPLoop:
    """The process's MCP loop, started on first use."""
    global _instance  # noqa: PLW0603 - one loop per process, started lazily
    with _lock:
        if _instance is None:
            _instance = MCPLoop()
            atexit.register(_shutdown)
        return _instance


def on_shutdown(session: Any) -> None:
    """Close ``session`` (its async ``close()``, briefly) when the process exits: sessions end, servers stop."""
    _closers.add(session)


def _shutdown() -> None:
    loop = _instance
    if loop is None:
        return
    for session in list(_closers):
        try:
            loop.submit(session.close()).result(timeout=5)
        except Exception:  # noqa: BLE001, S112 - best effort at exit: a server that does not stop is left
            continue
