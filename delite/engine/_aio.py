"""The async driver: the same operations as the sync API, awaited at their edges.

:func:`adrive` runs an operation (:mod:`delite.engine._operations`) on the running event loop:

* log appends that ``fsync`` (every one in ``full`` mode, barriers in ``normal``), claims and every other
  store call run in delite's I/O threads (``delite-io``), so the loop never waits on the disk; once started
  they are let finish even if the caller is cancelled (a claim or an append abandoned half-way would leak a
  lock or race a release); the appends that ``fsync`` in one turn of the loop are handed over together
  (:class:`_Commits`: group commit, each append still its own ``write`` + ``fsync``); an append that only
  calls ``write`` (``off`` mode, a non-barrier in ``normal``, the memory store:
  :meth:`~delite.store.ExecutionLog.waits`) is made on the loop, with no thread hop;
* a step's run of effects that need no event loop (a tool turn: the append of the model's turn and the
  intent, one sync tool body, the append of its result) is made in *one* worker thread hop, the operation
  advanced there between them (:func:`_segment`), instead of a hop for each; so is a claim or a store call
  and the store calls, appends and release that follow it, in an I/O thread (a claim and the fold of what it
  read; a finished run's snapshot and the release of its claim);
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
import contextlib
import contextvars
import inspect
import queue
import threading
import time
import weakref
from collections.abc import Callable, Coroutine, Iterable
from concurrent.futures import Executor
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any, TypeGuard, TypeVar

from delite.engine._effects import (
    Append,
    Ask,
    Claim,
    Cursor,
    Effect,
    Invocation,
    Io,
    NextResult,
    Sleep,
    StartCalls,
    Steps,
    ToolOutcome,
    ask,
    call_tool,
    ms_since,
    one_sync_body,
    tool_body,
)
from delite.store._base import ExecutionLog
from delite.tools._base import DelegationSuspended, Tool

if TYPE_CHECKING:
    from delite.providers._base import AsyncProvider

__all__ = [
    "IO_THREADS",
    "WORKERS",
    "Pool",
    "Threads",
    "adrive",
    "io_pool",
    "store_inline",
    "uses_workers",
    "work_pool",
    "worker_pool",
]

T = TypeVar("T")

WORKERS = 64
"""Threads of the process-wide pool that runs sync providers and sync tools for the async API."""

IO_THREADS = 16
"""Threads that run log appends, claims and other store calls for the async API (``fsync`` happens there)."""

Pool = Executor | Any
"""Where blocking calls go: anything with ``submit(fn, *args)`` (a :class:`Threads`, or an ``Executor``)."""

worker_pool: ContextVar[Pool | None] = ContextVar("delite_worker_pool", default=None)
"""The pool for sync providers and tools of runs started in this context (a Runtime sets its own)."""

store_inline: ContextVar[Callable[[], bool] | None] = ContextVar("delite_store_inline", default=None)
"""Asked before each store call of a run started in this context: True to make it on the event loop's thread.

