"""Two more tortures for ``benchmarks/torture.py``: forks killed at random points, async runs cancelled at random.

* **Forks** (``--forks N``): one origin of 30 steps with large tool results, then N forks of it, each in a child
  process that SIGKILLs itself at a random point of writing the fork (half-way through the bytes at a random
  offset, before the ``fsync``, before the link, after the link, before the directory ``fsync``) or not at
  all. After each child: the fork is absent or whole (the same records as an unkilled fork of the same step),
  never a shorter execution; a fork killed before it was named is forked again with the same id, which must
  work and leave no temporary file. At the end a Runtime starts over the directory: it must resume none of
  the forks (nobody resumed them), and no fork's log may change.
* **Async cancellations** (``--cancels N``): N executions whose first turn asks for 1 to 6 tool calls (sync and
  async bodies) that wait on a gate; the run is cancelled (``task.cancel()`` or an ``asyncio.timeout``) at a
  random point after the first body starts, while a resumer keeps trying to take the execution over; then
  the gate opens. No call may ever have two bodies running at once (counted per idempotency key), every
  resume attempt while a body of the cancelled run was still running must be refused (409), and a final
  resume completes with every call's result.

Each returns its counts and the breaches it found (a list of strings; empty means every invariant held).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import msgspec  # noqa: E402

from delite import Agent, DataDir, Runtime, ScriptedProvider, current_idempotency_key, tool  # noqa: E402
from delite.errors import ExecutionAlreadyClaimedError, UsageError  # noqa: E402
from delite.log.records import ExecutionStarted, ToolFinished  # noqa: E402
from delite.state._fold import fold  # noqa: E402
from delite.store import FileStore  # noqa: E402

ORIGIN_STEPS = 30
PAGE = "p" * 20_000
POINTS = ("write", "fsync", "link", "linked", "dir", "none")

# The child that forks and kills itself at one point (argv: data_dir, origin, at, new_id, point, fraction).
FORK_CHILD = r"""
import os, signal, sys
from delite import DataDir
from delite.log import _os as log_os
data_dir, origin, at, new_id, point, fraction = sys.argv[1:7]
real_write, real_fsync, real_link, real_dir = log_os.write_all, log_os.fsync, log_os.link, log_os.fsync_dir
def die():
    os.kill(os.getpid(), signal.SIGKILL)
def write_all(fd, data):
    if point == "write":
        os.write(fd, bytes(data[: int(len(data) * float(fraction))]))
        die()
    real_write(fd, data)
def fsync(fd):
    if point == "fsync":
        die()
    real_fsync(fd)
def link(src, dst):
    if point == "link":
        die()
    real_link(src, dst)
    if point == "linked":
        die()
def fsync_dir(path):
    if point == "dir":
        die()
    real_dir(path)
