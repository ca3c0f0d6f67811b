"""The worker loop of a :class:`~delite.Runtime`: keep taking on the runnable executions of the agents it serves.

``rt.work(agent, ...)`` (and ``delite worker``) asks the store which executions a worker may take on now
(:meth:`~delite.store.ExecutionIndex.runnable`: newly enqueued, left by a dead owner, or suspended with every
answer recorded), skips those in flight here, and advances up to ``concurrency`` of them at once on the
runtime's event loop. Each one is claimed first; a claim lost to another worker is normal and skipped
silently. Between polls it waits on :meth:`~delite.store.Store.wait_for_work` (a store that hears of news,
PostgreSQL's ``LISTEN``, wakes it early) or on one of its own runs letting go of an execution.

Stopping (:meth:`Runtime.stop_working <delite.Runtime.stop_working>`, from a signal handler say) drains: nothing
new is taken, each run in flight stops at its next step boundary (the model or tool call in flight finishes
and is recorded first), its buffered records are written and its claim released, and :meth:`Runtime.work`
returns a :class:`WorkReport` of what it did.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from delite.engine._effects import STOP_REQUESTED
from delite.errors import (
    ClaimLostError,
    ExecutionAlreadyClaimedError,
    LogCorruptError,
    LogIdentityError,
    RecordTooLargeError,
    SchemaTooNewError,
    StoreError,
    UnsupportedFormatError,
    UnsupportedPoolerError,
)
from delite.state._model import ExecutionState, Status
from delite.state._ready import advanceable
from delite.store._base import ExecutionLog, Store
from delite.store._keys import refuse_sealed

if TYPE_CHECKING:
    from delite.engine._agent import Agent
    from delite.runtime._runtime import Runtime

__all__ = ["WorkEvent", "WorkReport", "work"]

log = logging.getLogger("delite.worker")

_OUTCOMES = {
    Status.COMPLETED: "completed",
    Status.FAILED: "failed",
    Status.CANCELLED: "cancelled",
    Status.RUNNING: "left",
}


@dataclass(frozen=True)
class WorkEvent:
    """What a worker did with one execution, as :meth:`Runtime.work <delite.Runtime.work>` reports it.

    ``event`` is ``taken`` (claimed, about to advance), then one of ``completed``, ``suspended`` (it waits for
    an answer: the worker let go of it), ``failed`` (recorded as failed), ``cancelled``, ``left`` (stopped at a
    step boundary by a drain, still ``running``, for any worker to continue), ``error`` (advancing it raised
    without recording an end: a lost claim or a store failure, such as a database restart, is tried again
    after ``poll`` seconds; anything else, e.g. a drift refused, is skipped until the execution's log changes) or
    ``skipped`` (claimed, but no longer work: another worker had just finished it). ``status`` is the
    execution's status after the event, ``error`` the message of a failure.
    """

    event: str
    execution_id: str
    agent_id: str
    status: str | None = None
    error: str | None = None
    at: float = field(default_factory=time.time)


@dataclass
class WorkReport:
    """What :meth:`Runtime.work <delite.Runtime.work>` did, once it returned: counts of its :class:`WorkEvent`.

    ``left`` counts executions a drain stopped at a step boundary (``running``, their claims released, for
    another worker to continue); ``drained`` is True when the loop ended because it was asked to stop.
    """

    taken: int = 0
    completed: int = 0
    suspended: int = 0
    failed: int = 0
    cancelled: int = 0
    left: int = 0
    errors: int = 0
    skipped: int = 0
    drained: bool = False

    @property
    def clean(self) -> bool:
        """Nothing was left for others: every execution taken reached an end, a suspension or an error."""
        return self.left == 0

    def count(self, event: str) -> None:
        """Count one event."""
        if event in ("taken", "completed", "suspended", "failed", "cancelled", "left", "skipped"):
            setattr(self, event, getattr(self, event) + 1)
        elif event == "error":
            self.errors += 1


OnEvent = Callable[[WorkEvent], object]

_LASTING = (
    LogCorruptError,
    LogIdentityError,
    UnsupportedFormatError,
    RecordTooLargeError,
    UnsupportedPoolerError,
    SchemaTooNewError,
)
"""Store errors that trying again would not cure: the execution is skipped until its log changes."""

_LISTEN_SLICE = 0.5
"""Seconds per wait of the listener thread: a store keeps listening between waits (nothing is missed), and a
stopping worker never waits longer than this for its listener."""


class _Loop:
    """One call of :meth:`Runtime.work`: its agents, its runs in flight, its wake-ups."""

    def __init__(
        self, rt: Runtime, agents: dict[str, Agent], *, concurrency: int, poll: float, on_event: OnEvent | None
    ) -> None:
        self.rt = rt
        self.store: Store = rt.store
        self.agents = agents
        self.concurrency = concurrency
        self.poll = poll
        self.on_event = on_event
        self.report = WorkReport()
        self.wake = rt._work_wake  # noqa: SLF001 - set by stop_working() too
        self.in_flight: dict[str, concurrent.futures.Future[None]] = {}
        self.given_up: dict[str, int] = {}  # execution id -> its records when advancing it raised
        self.cooling: dict[str, float] = {}  # execution id -> when to try again after a lost claim or store error
        self.lock = threading.Lock()

    # -- events ----------------------------------------------------------------------------------------------

    def emit(self, event: WorkEvent) -> None:
        with self.lock:
            self.report.count(event.event)
        if event.event == "skipped":
            log.debug("execution %s (agent %s) was no longer work", event.execution_id, event.agent_id)
        elif event.event == "error":
            log.warning("execution %s (agent %s): %s", event.execution_id, event.agent_id, event.error)
        else:
            log.info("execution %s (agent %s) %s", event.execution_id, event.agent_id, event.event)
        if self.on_event is not None:
            try:
                self.on_event(event)
            except Exception:
                log.exception("the worker's on_event callback raised for execution %s", event.execution_id)

    # -- the loop --------------------------------------------------------------------------------------------

    def run(self) -> WorkReport:
        rt = self.rt
        waiter = None
        if type(self.store).wait_for_work is not Store.wait_for_work:  # the store hears of news: listen for it
            waiter = threading.Thread(target=self._listen, name="delite-worker-listen", daemon=True)
            waiter.start()
        try:
            while not rt._stop_working.is_set():  # noqa: SLF001 - the runtime's own worker loop
                self._take_more()
                self.wake.wait(self.poll)
                self.wake.clear()
        finally:
            self.report.drained = rt._stop_working.is_set()  # noqa: SLF001
            rt._draining = True  # noqa: SLF001 - runs in flight stop at their next step boundary
            for future in list(self.in_flight.values()):
                concurrent.futures.wait([future])
            if waiter is not None:
                rt._stop_working.set()  # noqa: SLF001 - the listener ends at its next slice
                waiter.join(_LISTEN_SLICE + 5)
        return self.report

    def _listen(self) -> None:
        stop = self.rt._stop_working  # noqa: SLF001
        while not stop.is_set():
            try:
                news = self.store.wait_for_work(min(self.poll, _LISTEN_SLICE))
            except Exception:
                log.exception("waiting for work failed; polling every %s s", self.poll)
                stop.wait(self.poll)
                continue
            if news:
                self.wake.set()

    def _take_more(self) -> None:
        free = self.concurrency - len(self.in_flight)
        if free <= 0:
            return
        try:
            skipped = len(self.in_flight) + len(self.given_up) + len(self.cooling)  # listed, but not taken now
            found = self.store.runnable(agent=list(self.agents), limit=free + skipped)
        except Exception:
            log.exception("finding work failed; trying again in %s s", self.poll)
            return
        for summary in found:
            if free <= 0 or self.rt._stop_working.is_set():  # noqa: SLF001
                break
            eid = summary.id
            if eid in self.in_flight:
                continue
            if self.given_up.get(eid) == summary.records:
                continue  # advancing it raised, and nothing was written to it since
            self.given_up.pop(eid, None)
            if self.cooling.get(eid, 0.0) > time.monotonic():
                continue
            self.cooling.pop(eid, None)
            agent = self.agents.get(summary.agent_id)
            if agent is None:
                continue
            self._launch(eid, agent)
            free -= 1

    def _launch(self, eid: str, agent: Agent) -> None:
        rt = self.rt
        loop = rt._loop  # noqa: SLF001
        assert loop is not None
        with rt._lock:  # noqa: SLF001
            rt._active += 1  # noqa: SLF001 - shutdown() waits for it as for any run
        future = asyncio.run_coroutine_threadsafe(self._take(eid, agent), loop)
        self.in_flight[eid] = future

        def done(_: concurrent.futures.Future[None], eid: str = eid) -> None:
            self.in_flight.pop(eid, None)
            with rt._lock:  # noqa: SLF001
                rt._active -= 1  # noqa: SLF001
                rt._lock.notify_all()  # noqa: SLF001
            self.wake.set()  # a slot is free: look for more work now

        future.add_done_callback(done)

    async def _take(self, eid: str, agent: Agent) -> None:
        from delite.engine._aio import adrive, worker_pool  # noqa: PLC0415

        rt = self.rt
        STOP_REQUESTED.set(rt._drain_requested)  # noqa: SLF001
        worker_pool.set(rt._pool)  # noqa: SLF001
        aid = agent.agent_id
        try:
            claimed = await asyncio.to_thread(self._claim, eid)
        except ExecutionAlreadyClaimedError as e:
            if e.execution_id != eid:
                self._failed(eid, aid, e)
            return  # another worker won it: normal
        except Exception as e:  # noqa: BLE001 - reported, and the execution skipped until it changes
            self._failed(eid, aid, e)
            return
        if claimed is None:
            self.emit(WorkEvent("skipped", eid, aid))
            return
        held, state = claimed
        self.emit(WorkEvent("taken", eid, aid))
        try:
            response = await adrive(agent._take(held, state))  # noqa: SLF001 - the runtime hosts the run
        except Exception as e:  # noqa: BLE001
            self._failed(eid, aid, e)
            return
        finally:
            await asyncio.to_thread(held.release)  # a store may release over the network
        status = response.status
        event = "suspended" if status.is_suspended else _OUTCOMES.get(status, status.value)
        self.emit(WorkEvent(event, eid, aid, status=status.value, error=response.error))
        rt._deliver(lambda: rt._emit(aid, eid, response, None))  # noqa: SLF001 - the callbacks

    def _claim(self, eid: str) -> tuple[ExecutionLog, ExecutionState] | None:
        """Claim ``eid`` and read it; None (released) when it is no longer work (finished or waiting by now)."""
        held = self.store.claim(eid)
        try:
            done = held.outcome
            if done is not None and done.status.is_terminal:
                held.release()
                return None
            refuse_sealed(eid, held.first_record())
            state = held.state()
            if state.parent_id is not None or not advanceable(state):
                held.release()
                return None
        except BaseException:
            held.release()
            raise
        return held, state

    def _failed(self, eid: str, agent_id: str, error: BaseException) -> None:
        """Advancing ``eid`` raised: report it; skip the execution until its log changes, or for a while.

        A lost claim or a store that failed (a connection dropped, a database restarting) is no fault of the
        execution: it is tried again after ``poll`` seconds. Anything else (a drift refused, a damaged log)
        would raise again: it is skipped until its log changes. A run that recorded its failure is reported
        as ``failed``.
        """
        if isinstance(error, ClaimLostError) or (isinstance(error, StoreError) and not isinstance(error, _LASTING)):
            self.cooling[eid] = time.monotonic() + self.poll
            log.warning("execution %s: %s: %s; trying again later", eid, type(error).__name__, error)
            self.emit(WorkEvent("error", eid, agent_id, error=f"{type(error).__name__}: {error}"))
            return
        try:
            records = self.store.head(eid)
            failed = self.store.state(eid).status is Status.FAILED
        except Exception:  # noqa: BLE001 - unreadable: skip it until its listing changes
            records = -1
            failed = False
        self.given_up[eid] = records
        message = f"{type(error).__name__}: {error}"
        if failed:
            self.emit(WorkEvent("failed", eid, agent_id, status=Status.FAILED.value, error=message))
        else:
            self.emit(WorkEvent("error", eid, agent_id, error=message))
        rt = self.rt
        rt._deliver(lambda: rt._emit(agent_id, eid, None, error))  # noqa: SLF001


def work(
    rt: Runtime, agents: dict[str, Agent], *, concurrency: int, poll: float, on_event: OnEvent | None
) -> WorkReport:
    """Run the worker loop of ``rt`` for ``agents`` until :meth:`Runtime.stop_working` (see the module)."""
    return _Loop(rt, agents, concurrency=concurrency, poll=poll, on_event=on_event).run()