A hand-off to an I/O thread and back costs about what a local ``fsync`` does. A :class:`~delite.Runtime` on a
data directory says True while the run is the only one it is advancing (nothing else on its loop waits for the
call); otherwise, and for ``arun`` on the caller's loop, the store's calls go to the I/O threads.
"""


class Threads:
    """A fixed set of daemon threads taking calls from one queue: less work per call than a ThreadPoolExecutor.

    delite's own store calls (appends, claims) are many per step of every execution in flight, and so are the
    calls of sync tools and providers; this pool only runs them and hands nothing back (the bridge does).
    """

    def __init__(self, name: str, size: int) -> None:
        self.name = name
        self.size = size
        self.calls: queue.SimpleQueue[tuple[Callable[..., Any], tuple[Any, ...]] | None] = queue.SimpleQueue()
        self.started = 0
        self.idle = 0
        self.pending = 0
        self.lock = threading.Lock()
        self.threads: list[threading.Thread] = []

    def submit(self, fn: Callable[..., Any], /, *args: Any) -> None:
        """Queue ``fn(*args)``; a thread is started when every one started is busy (up to ``size``)."""
        thread = None
        with self.lock:
            self.pending += 1
            if self.pending > self.idle and self.started < self.size:
                self.started += 1
                self.idle += 1  # it will take a call as soon as it runs
                thread = threading.Thread(target=self._work, name=f"{self.name}-{self.started}", daemon=True)
                self.threads.append(thread)
        if thread is not None:
            thread.start()
        self.calls.put((fn, args))

    def prestart(self) -> None:
        """Start one thread now if none was, so the first call does not wait for a thread to start."""
        with self.lock:
            if self.started or not self.size:
                return
            self.started = self.idle = 1
            thread = threading.Thread(target=self._work, name=f"{self.name}-1", daemon=True)
            self.threads.append(thread)
        thread.start()

    def close(self) -> None:
        """Let the threads finish what is queued, then end them (and wait for them)."""
        with self.lock:
            threads, self.threads = self.threads, []
            self.size = 0
        for _ in threads:
            with self.lock:
                self.pending += 1
            self.calls.put(None)
        for thread in threads:
            if thread is not threading.current_thread():
                thread.join()

    def _work(self) -> None:
        calls = self.calls
        lock = self.lock
        while True:
            item = calls.get()
            with lock:
                self.idle -= 1
                self.pending -= 1
            if item is None:
                return
            fn, args = item
            with contextlib.suppress(BaseException):  # calls hand their outcome back themselves; the thread lives on
                fn(*args)
            with lock:
                self.idle += 1


_io: Threads | None = None


def io_pool() -> Pool:
    """The threads that write logs and claim executions for the async API."""
    global _io  # noqa: PLW0603 - one set of threads per process, made on first use
    if _io is None:
        _io = Threads("delite-io", IO_THREADS)
    return _io


_work: Threads | None = None


def work_pool() -> Pool:
    """The threads that run sync providers and sync tools for the async API in this context."""
    pool = worker_pool.get()
    if pool is not None:
        return pool
    global _work  # noqa: PLW0603 - one set of threads per process, made on first use
    if _work is None:
        _work = Threads("delite-work", WORKERS)
    return _work


class _Job:
    """One blocking call handed to a thread, and its outcome."""

    __slots__ = ("args", "error", "finished", "fn", "future", "skipped", "started", "value")

    def __init__(self, future: asyncio.Future[Any], fn: Callable[..., Any], args: tuple[Any, ...]) -> None:
        self.future = future
        self.fn = fn
        self.args = args
        self.value: Any = None
        self.error: BaseException | None = None
        self.finished = False
        self.started = False
        self.skipped = False


class _Bridge:
    """Hands the outcomes of thread work back to one event loop, waking it once per batch.

    ``loop.call_soon_threadsafe`` per outcome costs a wake-up of the loop (a write to its self-pipe, a read,
    a turn of the loop) each; with many executions in flight the outcomes come in bursts, so they are queued
    and taken together.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.ready: list[_Job] = []
        self.lock = threading.Lock()

    def run(self, job: _Job) -> None:
        """In a worker thread: do the call (unless it was skipped before it started), then queue its outcome."""
        with self.lock:
            if job.skipped:
                return
            job.started = True
        try:
            job.value = job.fn(*job.args)
        except BaseException as e:  # noqa: BLE001 - handed to the awaiting task
            job.error = e
        job.finished = True
        with self.lock:
            self.ready.append(job)
            first = len(self.ready) == 1
        if first:
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile: nobody awaits the outcome
                self.loop.call_soon_threadsafe(self.drain)

    def run_all(self, jobs: list[_Job]) -> None:
        """In a worker thread: :meth:`run` several calls one after the other (a batch handed over in one hop).

        Each outcome is queued as soon as its own call has ended, so an early call of the batch does not wait
        for the later ones; the loop is woken only when it has taken every outcome queued before.
        """
        for job in jobs:
            self.run(job)

    def skip(self, jobs: list[_Job]) -> None:
        """Make sure the jobs not started yet never start (:meth:`run` checks under the same lock)."""
        with self.lock:
            for job in jobs:
                if not job.started:
                    job.skipped = True

    def drain(self) -> None:
        """On the loop: resolve every queued outcome's future."""
        with self.lock:
            jobs, self.ready = self.ready, []
        for job in jobs:
            future = job.future
            if future.done():  # its task was cancelled and stopped waiting
                continue
            if job.error is not None:
                future.set_exception(job.error)
            else:
                future.set_result(job.value)