log_os.write_all, log_os.fsync, log_os.link, log_os.fsync_dir = write_all, fsync, link, fsync_dir
DataDir(data_dir).fork(origin, at=int(at), new_id=new_id)
"""


def _page_tool() -> Any:
    @tool
    def fetch(i: int) -> str:
        """Returns a large page."""
        return f"{i}:{PAGE}"

    return fetch


def _comparable(records: list[Any]) -> list[Any]:
    first = records[0]
    assert isinstance(first, ExecutionStarted)
    return [msgspec.structs.replace(first, execution_id="", at=0.0), *records[1:]]


def fork_torture(root: str, rounds: int, rng: random.Random) -> tuple[dict[str, Any], list[str]]:
    """Fork one origin ``rounds`` times in children killed at random points; see the module docstring."""
    data_dir = os.path.join(root, "forks")
    fetch = _page_tool()
    agent = Agent(data_dir, provider=ScriptedProvider.tool_loop(ORIGIN_STEPS, "fetch"), tools=[fetch])
    agent.run("go", execution_id="origin")
    data = DataDir(data_dir)
    store = FileStore(data_dir)
    expected: dict[int, list[Any]] = {}
    counts = {"forks": rounds, "killed": 0, "absent_after_kill": 0, "whole_after_kill": 0, "retried": 0}
    counts["by_point"] = dict.fromkeys(POINTS, 0)
    breaches: list[str] = []
    forks: dict[str, list[Any]] = {}
    for n in range(rounds):
        at = rng.randint(0, ORIGIN_STEPS)
        if at not in expected:
            ref = data.fork("origin", at=at, new_id=f"ref{at}")
            expected[at] = _comparable(store.read(ref).records)
            forks[ref] = store.read(ref).records
        point = rng.choice(POINTS)
        counts["by_point"][point] += 1
        eid = f"f{n}"
        child = subprocess.run(
            [sys.executable, "-c", FORK_CHILD, data_dir, "origin", str(at), eid, point, f"{rng.random():.4f}"],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        killed = child.returncode == -signal.SIGKILL
        if point != "none" and not killed:
            breaches.append(
                f"fork {eid} at {point}: the child was not killed ({child.returncode}: {child.stderr[-300:]})"
            )
            continue
        counts["killed"] += killed
        exists = store.exists(eid)
        if exists:
            counts["whole_after_kill"] += killed
            contents = store.read(eid)
            if contents.torn is not None or _comparable(contents.records) != expected[at]:
                breaches.append(f"fork {eid} killed at {point}: a partial fork ({len(contents.records)} records)")
            with contextlib.suppress(UsageError):
                data.fork("origin", at=at, new_id=eid)
                breaches.append(f"fork {eid}: forking again over a whole fork was accepted")
        else:
            counts["absent_after_kill"] += killed
            if point in ("linked", "dir", "none"):
                breaches.append(f"fork {eid} at {point}: named before the kill, but absent")
            try:
                data.fork("origin", at=at, new_id=eid)
                counts["retried"] += 1
            except Exception as e:  # noqa: BLE001 - every failure is a breach, reported
                breaches.append(f"fork {eid} killed at {point}: the retry failed: {e!r}")
                continue
            if _comparable(store.read(eid).records) != expected[at]:
                breaches.append(f"fork {eid}: the retry made a different fork")
            stray = [p for p in os.listdir(os.path.join(data_dir, "executions")) if p.startswith(f".{eid}.")]
            if stray:
                breaches.append(f"fork {eid}: the retry left {stray}")
        forks[eid] = store.read(eid).records
    with Runtime(data_dir) as rt:
        rt.join(Agent(data_dir, provider=ScriptedProvider.tool_loop(ORIGIN_STEPS, "fetch"), tools=[fetch]))
        rt.start()
        started = sorted(set(rt.recovered) & set(forks))
    counts["forks_running"] = sum(fold(r).status.value == "running" for r in forks.values())
    counts["forks_recovered"] = len(started)
    if started:
        breaches.append(f"Runtime recovery started forks nobody resumed: {started[:5]}")
    changed = [eid for eid, records in forks.items() if store.read(eid).records != records]
    if changed:
        breaches.append(f"forks changed by recovery: {changed[:5]}")
    return counts, breaches


def cancel_torture(root: str, rounds: int, rng: random.Random) -> tuple[dict[str, Any], list[str]]:
    """Cancel async runs at random points while a resumer tries to take over; see the module docstring."""
    data_dir = os.path.join(root, "cancels")
    counts = {"cancellations": rounds, "refused_resumes": 0, "body_runs": 0, "calls": 0, "overlaps": 0}
    breaches: list[str] = []
    for n in range(rounds):
        breaches.extend(asyncio.run(_one_cancel(data_dir, f"c{n}", rng, counts)))
    return counts, breaches


async def _one_cancel(data_dir: str, eid: str, rng: random.Random, counts: dict[str, Any]) -> list[str]:
    breaches: list[str] = []
    lock = threading.Lock()
    running: dict[str, int] = {}
    gate = threading.Event()
    entered = threading.Event()

    def enter(*, sync: bool) -> str:
        key = current_idempotency_key() or "?"
        with lock:
            running[key] = running.get(key, 0) + 1
            counts["body_runs"] += 1
            if running[key] > 1:
                counts["overlaps"] += 1
                breaches.append(f"{eid}: two bodies of {key} at once")
        if sync:
            entered.set()  # a sync body runs: the cancelled run must keep the claim until it returns
        return key

    def leave(key: str) -> None:
        with lock:
            running[key] -= 1

    @tool
    def work(i: int) -> int:
        """A sync body that waits for the gate."""
        key = enter(sync=True)
        try:
            gate.wait(60)
            return i
        finally:
            leave(key)

    @tool
    async def awork(i: int) -> int:
        """An async body that waits for the gate (cancelled with its run)."""
        key = enter(sync=False)
        try:
            await asyncio.to_thread(gate.wait, 60)
            return i
        finally:
            leave(key)

    width = rng.randint(1, 6)
    names = [rng.choice(["work", "work", "awork"]) for _ in range(width)]
    names[rng.randrange(width)] = "work"  # at least one sync body
    counts["calls"] += width
    turn = {"tool_calls": [{"name": name, "arguments": {"i": i}} for i, name in enumerate(names)]}
    agent = Agent(data_dir, provider=ScriptedProvider([turn, "done"]), tools=[work, awork])

    async def timed() -> None:
        async with asyncio.timeout(None) as scope:
            inner = asyncio.ensure_future(agent.arun("go", execution_id=eid))
            await asyncio.to_thread(entered.wait, 60)
            for _ in range(rng.randint(0, 10)):
                await asyncio.sleep(0)
            scope.reschedule(asyncio.get_running_loop().time())
            await inner

    if rng.random() < 0.5:
        task = asyncio.ensure_future(timed())
        await asyncio.to_thread(entered.wait, 60)
        for _ in range(rng.randint(0, 20)):  # let the timeout fire first, or not
            await asyncio.sleep(0)
    else:
        task = asyncio.ensure_future(agent.arun("go", execution_id=eid))
        await asyncio.to_thread(entered.wait, 60)
        for _ in range(rng.randint(0, 10)):  # a random point of the bodies' start-up
            await asyncio.sleep(0)
        task.cancel()
    for _ in range(rng.randint(1, 4)):
        try:
            await agent.aresume(eid)
        except ExecutionAlreadyClaimedError:
            counts["refused_resumes"] += 1
        else:
            breaches.append(f"{eid}: a resume took the execution while a body of the cancelled run ran")
            break
    gate.set()
    with contextlib.suppress(asyncio.CancelledError, TimeoutError):
        await task
    done = await agent.aresume(eid)
    if done.answer != "done":
        breaches.append(f"{eid}: ended {done.status}, not completed")
    records = FileStore(data_dir).read(eid).records
    finished = {r.call_id for r in records if isinstance(r, ToolFinished)}
    if len(finished) != width:
        breaches.append(f"{eid}: {len(finished)} results for {width} calls")
    return breaches
