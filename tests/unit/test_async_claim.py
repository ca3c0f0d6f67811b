"""The async API keeps the one-owner guarantee: no claim is released while a tool body it started runs.

A cancelled ``arun``/``aresume`` (a timeout, a client that disconnects), or a parallel batch stopped by a
crash in one body, waits for every sync body it started in a thread before it lets go of the execution;
a concurrent resume meanwhile gets the 409, and the call's body never runs twice at the same time.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import random
import threading
from pathlib import Path
from typing import Any

import pytest

from delite import Agent, ScriptedProvider, current_idempotency_key, tool
from delite.engine._aio import worker_pool
from delite.errors import ExecutionAlreadyClaimedError
from delite.log.records import ToolFinished, ToolStarted
from delite.store import FileStore

WAIT = 30


class Crash(BaseException):
    """Not an ``Exception``: a tool raising it is not an outcome but a crash of the run, as the sync API has it."""


class Occupancy:
    """Counts the bodies of one call running at once, and how many ran in all."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.now = 0
        self.most = 0
        self.runs = 0

    def enter(self) -> None:
        with self.lock:
            self.now += 1
            self.runs += 1
            self.most = max(self.most, self.now)

    def leave(self) -> None:
        with self.lock:
            self.now -= 1


def _script(*names: str) -> ScriptedProvider:
    calls = [{"name": n, "arguments": {"i": i}} for i, n in enumerate(names)]
    return ScriptedProvider([{"tool_calls": calls}, "done"])


async def _settled(task: asyncio.Task[Any]) -> bool:
    """True if ``task`` ends within a short while: it must not, while a body it started still runs."""
    done, _ = await asyncio.wait({task}, timeout=0.5)
    return bool(done)


@pytest.mark.parametrize("how", ["timeout", "cancel"])
def test_a_cancelled_arun_keeps_the_claim_until_its_sync_body_returns(data_dir: Path, how: str) -> None:
    started = threading.Event()
    release = threading.Event()
    seen = Occupancy()

    @tool
    def pay(i: int) -> str:
        """A sync tool that blocks until the test lets it go."""
        seen.enter()
        try:
            started.set()
            assert release.wait(WAIT)
            return "paid"
        finally:
            seen.leave()

    async def main() -> None:
        agent = Agent(data_dir, provider=_script("pay"), tools=[pay])

        async def with_timeout() -> None:
            async with asyncio.timeout(None) as scope:
                inner = asyncio.ensure_future(agent.arun("go", execution_id="e"))
                await asyncio.to_thread(started.wait, WAIT)
                scope.reschedule(asyncio.get_running_loop().time())  # the timeout fires now
                await inner

        if how == "timeout":
            task = asyncio.ensure_future(with_timeout())
        else:
            task = asyncio.ensure_future(agent.arun("go", execution_id="e"))
            await asyncio.to_thread(started.wait, WAIT)
            task.cancel()
        assert not await _settled(task)  # the body still runs: the run keeps waiting for it
        assert FileStore(data_dir).is_claimed("e")
        with pytest.raises(ExecutionAlreadyClaimedError):
            await agent.aresume("e")
        release.set()
        with pytest.raises(TimeoutError if how == "timeout" else asyncio.CancelledError):
            await task
        assert not FileStore(data_dir).is_claimed("e")
        # The body returned after the run stopped: its result was not recorded, so the call is in doubt and
        # runs again on resume, with the same key, never at the same time as the first body.
        assert (await agent.aresume("e")).answer == "done"

    asyncio.run(main())
    assert seen.most == 1 and seen.runs == 2
    records = FileStore(data_dir).read("e").records
    keys = {r.idempotency_key for r in records if isinstance(r, ToolStarted)}
    assert len(keys) == 1
    assert sum(isinstance(r, ToolFinished) for r in records) == 1


