"""The async driver: the same operations as the sync API, awaited at their edges.

:func:`adrive` runs an operation (:mod:`delite.engine._operations`) on the running event loop:

* log appends, claims and every other store call run in delite's I/O threads (``delite-io``), so the loop
  never waits on ``write`` or ``fsync``; once started they are let finish even if the caller is cancelled
  (a claim or an append abandoned half-way would leak a lock or race a release);
* a provider with an ``acall`` (or ``astream``) method, or an ``async`` callable, is awaited on the loop;
  any other runs in a worker thread;
* ``async def`` tools run on the loop, as tasks; sync tools run in worker threads; several calls of one
  turn run at the same time;
* back-off sleeps are ``asyncio.sleep``.

Worker threads come from a pool of :data:`WORKERS` threads shared by the process, or from the pool of the
:class:`~delite.Runtime` that started the run.
"""

from __future__ import annotations

import asyncio
import contextvars
import inspect
import time
from collections.abc import Callable
from concurrent.futures import Executor, ThreadPoolExecutor
from contextvars import ContextVar
from typing import Any, TypeVar

from delite.engine._effects import (
    Append,
    Ask,
    Claim,
    Invocation,
    Io,
    NextResult,
    Sleep,
    StartCalls,
    Steps,
    ToolOutcome,
    call_tool,
    ms_since,
    tool_body,
)
from delite.store.base import ExecutionLog
from delite.tools.base import DelegationSuspended

__all__ = ["IO_THREADS", "WORKERS", "adrive", "io_pool", "work_pool", "worker_pool"]

T = TypeVar("T")

WORKERS = 64
"""Threads of the process-wide pool that runs sync providers and sync tools for the async API."""

IO_THREADS = 16
"""Threads that run log appends, claims and other store calls for the async API (``fsync`` happens there)."""

worker_pool: ContextVar[Executor | None] = ContextVar("delite_worker_pool", default=None)
"""The pool for sync providers and tools of runs started in this context (a Runtime sets its own)."""

_pools: dict[str, ThreadPoolExecutor] = {}


def _pool(name: str, size: int) -> ThreadPoolExecutor:
    pool = _pools.get(name)
    if pool is None:
        pool = _pools[name] = ThreadPoolExecutor(max_workers=size, thread_name_prefix=name)
    return pool


def io_pool() -> ThreadPoolExecutor:
    """The threads that write logs and claim executions for the async API."""
    return _pool("delite-io", IO_THREADS)


def work_pool() -> Executor:
    """The threads that run sync providers and sync tools for the async API in this context."""
    return worker_pool.get() or _pool("delite-work", WORKERS)


async def _finish(future: asyncio.Future[T]) -> T:
    """Await work already handed to a thread; if the caller is cancelled meanwhile, let it finish first."""
    try:
        return await asyncio.shield(future)
    except asyncio.CancelledError:
        # The work goes on in its thread: wait for it to end, then stop as asked.
        while not future.done():
            try:
                await asyncio.wait({future})
            except asyncio.CancelledError:
                continue
        if not future.cancelled():
            future.exception()  # retrieved: its outcome no longer matters
        raise


def _in(pool: Executor, fn: Callable[..., T], *args: Any) -> asyncio.Future[T]:
    loop = asyncio.get_running_loop()
    return loop.run_in_executor(pool, contextvars.copy_context().run, fn, *args)


def _append(effect: Append) -> None:
    effect.log.append(effect.records, barrier=effect.barrier)


def _claim(effect: Claim) -> ExecutionLog:
    return effect.store.claim(effect.execution_id, create=effect.create)


def _is_async(fn: object) -> bool:
    return inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(getattr(fn, "__call__", None))  # noqa: B004


def _sync_ask(effect: Ask) -> Any:
    provider = effect.provider
    on_text = effect.on_text
    stream = getattr(provider, "stream", None)
    if on_text is not None and callable(stream):
        return stream(effect.messages, effect.tools, effect.model, on_text=on_text)
    return provider(effect.messages, effect.tools, effect.model)


async def _ask(effect: Ask) -> Any:
    provider = effect.provider
    args = (effect.messages, effect.tools, effect.model)
    if effect.on_text is not None:
        astream = getattr(provider, "astream", None)
        if callable(astream):
            return await astream(*args, on_text=effect.on_text)
        if callable(getattr(provider, "stream", None)):
            return await _in(work_pool(), _sync_ask, effect)
    acall = getattr(provider, "acall", None)
    if callable(acall):
        return await acall(*args)
    if _is_async(provider):
        return await provider(*args)
    return await _in(work_pool(), _sync_ask, effect)


async def _run_tool(inv: Invocation) -> ToolOutcome:
    tool = inv.tool
    fn = tool.fn
    if not tool.is_async or fn is None:
        return await _in(work_pool(), call_tool, inv)
    started = time.perf_counter()
    with tool_body(inv.context):
        try:
            value = await fn(**inv.arguments)
        except (Exception, DelegationSuspended) as e:  # noqa: BLE001 - recorded and shown to the model
            return ToolOutcome(inv.index, error=e, duration_ms=ms_since(started))
    return ToolOutcome(inv.index, value=value, duration_ms=ms_since(started))


class _Batch:
    """The tool bodies of one StartCalls, each a task; results are taken as they finish."""

    def __init__(self, invocations: list[Invocation]) -> None:
        loop = asyncio.get_running_loop()
        self.tasks: dict[asyncio.Task[ToolOutcome], int] = {
            loop.create_task(_run_tool(inv)): inv.index for inv in invocations
        }

    async def next(self) -> ToolOutcome:
        done, _ = await asyncio.wait(self.tasks, return_when=asyncio.FIRST_COMPLETED)
        first = min(done, key=self.tasks.__getitem__)  # of several finished at once, the earliest asked for
        del self.tasks[first]
        return first.result()

    def cancel(self) -> None:
        for task in self.tasks:
            task.cancel()
        self.tasks.clear()


async def adrive(steps: Steps[T]) -> T:
    """Run an operation to its end on the running event loop, awaiting each effect as it is yielded.

    Claims the operation took are released (in an I/O thread) when it ends, however it ends.
    """
    io = io_pool()
    claims: list[ExecutionLog] = []
    batch: _Batch | None = None
    value: Any = None
    error: BaseException | None = None
    try:
        while True:
            try:
                effect = steps.send(value) if error is None else steps.throw(error)
            except StopIteration as stop:
                result: T = stop.value
                return result
            value = error = None
            try:
                kind = type(effect)
                if kind is Append:
                    await _finish(_in(io, _append, effect))
                elif kind is Ask:
                    value = await _ask(effect)  # type: ignore[arg-type]
                elif kind is Io:
                    value = await _finish(_in(io, effect.fn, *effect.args))  # type: ignore[attr-defined]
                elif kind is NextResult:
                    assert batch is not None
                    value = await batch.next()
                elif kind is StartCalls:
                    if batch is not None:
                        batch.cancel()
                    batch = _Batch(effect.invocations)  # type: ignore[attr-defined]
                elif kind is Claim:
                    log = await _finish(_in(io, _claim, effect))
                    claims.append(log)
                    value = log
                elif kind is Sleep:
                    await asyncio.sleep(effect.seconds)  # type: ignore[attr-defined]
                else:  # pragma: no cover - every effect is handled above
                    error = TypeError(f"unknown effect {effect!r}")
            except BaseException as e:  # noqa: BLE001 - thrown into the operation, which decides
                error = e
    finally:
        if batch is not None:
            batch.cancel()
        for log in reversed(claims):
            await _finish(_in(io, log.release))
