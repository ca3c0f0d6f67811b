"""``Runtime``: many agents' executions advancing at once in one process, as durable background work.

A runtime owns an event loop in a thread of its own. ``rt.go(agent, text)`` writes the execution's start
(durably) and returns its id; the execution advances on that loop, as ``agent.arun`` (or ``aresume``) does,
so many slow model calls are in flight together. Async providers and tools run on the loop; sync ones in the
runtime's ``workers`` threads; log writes in delite's I/O threads (a sync tool's step makes its appends in the
worker thread that runs its body). Nothing here changes what a run records:
the runtime is a host for the same durable operations as ``agent.run``.
"""

from __future__ import annotations

import asyncio
import atexit
import collections
import concurrent.futures
import contextlib
import functools
import logging
import os
import queue
import sys
import threading
import time
import weakref
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self, Unpack

from delite._checks import check_flag, check_run_args, check_text
from delite._telemetry._hook import caller_context, within
from delite.engine._aio import Threads, adrive, store_inline, uses_workers, worker_pool
from delite.engine._begin import Begun, begin
from delite.engine._effects import STOP_REQUESTED, drive
from delite.engine._operations import check_storable
from delite.engine._options import RUN_OPTIONS, RunOptions
from delite.engine._response import AnyResponse, Response, settled
from delite.errors import DeliteError, ExecutionAlreadyClaimedError, UsageError
from delite.log._durability import Durability
from delite.log.records import ExecutionStarted, SuspendReason
from delite.runtime._flag import Flag
from delite.state._model import ExecutionState, Status
from delite.store._base import Store
from delite.store._file import FileStore
from delite.store._ids import new_execution_id, validate_execution_id
from delite.store._index import ListingIndex  # noqa: F401 - start() lists what to resume: sqlite3 with the runtime
from delite.store._memory import MemoryStore
from delite.store._open import default_location, open_store, store_location
from delite.tools._base import _current as _current_call

if TYPE_CHECKING:
    from delite.engine._agent import Agent
    from delite.runtime._worker import WorkEvent, WorkReport

__all__ = ["Runtime"]

_UNHEARD_LIMIT = 1000
"""Outcomes kept per kind for a callback registered late (see Runtime, Callbacks); older ones are dropped."""

_CLAIM_PATIENCE = 5.0
"""Seconds a resume after a recorded answer keeps trying a claim that a racing submitter holds."""

log = logging.getLogger("delite.runtime")

OnComplete = Callable[[str, str, Response], Any]
OnSuspend = Callable[[str, str, SuspendReason], Any]
OnFail = Callable[[str, str, BaseException], Any]
OnCancel = Callable[[str, str, Response], Any]


@dataclass
class _Run:
    """One stretch of an execution's advance in this runtime (a start, a resume after a signal, a recovery).

    ``future`` holds its response once its callbacks have run; ``task`` is the coroutine's own future,
    done as soon as the run has let go of the execution (the next run of the same execution waits for it).
    """

    execution_id: str
    agent_id: str
    future: concurrent.futures.Future[Response] = field(default_factory=concurrent.futures.Future)
    task: concurrent.futures.Future[None] | None = None


def _settle(run: _Run, outcome: Any) -> None:
    """Hand a run's outcome (its response, or what it raised) to its future: :meth:`Runtime.wait` returns it."""
    if isinstance(outcome, BaseException):
        run.future.set_exception(outcome)
    else:
        run.future.set_result(outcome)