def test_a_crash_in_one_body_of_a_parallel_batch_waits_for_its_sync_siblings(data_dir: Path) -> None:
    started = threading.Event()
    release = threading.Event()
    seen = Occupancy()

    @tool
    def slow(i: int) -> str:
        """A sync tool that blocks until the test lets it go."""
        seen.enter()
        try:
            started.set()
            assert release.wait(WAIT)
            return "slow"
        finally:
            seen.leave()

    @tool
    async def crash(i: int) -> str:
        """An async tool that fails past ``except Exception`` (a crash of the run), once its sibling runs."""
        await asyncio.to_thread(started.wait, WAIT)
        raise Crash

    async def main() -> None:
        agent = Agent(data_dir, provider=_script("slow", "crash"), tools=[slow, crash])
        task = asyncio.ensure_future(agent.arun("go", execution_id="p"))
        await asyncio.to_thread(started.wait, WAIT)
        assert not await _settled(task)
        with pytest.raises(ExecutionAlreadyClaimedError):
            await agent.aresume("p")
        release.set()
        with pytest.raises(Crash):
            await task
        assert not FileStore(data_dir).is_claimed("p")

    asyncio.run(main())
    assert seen.runs == 1


def test_bodies_not_started_when_the_run_is_cancelled_never_start(data_dir: Path) -> None:
    started = threading.Event()
    release = threading.Event()
    ran: list[int] = []
    lock = threading.Lock()

    @tool
    def work(i: int) -> int:
        """Blocks until the test lets it go."""
        with lock:
            ran.append(i)
        started.set()
        assert release.wait(WAIT)
        return i

    class OneThread:
        """A pool of one thread: the first body runs, the other two wait in its queue."""

        def __init__(self) -> None:
            self.pool = concurrent.futures.ThreadPoolExecutor(1)

        def submit(self, fn: Any, *args: Any) -> None:
            self.pool.submit(fn, *args)

    async def main() -> None:
        pool = OneThread()
        token = worker_pool.set(pool)
        try:
            agent = Agent(data_dir, provider=_script("work", "work", "work"), tools=[work])
            task = asyncio.ensure_future(agent.arun("go", execution_id="q"))
            await asyncio.to_thread(started.wait, WAIT)
            task.cancel()
            assert not await _settled(task)
            release.set()
            with pytest.raises(asyncio.CancelledError):
                await task
        finally:
            worker_pool.reset(token)
            pool.pool.shutdown(wait=True)

    asyncio.run(main())
    assert ran == [0]  # the two queued bodies were skipped: their calls are in doubt, as after a crash


@pytest.mark.parametrize("seed", range(6))
def test_cancellations_at_random_points_never_overlap_two_bodies_of_one_call(tmp_path: Path, seed: int) -> None:
    """A run cancelled at a random point while a resumer keeps trying: no call ever has two bodies at once."""
    rng = random.Random(seed)
    lock = threading.Lock()
    running: dict[str, int] = {}
    overlaps: list[str] = []
    gate = threading.Event()
    entered = threading.Event()

    @tool
    def work(i: int) -> int:
        """Holds its call's key while it runs, until the gate opens."""
        key = current_idempotency_key()
        assert key is not None
        with lock:
            running[key] = running.get(key, 0) + 1
            if running[key] > 1:
                overlaps.append(key)
        entered.set()
        try:
            assert gate.wait(WAIT)
            return i
        finally:
            with lock:
                running[key] -= 1

    width = rng.randint(1, 6)
    names = ["work"] * width

    async def main() -> None:
        agent = Agent(tmp_path, provider=_script(*names), tools=[work])
        task = asyncio.ensure_future(agent.arun("go", execution_id="r"))
        await asyncio.to_thread(entered.wait, WAIT)
        for _ in range(rng.randint(0, 20)):  # cancel at a random point of the bodies' start-up
            await asyncio.sleep(0)
        task.cancel()
        attempts = rng.randint(1, 5)
        refused = 0
        while refused < attempts:  # a resumer that keeps trying while the cancelled run still waits
            try:
                await agent.aresume("r")
                break
            except ExecutionAlreadyClaimedError:
                refused += 1
        gate.set()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        assert (await agent.aresume("r")).answer == "done"

    asyncio.run(main())
    assert overlaps == []