_bridges: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Bridge] = weakref.WeakKeyDictionary()


def _bridge(loop: asyncio.AbstractEventLoop) -> _Bridge:
    bridge = _bridges.get(loop)
    if bridge is None:
        bridge = _bridges[loop] = _Bridge(loop)
    return bridge


class _Commits:
    """Group commit: the ``fsync``ed appends of one turn of the event loop go to the I/O threads together.

    With many executions in flight, many of them append in the same turn of the loop (their model calls end
    in the same burst). Handing each append to a thread on its own costs a queue put and a thread wake-up per
    append, and a wake-up of the loop per burst of results. Here the appends queued during one turn are
    handed over at the end of it (``call_soon``), split into at most :data:`IO_THREADS` batches that run in
    parallel, each a series of appends in one thread: fewer thread hops, as many ``fsync`` calls at once.

    Nothing about durability changes: each append is its own ``write`` + ``fsync`` (the log's own
    :meth:`~delite.store.ExecutionLog.append`, one log per execution, one append in flight per execution), and
    the execution awaiting it goes on only once that append has returned.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, bridge: _Bridge) -> None:
        self.loop = loop
        self.bridge = bridge
        self.queued: list[_Job] = []

    def add(self, job: _Job) -> None:
        """Queue one append; the first of a turn schedules the hand-over at the end of the turn."""
        self.queued.append(job)
        if len(self.queued) == 1:
            self.loop.call_soon(self.flush)

    def flush(self) -> None:
        """Hand the queued appends to the I/O threads: one thread hop per batch, not per append."""
        jobs, self.queued = self.queued, []
        if not jobs:
            return
        pool = io_pool()
        batches = min(len(jobs), IO_THREADS)
        if len(jobs) == 1:
            pool.submit(self.bridge.run, jobs[0])
            return
        for i in range(batches):
            pool.submit(self.bridge.run_all, jobs[i::batches])


_commits: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Commits] = weakref.WeakKeyDictionary()


async def _ended(job: _Job) -> None:
    """Wait for a call handed to a thread to end, however many times the waiting task is cancelled meanwhile."""
    while not job.finished:
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.sleep(0.001)


async def _commit(effect: Append) -> None:
    """Make an append that calls ``fsync`` in an I/O thread, batched with the others of this turn of the loop.

    Like :func:`_blocking` with ``finish``: a caller cancelled meanwhile still waits for its append to end (an
    append abandoned half-way would race a release of the log).
    """
    loop = asyncio.get_running_loop()
    commits = _commits.get(loop)
    if commits is None:
        commits = _commits[loop] = _Commits(loop, _bridge(loop))
    job = _Job(loop.create_future(), _append, (effect,))
    commits.add(job)
    try:
        await job.future
    except asyncio.CancelledError:
        await _ended(job)  # queued or running: it will run; wait for it, then stop as asked
        raise


async def _blocking(pool: Pool, fn: Callable[..., T], *args: Any, finish: bool = True) -> T:
    """Run ``fn(*args)`` in ``pool`` and await its outcome.

    With ``finish``, a caller cancelled meanwhile still waits for the call to end before it stops (a release
    must not be left running behind the caller's back).
    """
    loop = asyncio.get_running_loop()
    bridge = _bridge(loop)
    job = _Job(loop.create_future(), fn, args)
    pool.submit(bridge.run, job)
    try:
        result: T = await job.future
    except asyncio.CancelledError:
        if not finish:
            raise
        await _ended(job)  # the call goes on in its thread: wait for it, then stop as asked
        raise
    return result


def _in_context(pool: Pool, fn: Callable[..., T], *args: Any) -> Coroutine[Any, Any, T]:
    """:func:`_blocking` for user code (providers, tools): it runs with the caller's context variables."""
    return _blocking(pool, contextvars.copy_context().run, fn, *args, finish=False)


def _inline() -> bool:
    """Whether this run's store calls are made on the loop's thread now (see :data:`store_inline`)."""
    inline = store_inline.get()
    return inline is not None and inline()


def _append(effect: Append) -> None:
    effect.log.append(effect.records, barrier=effect.barrier)


def _claim(effect: Claim) -> ExecutionLog:
    return effect.perform()


def _is_async(fn: object) -> TypeGuard[AsyncProvider]:
    return inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(getattr(fn, "__call__", None))  # noqa: B004


def uses_workers(provider: object, tools: Iterable[Tool]) -> bool:
    """Whether runs of an agent with this provider and these tools call anything in the worker threads.

    A sync tool runs there; so does a provider with no async path (no ``acall``, not a coroutine function).
    """
    sync_provider = provider is not None and not callable(getattr(provider, "acall", None)) and not _is_async(provider)
    return sync_provider or any(not t.is_async for t in tools)


async def _ask(effect: Ask) -> Any:
    provider = effect.provider
    args = (effect.messages, effect.tools, effect.model)
    if effect.on_text is not None:
        astream = getattr(provider, "astream", None)
        if callable(astream):
            return await astream(*args, on_text=effect.on_text)
        if callable(getattr(provider, "stream", None)):
            return await _in_context(work_pool(), ask, effect)
    acall = getattr(provider, "acall", None)
    if callable(acall):
        return await acall(*args)
    if _is_async(provider):
        return await provider(*args)
    return await _in_context(work_pool(), ask, effect)


async def _run_async_tool(inv: Invocation) -> ToolOutcome:
    fn = inv.tool.fn
    assert fn is not None
    started = time.perf_counter()
    with tool_body(inv.context):
        try:
            value = await fn(**inv.arguments)
        except (Exception, DelegationSuspended) as e:  # noqa: BLE001 - recorded and shown to the model
            return ToolOutcome(inv.index, error=e, duration_ms=ms_since(started))
    return ToolOutcome(inv.index, value=value, duration_ms=ms_since(started))


class _Batch:
    """The tool bodies of one StartCalls: async bodies run as tasks, sync ones in the bounded worker pool.

    Every body's future, when done, goes on a ready list and wakes the one waiter, so taking the next
    outcomes costs nothing per body still running (a turn of n calls is O(n), not O(n²)).
    """

    def __init__(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.bridge = _bridge(self.loop)
        self.futures: list[asyncio.Future[ToolOutcome]] = []
        self.tasks: list[asyncio.Task[ToolOutcome]] = []
        self.jobs: list[_Job] = []
        self.ready: list[asyncio.Future[ToolOutcome]] = []
        self.waiter: asyncio.Future[None] | None = None

    def start(self, invocations: list[Invocation]) -> None:
        """Start every body (if starting one fails, those already started are still waited for by close)."""
        loop = self.loop
        bridge = self.bridge
        pool = work_pool()
        for inv in invocations:
            tool = inv.tool
            future: asyncio.Future[ToolOutcome]
            if tool.is_async and tool.fn is not None:
                task = loop.create_task(_run_async_tool(inv))
                self.tasks.append(task)
                future = task
            else:
                future = loop.create_future()
                job = _Job(future, contextvars.copy_context().run, (call_tool, inv))
                self.jobs.append(job)
                pool.submit(bridge.run, job)
            future.add_done_callback(self._ended)
            self.futures.append(future)

    def _ended(self, future: asyncio.Future[ToolOutcome]) -> None:
        self.ready.append(future)
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def next(self) -> list[ToolOutcome]:
        """The outcomes of the bodies that ended since last asked (at least one), in the order asked for."""
        while not self.ready:
            self.waiter = self.loop.create_future()
            try:
                await self.waiter
            finally:
                self.waiter = None
        ready, self.ready = self.ready, []
        outcomes = []
        for i, future in enumerate(ready):
            try:
                outcomes.append(future.result())
            except BaseException:  # a crash in a body propagates from here; close() takes the others
                self.ready[:0] = ready[i + 1 :]
                raise
        outcomes.sort(key=_by_index)
        return outcomes

    async def close(self) -> None:
        """Stop the batch: wait for every body that started to end before returning.

        Sync bodies not started yet never start; async bodies are cancelled and awaited; a sync body that is
        running is let finish (a thread cannot be stopped), so the run keeps its claim until it has: a resume
        elsewhere cannot run a second body of the same call at the same time. A caller cancelled again
        meanwhile still waits (the cancellation is re-raised by the caller's own ``finally``).
        """
        self.bridge.skip(self.jobs)
        for task in self.tasks:
            task.cancel()
        skipped = {id(job.future) for job in self.jobs if job.skipped}
        pending = [f for f in self.futures if not f.done() and id(f) not in skipped]
        self.futures, self.tasks, self.jobs = [], [], []
        cancelled = False
        while pending:
            try:
                await asyncio.wait(pending)  # does not cancel them when this task is cancelled
            except asyncio.CancelledError:
                cancelled = True
            pending = [f for f in pending if not f.done()]
        for future in self.ready:
            if not future.cancelled():
                future.exception()  # retrieved: an outcome nobody will record (its call stays in doubt)
        if cancelled:
            raise asyncio.CancelledError


def _by_index(outcome: ToolOutcome) -> int:
    return outcome.index


class _Segment:
    """A run of an operation's effects made in one worker thread, the operation advanced there between them.

    Made by :func:`_run_segment`, from ``effect`` on, while the operation's next effect needs no event loop:
    an append, a store call (:class:`Io`), and either the start of a single sync tool body and its result
    (``bodies``: in the worker threads) or a claim (not ``bodies``: in the I/O threads, begun by a store call
    or a claim; a body is handed back). The first
    effect it cannot make is handed back in ``effect`` for the loop (None once the operation returned);
    ``single`` is a body it started but did not run (the loop runs it as before); ``raised`` is what the
    operation itself raised (:meth:`Cursor.next`). ``stop`` is set by the loop when the awaiting task is
    cancelled: the thread then stops after the effect it is making, whose outcome the loop replaces with
    the cancellation, as it does after any effect it awaited. ``claims`` is the driver's list of the claims
    it holds for the operation: a claim made here is added to it (the driver releases it however the
    operation ends, as one made on the loop); with ``release``, they are released here (and taken off it)
    if the operation returns here.
    """

    __slots__ = ("bodies", "claims", "effect", "op", "raised", "release", "single", "stop")

    def __init__(
        self, op: Cursor[Any], effect: Effect, claims: list[ExecutionLog], *, bodies: bool, release: bool
    ) -> None:
        self.op = op
        self.bodies = bodies
        self.claims = claims
        self.release = release
        self.effect: Effect | None = effect
        self.single: Invocation | None = None
        self.raised: BaseException | None = None
        self.stop = False


def _run_segment(seg: _Segment) -> None:
    """In a worker thread: make ``seg.effect``, then the operation's next effects while they need no loop."""
    op = seg.op
    effect = seg.effect
    while effect is not None:
        try:
            match effect:
                case Append():
                    _append(effect)
                case Io():
                    op.value = effect.fn(*effect.args)
                case Claim():
                    log = _claim(effect)
                    seg.claims.append(log)
                    op.value = log
                case StartCalls():
                    seg.single = effect.invocations[0]
                case NextResult():
                    inv, seg.single = seg.single, None
                    assert inv is not None
                    # its own copy of the context, as each body gets under the loop: what it sets stays there
                    op.value = [contextvars.copy_context().run(call_tool, inv)]
        except BaseException as e:  # noqa: BLE001 - thrown into the operation, which decides
            op.error = e
        if seg.stop:
            return  # the loop throws the cancellation in for the effect just made
        try:
            effect = seg.effect = op.next()
            if effect is None and seg.release:  # it returned: let go of its claims here, not in one more hop
                while seg.claims:
                    seg.claims.pop().release()
        except BaseException as e:  # noqa: BLE001 - the operation (or a release) raised: the loop's driver raises it
            seg.raised = e
            seg.effect = None
            return
        match effect:
            case Append() | Io():
                continue
            case Claim() if not seg.bodies:
                continue
            case StartCalls() if seg.bodies and seg.single is None and one_sync_body(effect.invocations):
                continue
            case NextResult() if seg.single is not None:
                continue
            case _:
                return  # a model call, a sleep, a claim, async or several bodies: the loop makes it


async def _segment(
    op: Cursor[Any], effect: Effect, claims: list[ExecutionLog], *, io: Pool | None = None, release: bool = False
) -> _Segment:
    """Make ``effect`` and what follows it in one hop to a worker thread (see :class:`_Segment`).

    With ``io``, in that pool (delite's I/O threads) and with no tool body: for a claim or a store call and
    the claims, store calls and appends that follow it (a claim and the fold of what it read; a finished
    run's snapshot, then its release), one hop for them all. ``claims``: the driver's (``release``: no body
    of the run is under way, they may be released there if the operation returns).
    A caller cancelled meanwhile waits for the thread to stop (it advances the operation, which nobody else
    may touch until it has), then gets the segment with ``stop`` set.
    """
    loop = asyncio.get_running_loop()
    seg = _Segment(op, effect, claims, bodies=io is None, release=release)
    job = _Job(loop.create_future(), contextvars.copy_context().run, (_run_segment, seg))
    (io or work_pool()).submit(_bridge(loop).run, job)
    try:
        await job.future
    except asyncio.CancelledError:
        seg.stop = True  # seen or not (it may have ended first), the loop throws the cancellation in
        await _ended(job)
    return seg


def _idle(batch: _Batch | None) -> bool:
    """Whether a batch has nothing left: every body ended and every outcome taken (closing it waits for nothing)."""
    return batch is None or (not batch.ready and all(f.done() for f in batch.futures))


async def adrive(steps: Steps[T]) -> T:
    """Run an operation to its end on the running event loop, awaiting each effect as it is yielded.

    Claims the operation took are released (in an I/O thread) when it ends, however it ends.
    """
    io = io_pool()
    claims: list[ExecutionLog] = []
    batch: _Batch | None = None
    op = Cursor(steps)
    try:
        effect = op.next()
        while effect is not None:
            seg: _Segment | None = None
            try:
                match effect:
                    case Append():
                        if not effect.log.waits(barrier=effect.barrier) or _inline():
                            _append(effect)  # a write to the page cache or to memory, or a run alone: no hop
                        elif effect.ahead and _idle(batch):  # a sync body follows: append and body in one hop
                            if batch is not None:
                                await batch.close()  # waits for nothing: every body ended, every outcome taken
                                batch = None
                            seg = await _segment(op, effect, claims, release=_idle(batch))
                        else:  # in an I/O thread, with the other appends of this turn of the loop
                            await _commit(effect)
                    case Ask():
                        op.value = await _ask(effect)
                    case Io():
                        if _inline():
                            op.value = effect.fn(*effect.args)
                        else:  # with the store calls and appends that follow it (and the release), in one hop
                            seg = await _segment(op, effect, claims, io=io, release=_idle(batch))
                    case NextResult():
                        assert batch is not None
                        op.value = await batch.next()
                    case StartCalls():
                        if batch is not None:
                            await batch.close()
                            batch = None
                        if one_sync_body(effect.invocations):  # the body and what follows it, in one hop
                            seg = await _segment(op, effect, claims, release=_idle(batch))
                        else:
                            batch = _Batch()
                            batch.start(effect.invocations)
                    case Claim():
                        # in (a copy of) the caller's context: telemetry parents the run's spans to the caller's span
                        if _inline():
                            log = _claim(effect)
                            claims.append(log)
                            op.value = log
                        else:  # with what follows it (the fold of what it read, say), in one hop
                            seg = await _segment(op, effect, claims, io=io, release=_idle(batch))
                    case Sleep():
                        await asyncio.sleep(effect.seconds)
                    case _:  # pragma: no cover - every effect is handled above
                        op.error = TypeError(f"unknown effect {effect!r}")
            except BaseException as e:  # noqa: BLE001 - thrown into the operation, which decides
                op.error = e
            if seg is None:
                effect = op.next()
                continue
            if seg.raised is not None:
                raise seg.raised
            if seg.stop:  # cancelled: thrown in for the effect the thread made last, or for the one it handed back
                op.error = asyncio.CancelledError()
                effect = op.next()
                continue
            if seg.single is not None:  # a body started in the thread but not run there: run as before
                batch = _Batch()
                batch.start([seg.single])
            effect = seg.effect
        return op.result
    finally:
        try:
            if batch is not None:
                await batch.close()  # no claim is released while a body the run started still runs
        finally:
            for log in reversed(claims):
                if _inline():
                    log.release()
                else:
                    await _blocking(io, log.release)