class Runtime:
    """Runs many agents' executions concurrently in this process, in the background, durably.

    Example::

        rt = Runtime("./data")
        researcher = Agent("./data", runtime=rt, agent_id="researcher", provider=..., tools=[...])

        @rt.on_suspend
        def paused(agent_id, execution_id, reason):
            notify(f"{agent_id} needs a decision: {reason}")

        eid = rt.go(researcher, "Research the topic")   # returns once the start is on disk
        ...
        rt.signal(eid, confirmation_id, True)          # records the decision, resumes in the background
        print(rt.wait(eid).answer)
        rt.shutdown()

    **Recovery.** When the runtime starts (explicitly with :meth:`start`, or on the first :meth:`go` or
    signal), and whenever an agent joins a started runtime, it looks for executions of its agents that a dead
    process left ``running`` (nobody holds their claim) and resumes them, so restarting a crashed service
    continues its work with no manual step. Register callbacks before it starts to hear about those too.
    Sub-agents' executions are not resumed on their own: their parent's call resumes them. Only executions
    a process was advancing are resumed: a fork (``delite fork``, :meth:`DataDir.fork`) that nobody has
    resumed yet is left alone, whatever its status.

    **Exit.** A process that exits with runs in flight (no :meth:`wait` or :meth:`shutdown`) prints one
    line on stderr saying how many and what becomes of them (``running`` on disk, resumed by the next runtime
    on the same data directory); the threads end with the process, as after a crash.

    **Callbacks** run in a thread of their own, one at a time, in order; one that raises is logged (logger
    ``delite.runtime``) and changes nothing else. :meth:`wait` returns once the run's callbacks have run.
    Callbacks may be registered after :meth:`go` (as in ``rt.go(...)`` then ``@rt.on_complete``): an outcome
    that came while no callback of its kind was registered is delivered to the first one registered later
    (the latest 1,000 per kind are kept); a callback registered when others of its kind exist hears only
    what comes next.

    Args:
        data_dir: the data directory its agents share, or a ``postgresql://`` URL (or pass ``store``); when
            omitted, ``$DELITE_DATA_DIR`` or else ``./data``, as for an :class:`~delite.Agent`.
        workers: threads for blocking work of its runs: sync model providers and sync tools (with the log
            writes of a sync tool's step). Async providers and tools run on the runtime's event loop and are not
            limited by it; other log writes have their own threads (a run alone in flight on a data directory or
            a memory store makes them on the loop).
        recover: resume executions a dead process left running (see above); False to leave them.
        store: a store to use instead of files under ``data_dir``. The runtime borrows it: :meth:`close` leaves
            it open (see ``owns_store``); agents built with ``runtime=rt`` and no ``data_dir`` borrow the
            runtime's store in turn.
        durability: the durability mode of the store built from ``data_dir``.
    """

    def __init__(
        self,
        data_dir: str | os.PathLike[str] | None = None,
        *,
        workers: int = 32,
        recover: bool = True,
        store: Store | None = None,
        durability: Durability | str = Durability.FULL,
    ) -> None:
        """Configure the runtime; nothing starts until :meth:`start` (or the first :meth:`go`)."""
        self.owns_store = store is None
        """Whether :meth:`close` closes :attr:`store`: True when the runtime opened it from ``data_dir``."""
        if store is None:
            store = open_store(default_location() if data_dir is None else data_dir, durability=durability)
        if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
            raise UsageError("workers must be 1 or more")
        check_flag("recover", recover)
        if not isinstance(store, Store):
            raise UsageError(f"store must be a Store, not {type(store).__name__}")
        self.store = store
        self.workers = workers
        self.recover = recover
        self.recovered: list[str] = []
        """Ids of the executions this runtime found left running and resumed."""
        self._agents: dict[str, Agent] = {}
        self._runs: dict[str, _Run] = {}
        self._active = 0
        self._lock = threading.Condition()
        kinds = ("complete", "suspend", "fail", "cancel")
        self._callbacks: dict[str, list[Callable[..., Any]]] = {k: [] for k in kinds}
        # Outcomes that came before any callback of their kind was registered (the seed registers its callbacks
        # after go()): the first callback of that kind registered later hears them. Bounded: the oldest go.
        self._unheard: dict[str, collections.deque[tuple[Any, ...]]] = {
            k: collections.deque(maxlen=_UNHEARD_LIMIT) for k in kinds
        }
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._pool: Threads | None = None
        self._notices: queue.SimpleQueue[tuple[Callable[[], None], _Run | None, Any] | None] = queue.SimpleQueue()
        self._notifier: threading.Thread | None = None  # the callback thread, started when first needed
        self._notices_closed = False  # set once shutdown has stopped the callback thread (or found none)
        self._closing = False
        self._stopping = False
        self._recovering: set[str] = set()
        self._stop_working = Flag()  # flags, not events: stop_working() may be called from a signal handler
        self._work_wake = Flag()  # wakes the worker loop between its polls
        self._draining = False
        self._working = False
        self._pid = 0  # the process that started it (a forked child's exit says nothing of its parent's runs)

    # -- agents and callbacks --------------------------------------------------------------------------------

    def join(self, agent: Agent) -> None:
        """Make ``agent`` the one this runtime uses for executions of its ``agent_id`` (the latest join wins).

        ``Agent(..., runtime=rt)`` calls this. A started runtime looks for that agent's executions left
        running by a dead process at once.
        """
        mine, theirs = store_location(self.store), store_location(agent.store)
        if mine is not None and theirs is not None and mine != theirs:  # two data directories, or databases
            raise UsageError(f"agent {agent.agent_id!r} uses {theirs}, but this runtime runs {mine}")
        with self._lock:
            self._agents[agent.agent_id] = agent
            agent._kin = self._agents  # noqa: SLF001 - a sub-agent's call answered via its parent: its agent redacts
            started = self._loop is not None
        if started and self.recover:
            self._recover([agent.agent_id])

    @property
    def agents(self) -> Mapping[str, Agent]:
        """The agents that joined, by ``agent_id``."""
        return dict(self._agents)

    def on_complete(self, fn: OnComplete) -> OnComplete:
        """Decorator: ``fn(agent_id, execution_id, response)`` after an execution completes."""
        self._register("complete", fn)
        return fn

    def on_suspend(self, fn: OnSuspend) -> OnSuspend:
        """Decorator: ``fn(agent_id, execution_id, reason)`` after an execution suspends (a SuspendReason)."""
        self._register("suspend", fn)
        return fn

    def on_fail(self, fn: OnFail) -> OnFail:
        """Decorator: ``fn(agent_id, execution_id, error)`` after a run raised (:meth:`wait` raises it too)."""
        self._register("fail", fn)
        return fn

    def on_cancel(self, fn: OnCancel) -> OnCancel:
        """Decorator: ``fn(agent_id, execution_id, response)`` after an execution is cancelled."""
        self._register("cancel", fn)
        return fn

    def _register(self, kind: str, fn: Callable[..., Any]) -> None:
        with self._lock:
            self._callbacks[kind].append(fn)
            missed = list(self._unheard[kind])
            self._unheard[kind].clear()
            queued = bool(missed) and self._notifier_ready()
        for args in missed:  # on the callback thread, in order, after whatever it is delivering now
            if queued:
                self._notices.put((functools.partial(self._call_one, fn, args), None, None))
            else:  # shut down: no callback thread any more
                self._call_one(fn, args)

    def _deliver(self, notify: Callable[[], None], run: _Run | None = None, outcome: Any = None) -> None:
        """Run ``notify`` (callbacks) on the callback thread, after what it is delivering now; here once it stopped.

        With ``run``, its future gets ``outcome`` once ``notify`` has run (so :meth:`wait` returns after them).
        """
        with self._lock:
            queued = self._notifier_ready()
        if queued:
            self._notices.put((notify, run, outcome))
            return
        try:
            notify()
        finally:
            if run is not None:
                _settle(run, outcome)

    def _notifier_ready(self) -> bool:
        """Start the callback thread if it is not running yet (the lock held); False once it has been stopped.

        It is started by the first callback it has to run, not with the runtime: a runtime whose runs end with no
        callback listening never starts it (a thread start is a few tenths of a millisecond of ``start()``).
        """
        if self._loop is None or self._notices_closed:
            return False
        if self._notifier is None:
            self._notifier = threading.Thread(target=self._notify_loop, name="delite-rt-callbacks", daemon=True)
            self._notifier.start()
        return True

    # -- lifecycle -------------------------------------------------------------------------------------------

    def start(self) -> Self:
        """Start the event loop and its threads, then resume the agents' executions left running (idempotent)."""
        with self._lock:
            if self._closing:
                raise UsageError("the runtime is shut down")
            if self._loop is not None:
                return self
            loop = asyncio.new_event_loop()
            self._pool = Threads("delite-rt-work", self.workers)
            self._thread = threading.Thread(target=loop.run_forever, name="delite-runtime", daemon=True)
            self._loop = loop
            self._pid = os.getpid()
            _started.add(self)
            self._thread.start()
            agents = list(self._agents)
            if self.recover and any(uses_workers(a.provider, a.tools) for a in self._agents.values()):
                # A worker for the first sync call of a resumed run, started by the loop's thread while this one
                # lists what to resume.
                loop.call_soon_threadsafe(self._pool.prestart)
        if self.recover and agents:
            self._recover(agents)
        return self

    def shutdown(self, *, wait: bool = True, timeout: float | None = None) -> None:
        """Stop taking work; let each running execution reach a durable step boundary and let go of it.

        New :meth:`go` and signals raise :class:`~delite.errors.UsageError`. A run stops before its next model
        call or tool batch (a tool or model call in flight finishes and is recorded first), writes what it has
        buffered and releases its claim; its execution stays ``running`` and a runtime started later resumes
        it. With ``wait`` (the default) this returns once every run has stopped and every callback has run
        (or ``timeout`` seconds passed); otherwise at once, the runs stopping in the background.

        Raises:
            UsageError: with ``wait``, called from inside one of this runtime's runs (a tool's body, a provider):
                it would wait for the very run it is called from. Nothing is stopped; ``shutdown(wait=False)``
                from there stops the runtime once that run reaches its step boundary.
        """
        if wait and self._inside():
            raise UsageError(
                "shutdown() or close() was called from inside one of this runtime's runs (a tool or a provider), "
                "and would wait for that very run; nothing was stopped. Call shutdown(wait=False) there, or "
                "close the runtime from the thread that owns it"
            )
        with self._lock:
            self._closing = True
            self._stopping = True
            loop = self._loop
        if self._working:
            self.stop_working()  # a work() loop in another thread takes nothing new and returns
        if loop is None or not wait:
            return
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._lock:
            while self._active:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return
                self._lock.wait(left)
        with self._lock:
            self._notices_closed = True
            notifier = self._notifier
        if notifier is not None:
            self._notices.put(None)
            if notifier is not threading.current_thread():
                notifier.join()
        if self._thread is not None and self._thread is not threading.current_thread():
            # Like asyncio.run: async generators still open are closed on the loop (the providers' async clients
            # close their connections that way), before it stops.
            with contextlib.suppress(Exception):
                asyncio.run_coroutine_threadsafe(loop.shutdown_asyncgens(), loop).result()
        loop.call_soon_threadsafe(loop.stop)
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join()
            loop.close()
        if self._pool is not None:
            self._pool.close()

    def _inside(self) -> bool:
        """Whether this thread is advancing one of this runtime's runs: its loop's thread, or one of its workers."""
        here = threading.current_thread()
        pool = self._pool
        return here is self._thread or (pool is not None and here in pool.threads)

    def close(self) -> None:
        """Shut down (waiting for runs to reach a step boundary), then close the store if the runtime opened it.

        A store handed in (``store=``) stays open: its owner closes it (:attr:`owns_store`). Agents that
        borrow the runtime's store do not close it; this does, once their runs here have stopped.

        Raises:
            UsageError: called from inside one of this runtime's runs (see :meth:`shutdown`).
        """
        self.shutdown()
        if self.owns_store:
            self.store.close()

    def __enter__(self) -> Self:
        """``with Runtime(...) as rt:`` closes it (see :meth:`close`) at the end of the block."""
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        """Close: shut down, waiting for runs to reach a step boundary, and close a store the runtime opened."""
        self.close()

    # -- starting and answering ------------------------------------------------------------------------------

    def go(self, agent: Agent, text: str, **options: Unpack[RunOptions]) -> str:
        """Start an execution of ``agent``, durably, and return its id; it advances in the background.

        ``options`` are those of :meth:`Agent.run <delite.Agent.run>` (``execution_id``, ``history``,
        ``metadata``, ``model``, ``idempotency_key``, ``output_type``). With an ``execution_id`` that exists,
        the execution is continued. :meth:`wait` returns its response.

        **Durable on return.** A new execution's first record (``ExecutionStarted``) is written, with the
        store's durability mode, in the calling thread before the id is returned; the model is called in the
        background. So an id handed out (say, in a ``202`` answer) always names an execution that exists: a
        crash right after ``go()`` loses nothing, and the next Runtime on the same data directory resumes it.
        A mistake in the arguments raises here, before anything is written. An execution that already exists
        (or that this runtime is still advancing) is continued in the background as before.
        """
        from delite.engine._agent import Agent  # noqa: PLC0415 - the agent module imports this one

        if not isinstance(agent, Agent):
            raise UsageError(f"go() needs an Agent, not {type(agent).__name__}")
        run_kwargs: dict[str, Any] = dict(options)
        unknown = sorted(set(run_kwargs) - RUN_OPTIONS)
        if unknown:  # as a Python signature would say it (Agent.run raises the same), before anything is done
            raise TypeError(f"Runtime.go() got an unexpected keyword argument {unknown[0]!r}")
        check_run_args(
            text,
            history=run_kwargs.get("history"),
            metadata=run_kwargs.get("metadata"),
            model=run_kwargs.get("model"),
            idempotency_key=run_kwargs.get("idempotency_key"),
        )
        fresh = new_execution_id()  # the new execution's id, unless an execution_id or a bound key names one
        probe = ExecutionStarted(
            execution_id=fresh,
            input=text,
            history=list(run_kwargs.get("history") or []),
            metadata=dict(run_kwargs.get("metadata") or {}),
            config=agent.fingerprint(),
        )
        check_storable([probe], "the run's input (text, history and metadata)")  # before a key is bound
        if self._agents.get(agent.agent_id) is not agent:
            self.join(agent)
        eid = run_kwargs.pop("execution_id", None)
        key = run_kwargs.get("idempotency_key")
        if eid is not None:
            eid = validate_execution_id(eid)
        elif key is not None:  # the key may already name an execution: that is the id to return
            op = agent._bind_key_op(key, fresh, text, run_kwargs.get("history"), explicit=False)  # noqa: SLF001
            eid = drive(op)
        else:
            eid = fresh
        self.start()
        started = self._begin(eid, agent, text, run_kwargs, fresh=eid == fresh)
        if started is None:
            return self._launch(eid, agent, lambda: agent.arun(text, execution_id=eid, **run_kwargs))
        try:
            return self._launch(eid, agent, lambda: adrive(started.rest()))
        except BaseException:
            started.abandon()  # written and unclaimed: the next runtime resumes it
            raise

    def _begin(self, eid: str, agent: Agent, text: str, run_kwargs: dict[str, Any], *, fresh: bool) -> Begun | None:
        """Start a new execution in this thread, through its first durable record; None to start it later.

        Later (in the background, as before) when the execution already exists or this runtime ran it, or
        when another owner holds it (the background run then reports that, as it always did). A ``fresh`` id,
        made by this call, names no execution yet: the store is not asked (the claim would find one anyway).
        """
        with self._lock:
            previous = self._runs.get(eid)
        if previous is not None or (not fresh and agent.store.exists(eid)):
            return None
        op = agent._start(text, **(run_kwargs | {"execution_id": eid}))  # noqa: SLF001 - the runtime hosts the run
        try:
            return begin(op)
        except ExecutionAlreadyClaimedError as e:
            if e.execution_id != eid:
                raise
            return None

    def resume(self, execution_id: str) -> str:
        """Continue an execution in the background (after a failure, say); returns its id."""
        root, agent = self._root(execution_id)
        return self._launch(root, agent, lambda: agent.aresume(root))

    def _continue(self, execution_id: str) -> None:
        """Resume, in the background, an execution whose answer this process has just recorded.

        Another process that submitted an answer for the same call holds the claim for a moment while it
        finds the call answered (and raises): the resume waits that moment out rather than give up on an
        execution it owes a continuation. A claim held for longer (a process advancing it) ends the attempt
        as :meth:`resume` does.
        """
        root, agent = self._root(execution_id)

        async def make() -> Response:
            loop = asyncio.get_running_loop()
            deadline = loop.time() + _CLAIM_PATIENCE
            while True:
                try:
                    return await agent.aresume(root)
                except ExecutionAlreadyClaimedError as e:
                    if e.execution_id != root or loop.time() >= deadline:
                        raise
                await asyncio.sleep(0.005)

        self._launch(root, agent, make)

    def signal(self, execution_id: str, confirmation_id: str, approved: bool, *, reason: str | None = None) -> None:
        """Record a decision on a pending call and resume the execution in the background.

        The decision is recorded before this returns (a refused one raises, as ``agent.decide`` does:
        :class:`~delite.errors.InvalidToolResultError`, :class:`~delite.errors.AlreadyDecidedError`, ...).
        ``execution_id`` may be the execution that lists the call, or a sub-agent's: either way the top
        execution is resumed, and continues the sub-agent.
        """
        check_text("confirmation_id", confirmation_id)
        _, agent = self._root(execution_id)
        agent.decide(execution_id, {confirmation_id: approved}, reasons={confirmation_id: reason}, advance=False)
        self._continue(execution_id)

    def submit_tool_results(self, execution_id: str, results: Mapping[str, Any]) -> None:
        """Record client tool results (as ``agent.submit_tool_results``) and resume in the background."""
        _, agent = self._root(execution_id)
        agent.submit_tool_results(execution_id, results, advance=False)
        self._continue(execution_id)

    def submit_input(self, execution_id: str, text: str) -> None:
        """Record a human's answer (as ``agent.submit_input``) and resume in the background."""
        _, agent = self._root(execution_id)
        agent.submit_input(execution_id, text, advance=False)
        self._continue(execution_id)

    def resolve(
        self, execution_id: str, call_id: str, *, result: Any = None, error: str | None = None, rerun: bool = False
    ) -> None:
        """Settle an in-doubt call (as ``agent.resolve``) and resume in the background."""
        _, agent = self._root(execution_id)
        agent.resolve(execution_id, call_id, result=result, error=error, rerun=rerun, advance=False)
        self._continue(execution_id)

    def cancel(self, execution_id: str, *, reason: str = "cancelled") -> AnyResponse:
        """Cancel an execution (see ``agent.cancel``): a running one stops at its next step boundary."""
        _, agent = self._root(execution_id)
        response = agent.cancel(execution_id, reason=reason)
        if response.status is Status.CANCELLED:
            self._emit(agent.agent_id, execution_id, response, None)
        return response

    # -- working ---------------------------------------------------------------------------------------------

    def work(
        self,
        *agents: Agent,
        concurrency: int = 4,
        poll: float = 1.0,
        on_event: Callable[[WorkEvent], object] | None = None,
    ) -> WorkReport:
        """Be a worker: keep taking on the runnable executions of these agents until :meth:`stop_working`.

        Blocks. The executions a worker takes on are those the store lists as runnable
        (:meth:`~delite.store.ExecutionIndex.runnable`) for the agents' ids: new ones made durable by
        :meth:`Agent.enqueue <delite.Agent.enqueue>`, ones a dead process left ``running``, and suspended ones
        whose every pending call got its answer (an approval, input, client result or resolution recorded by
        any process, ``delite approve`` included). Never a fork nobody resumed, a suspension still waiting, a
        budget suspension or a sub-agent's execution on its own (its parent continues it). Up to
        ``concurrency`` advance at once, each under its claim: a claim another worker won is skipped
        silently, so many workers (processes, or hosts on a shared store) can serve the same agents. A run
        that suspends lets go of its execution; it is runnable again once its answers are recorded.

        Between polls of the store it waits up to ``poll`` seconds (:meth:`~delite.store.Store.wait_for_work`:
        a store that hears of news returns early) or until one of its runs ends. The runtime's callbacks
        (``on_complete``...) hear about its runs; ``on_event`` (called in the runtime's threads) and the logger
        ``delite.worker`` get a :class:`~delite.runtime.WorkEvent` for each execution taken and its outcome.

        Args:
            agents: the agents to serve (each joins this runtime); none: every agent that joined it.
            concurrency: how many executions may advance at once.
            poll: seconds between looks at the store when nothing wakes the worker earlier.
            on_event: called with each :class:`~delite.runtime.WorkEvent`.

        Returns:
            a :class:`~delite.runtime.WorkReport` once :meth:`stop_working` was called and every run in flight
            stopped at a step boundary (its claim released).
        """
        from delite.engine._agent import Agent  # noqa: PLC0415 - the agent module imports this one
        from delite.runtime._worker import work  # noqa: PLC0415

        for agent in agents:
            if not isinstance(agent, Agent):
                raise UsageError(f"work() serves Agents, not {type(agent).__name__}")
        if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
            raise UsageError(f"concurrency must be a whole number, 1 or more; not {concurrency!r:.80}")
        if isinstance(poll, bool) or not isinstance(poll, int | float) or not 0 < poll <= 3600:
            raise UsageError(f"poll must be a number of seconds above 0 (at most 3600); not {poll!r:.80}")
        if on_event is not None and not callable(on_event):
            raise UsageError("on_event must be a callable taking a WorkEvent")
        for agent in agents:
            if self._agents.get(agent.agent_id) is not agent:
                self.join(agent)
        served = {a.agent_id: a for a in agents} if agents else dict(self._agents)
        if not served:
            raise UsageError("work() needs an agent to serve: pass one, or build agents with runtime=rt first")
        with self._lock:
            if self._working:
                raise UsageError("this runtime is already working (one work() at a time)")
            self._working = True
        try:
            self.start()
            return work(self, served, concurrency=concurrency, poll=float(poll), on_event=on_event)
        finally:
            with self._lock:
                self._working = False
                self._draining = False
                self._stop_working.clear()

    def stop_working(self) -> None:
        """Ask :meth:`work` to drain and return: take nothing new, stop each run at its next step boundary.

        Safe from a signal handler or any thread; returns at once (:meth:`work` returns once the runs in flight
        have stopped: the model or tool call each was making finishes and is recorded, its buffered records
        are written, its claim released; an execution stopped that way stays ``running`` for any worker). A
        call before :meth:`work` starts makes it return at once.
        """
        self._draining = self._working
        self._stop_working.set()
        self._work_wake.set()

    # -- waiting ---------------------------------------------------------------------------------------------

    def future(self, execution_id: str) -> concurrent.futures.Future[Response]:
        """The future of the latest run of the execution in this runtime (``await asyncio.wrap_future(...)``).

        Raises:
            LookupError: this runtime has not run the execution.
        """
        with self._lock:
            run = self._runs.get(execution_id)
        if run is None:
            raise LookupError(f"execution {execution_id!r} was not run by this runtime")
        return run.future

    def wait(self, execution_id: str, timeout: float | None = None) -> AnyResponse:
        """Wait until the execution stops advancing (completed, suspended, failed, cancelled); its response.

        Raises what the run raised. An execution this runtime is not running is read from the data directory
        (waiting, by polling, while another process advances it). One that a dead process left running, of an
        agent that joined this runtime, is resumed: waiting on it starts the runtime (which recovers it).

        Raises:
            TimeoutError: it did not stop within ``timeout`` seconds.
            UsageError: called by a tool of this execution, run by this runtime: it would wait for itself.
        """
        if self._inside() and execution_id == getattr(_current_call.get(), "execution_id", None):
            raise UsageError(f"execution {execution_id!r} was waited for by its own tool: it would wait for itself")
        if timeout is not None and (
            isinstance(timeout, bool) or not isinstance(timeout, int | float) or not timeout >= 0
        ):
            raise UsageError(f"timeout must be a number of seconds of 0 or more, or None; not {timeout!r:.80}")
        with self._lock:
            run = self._runs.get(execution_id)
        if run is not None:
            return settled(run.future.result(timeout))
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            state = self._read(execution_id)
            if state.status is not Status.RUNNING or not self.store.is_claimed(execution_id):
                with self._lock:
                    run = self._runs.get(execution_id)
                if run is not None:  # recovery picked it up meanwhile
                    return settled(run.future.result(None if deadline is None else max(deadline - time.monotonic(), 0)))
                if self._left_running_for_us(state):  # a dead process's run: start, which resumes it, then wait
                    self.start()
                    continue
                return Response.from_state(state)
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError(f"execution {execution_id!r} is still running")
            time.sleep(0.05)

    def _left_running_for_us(self, state: ExecutionState) -> bool:
        """A dead process left this execution running, and starting this runtime would resume it."""
        return (
            state.status is Status.RUNNING
            and self._loop is None
            and self.recover
            and not self._closing
            and state.parent_id is None
            and state.agent_id in self._agents
        )

    @property
    def running(self) -> int:
        """How many executions this runtime is advancing right now."""
        return self._active

    # -- internals -------------------------------------------------------------------------------------------

    def _read(self, execution_id: str) -> ExecutionState:
        return self.store.state(validate_execution_id(execution_id))

    def _root(self, execution_id: str) -> tuple[str, Agent]:
        """The top execution above ``execution_id`` (itself, unless it is a sub-agent's) and its agent."""
        eid = validate_execution_id(execution_id)
        state = self._read(eid)
        seen = {eid}
        while state.parent_id is not None and state.parent_id not in seen and self.store.exists(state.parent_id):
            eid = state.parent_id
            seen.add(eid)
            state = self._read(eid)
        agent = self._agents.get(state.agent_id)
        if agent is None:
            raise UsageError(f"no agent {state.agent_id!r} joined this runtime (execution {eid!r})")
        return eid, agent

    def _launch(self, execution_id: str, agent: Agent, make: Callable[[], Coroutine[Any, Any, Response]]) -> str:
        self.start()
        assert self._loop is not None
        with self._lock:
            if self._closing:
                raise UsageError("the runtime is shut down")
            previous = self._runs.get(execution_id)
            run = self._runs[execution_id] = _Run(execution_id, agent.agent_id)
            self._active += 1
            # A run of the same execution still under way here (it may be just letting go): this one follows it.
            after = previous.task if previous is not None else None
            caller = caller_context()  # a web request's span, say: the parent of what the run does in the loop
            local = isinstance(agent.store, FileStore | MemoryStore)
            run.task = asyncio.run_coroutine_threadsafe(self._drive(run, make, after, caller, local), self._loop)
        return execution_id

    async def _drive(
        self,
        run: _Run,
        make: Callable[[], Coroutine[Any, Any, Response]],
        after: concurrent.futures.Future[None] | None,
        caller: object | None = None,
        local: bool = False,
    ) -> None:
        STOP_REQUESTED.set(self._stop_requested)
        worker_pool.set(self._pool)
        if local:  # files or memory: a store call takes about what a hop to an I/O thread and back does
            store_inline.set(self._alone)
        try:
            if after is not None and not after.done():
                await asyncio.wait({asyncio.wrap_future(after)})
            with within(caller):
                response = await make()
        except BaseException as e:  # noqa: BLE001 - handed to wait() and on_fail
            self._finish(run, None, e)
        else:
            self._finish(run, response, None)
        finally:
            with self._lock:
                self._active -= 1
                self._lock.notify_all()

    def _alone(self) -> bool:
        """Whether one run only is in flight here (its store calls, if local, are then made on the loop)."""
        return self._active == 1

    def _stop_requested(self) -> bool:
        return self._stopping

    def _drain_requested(self) -> bool:
        return self._stopping or self._draining

    def _finish(self, run: _Run, response: Response | None, error: BaseException | None) -> None:
        """A run ended: its callbacks run on the callback thread, then :meth:`wait` gets its outcome.

        With no callback for its event, the outcome is handed over at once, from the loop (the event is kept for
        a callback registered later, as :meth:`_call` keeps it): no wake-up of the callback thread, which then
        has nothing to run, between the run's end and :meth:`wait` returning.
        """
        outcome = error if error is not None else response
        event = self._event(run.agent_id, run.execution_id, response, error)
        if event is not None and self._listeners(*event):
            kind, args = event
            self._deliver(lambda: self._call(kind, *args), run, outcome)
        else:
            _settle(run, outcome)

    @staticmethod
    def _event(
        agent_id: str, execution_id: str, response: Response | None, error: BaseException | None
    ) -> tuple[str, tuple[Any, ...]] | None:
        """The callbacks' event for a run's end (their kind and arguments), or None when there is none."""
        if error is not None:
            if isinstance(error, ExecutionAlreadyClaimedError) and error.execution_id == execution_id:
                return None  # another process advances it: not a failure of the execution
            return "fail", (agent_id, execution_id, error)
        assert response is not None
        status = response.status
        if status is Status.COMPLETED:
            return "complete", (agent_id, execution_id, response)
        if status.is_suspended and response.suspend_reason is not None:
            return "suspend", (agent_id, execution_id, response.suspend_reason)
        if status is Status.CANCELLED:
            return "cancel", (agent_id, execution_id, response)
        if status is Status.FAILED:
            return "fail", (agent_id, execution_id, DeliteError(response.error or "failed"))
        return None

    def _emit(self, agent_id: str, execution_id: str, response: Response | None, error: BaseException | None) -> None:
        event = self._event(agent_id, execution_id, response, error)
        if event is not None:
            self._call(event[0], *event[1])

    def _listeners(self, kind: str, args: tuple[Any, ...]) -> list[Callable[..., Any]]:
        """The callbacks of ``kind`` now; none: the event is kept for the first one registered later."""
        with self._lock:
            fns = list(self._callbacks[kind])
            if not fns:
                self._unheard[kind].append(args)
        return fns

    def _call(self, kind: str, *args: Any) -> None:
        for fn in self._listeners(kind, args):
            self._call_one(fn, args)

    def _call_one(self, fn: Callable[..., Any], args: tuple[Any, ...]) -> None:
        try:
            result = fn(*args)
            if asyncio.iscoroutine(result) and self._loop is not None:
                asyncio.run_coroutine_threadsafe(result, self._loop).result()
        except Exception:
            log.exception("runtime callback %s for execution %s raised", getattr(fn, "__name__", fn), args[1])

    def _notify_loop(self) -> None:
        while True:
            item = self._notices.get()
            if item is None:
                return
            notify, run, outcome = item
            try:
                notify()
            finally:
                if run is not None:
                    _settle(run, outcome)

    def _exit_notice(self) -> str | None:
        """The line to print at interpreter exit when runs are still in flight here (None: nothing to say)."""
        with self._lock:
            active = self._active
        if not active or self._loop is None or self._pid != os.getpid():
            return None
        many = active > 1
        runs = f"{active} execution{'s' if many else ''}"
        if isinstance(self.store, MemoryStore):
            fate = f"{'they are' if many else 'it is'} lost with this process (the store is in memory)"
        else:
            files = isinstance(self.store, FileStore)
            where = self.store.layout.root if isinstance(self.store, FileStore) else self.store
            what = "data directory" if files else "store"
            fate = (
                f"{'they stay' if many else 'it stays'} 'running' in {where} and the next Runtime "
                f"on that {what} resumes {'them' if many else 'it'} (rt.wait(id) or rt.shutdown() before "
                "exit lets runs finish or stop at a step boundary)"
            )
        return f"delite: the process exits with {runs} in flight in a Runtime; {fate}"

    def _recover(self, agent_ids: list[str]) -> None:
        """Resume the executions of these agents that a dead process left running (asked of the store's index)."""
        store = self.store
        wanted = {a for a in agent_ids if a not in self._recovering}
        if not wanted:
            return
        self._recovering |= wanted
        # Top-level executions left running with no live owner; forks nobody resumed are left out (no process was
        # advancing them, so none died doing so). Sub-agents are resumed through their parents.
        for summary in store.recoverable():
            if summary.agent_id not in wanted or summary.parent_id is not None:
                continue
            eid = summary.id
            agent = self._agents[summary.agent_id]
            self.recovered.append(eid)

            def make(agent: Agent = agent, eid: str = eid) -> Coroutine[Any, Any, Response]:
                return agent.aresume(eid)

            self._launch(eid, agent, make)


_started: weakref.WeakSet[Runtime] = weakref.WeakSet()


@atexit.register
def _warn_in_flight() -> None:
    """At interpreter exit, say which runtimes still had runs in flight (their daemon threads die now)."""
    for rt in list(_started):
        notice = rt._exit_notice()  # noqa: SLF001
        if notice is not None:
            print(notice, file=sys.stderr, flush=True)
