"""The async driver appends on the loop only when the append does not wait on the disk, or when a Runtime's run is
alone on a local store (a hop to a thread and back would cost as much as the fsync). The appends of a sync tool's
step are made in the worker thread that runs its body (one hop for the step, see ``test_async_segments.py``)."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

import pytest
from _together import InStep
from store_fixtures import ListStore

from delite import Agent, MemoryStore, Runtime, ScriptedProvider, Status, tool
from delite.log.records import ExecutionStarted
from delite.providers import call
from delite.store import FileStore
from delite.store._base import ExecutionLog


@pytest.mark.parametrize(
    ("durability", "plain", "barrier"),
    [("full", True, True), ("normal", False, True), ("off", False, False)],
)
def test_a_file_log_waits_exactly_when_it_fsyncs(tmp_path: Path, durability: str, plain: bool, barrier: bool) -> None:
    store = FileStore(tmp_path, durability=durability)
    log = store.claim("e1", create=[ExecutionStarted(execution_id="e1")])
    try:
        assert log.waits(barrier=False) is plain
        assert log.waits(barrier=True) is barrier
    finally:
        log.release()


def test_a_memory_log_never_waits() -> None:
    log = MemoryStore().claim("e1", create=[ExecutionStarted(execution_id="e1")])
    assert not log.waits(barrier=True)


@pytest.mark.parametrize("durability", ["off", "full"])
def test_arun_appends_on_the_loop_only_without_fsync(tmp_path: Path, durability: str) -> None:
    threads: set[str] = set()
    store = FileStore(tmp_path, durability=durability)
    claim = store.claim

    def watched_claim(execution_id: str, **kw: object) -> ExecutionLog:
        log = claim(execution_id, **kw)  # type: ignore[arg-type]
        append = log.append

        def recorded(records: object, **options: object) -> None:
            threads.add(threading.current_thread().name)
            append(records, **options)  # type: ignore[arg-type]

        log.append = recorded  # type: ignore[method-assign]
        return log

    store.claim = watched_claim  # type: ignore[method-assign]

    @tool
    def step(n: int) -> int:
        return n

    agent = Agent(store=store, provider=ScriptedProvider([call("step", n=1), call("step", n=2), "done"]), tools=[step])
    response = asyncio.run(agent.arun("go", execution_id="e1"))
    assert response.status is Status.COMPLETED
    loop = threading.main_thread().name
    if durability == "off":  # never a hop of its own: on the loop, or in the thread that ran a sync tool's body
        assert loop in threads and all(name == loop or name.startswith("delite-work") for name in threads)
    else:  # never on the loop: in an I/O thread, or in the worker thread of a sync tool's step
        assert threads and all(name.startswith(("delite-io", "delite-work")) for name in threads)


class Watched:
    """Records the thread of every claim and append made through the stores of one class while installed."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, store_class: type) -> None:
        self.claims: list[str] = []
        self.appends: list[str] = []
        real_claim = store_class.claim

        def claim(store: object, execution_id: str, **kw: object) -> ExecutionLog:
            self.claims.append(threading.current_thread().name)
            log: ExecutionLog = real_claim(store, execution_id, **kw)
            real_append = log.append

            def append(records: object, **options: object) -> None:
                self.appends.append(threading.current_thread().name)
                real_append(records, **options)  # type: ignore[arg-type]

            log.append = append  # type: ignore[method-assign]
            return log

        monkeypatch.setattr(store_class, "claim", claim)


@tool
def work(i: int) -> str:
    """A sync tool; the first run of step 1 stops its process (as a kill would, its call left in doubt)."""
    if i == 1 and not stopped:
        stopped.append(i)
        raise KeyboardInterrupt
    return f"{i}@{threading.current_thread().name}"


stopped: list[int] = []


def left_running(**where: Any) -> None:
    """An execution ``e`` that a process left running, inside a tool call of its second step."""
    stopped.clear()
    with (
        Agent(**where, provider=ScriptedProvider.tool_loop(3, "work"), tools=[work]) as agent,
        pytest.raises(KeyboardInterrupt),
    ):
        agent.run("go", execution_id="e")


def test_a_runtime_run_alone_on_a_data_directory_claims_and_appends_on_its_loop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A hop to an I/O thread and back costs about what the fsync does: a lone run makes neither."""
    left_running(data_dir=tmp_path)
    watched = Watched(monkeypatch, FileStore)
    with Runtime(tmp_path) as rt:
        Agent(tmp_path, runtime=rt, provider=ScriptedProvider.tool_loop(3, "work"), tools=[work])
        rt.start()  # recovers ``e``
        response = rt.wait("e", timeout=30)
    assert response.status is Status.COMPLETED and rt.recovered == ["e"]
    assert watched.claims == ["delite-runtime"]
    # No append takes a hop of its own: on the loop, or in the worker thread already running a sync tool's step.
    assert len(watched.appends) >= 4 and "delite-runtime" in watched.appends
    assert all(name == "delite-runtime" or name.startswith("delite-rt-work") for name in watched.appends)
    messages = FileStore(tmp_path).state("e").messages
    results = [m["content"] for m in messages if m["role"] == "tool"]
    assert results[0] == "0@MainThread" and len(results) == 3  # step 0 ran before the stop, 1 and 2 in the Runtime
    assert all(r.split("@")[1].startswith("delite-rt-work") for r in results[1:])  # a tool never on the loop


def test_runtime_runs_in_flight_together_hand_their_appends_to_the_io_threads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    stopped.append(0)  # the tool does not stop
    watched = Watched(monkeypatch, FileStore)
    with Runtime(tmp_path) as rt:
        agent = Agent(tmp_path, runtime=rt, provider=InStep(2, 2, "work"), tools=[work])
        ids = [rt.go(agent, "go"), rt.go(agent, "go")]
        assert [rt.wait(eid, timeout=30).status for eid in ids] == [Status.COMPLETED] * 2
    # The replies of both runs come while both are in flight: those appends never block the loop the other uses.
    assert any(name.startswith("delite-io") for name in watched.appends)


def test_a_runtime_hands_the_calls_of_a_store_it_does_not_know_to_be_local_to_the_io_threads(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A store of another kind (a database over a network, say) may block for long: never called on the loop."""
    store = ListStore()
    left_running(store=store)
    watched = Watched(monkeypatch, ListStore)
    with Runtime(store=store) as rt:
        Agent(runtime=rt, provider=ScriptedProvider.tool_loop(3, "work"), tools=[work])
        rt.start()
        assert rt.wait("e", timeout=30).status is Status.COMPLETED and rt.recovered == ["e"]
    assert watched.claims and all(name.startswith("delite-io") for name in watched.claims)
    # In an I/O thread, or in the worker thread of a sync tool's step: never on the loop.
    assert watched.appends and all(name.startswith(("delite-io", "delite-rt-work")) for name in watched.appends)


@tool
async def awork(i: int) -> str:
    """An async tool."""
    return str(i)


class AsyncScripted(ScriptedProvider):
    """Has ``acall`` (as every scripted provider does): no worker thread for its calls."""


@pytest.mark.parametrize(("tools", "started"), [([work], 1), ([awork], 0)])
def test_a_runtime_starts_a_worker_ahead_only_for_agents_that_call_sync_code(
    tmp_path: Path, tools: list[Any], started: int
) -> None:
    """While start() lists what to resume, the loop's thread starts one worker, if a resumed run would use one."""
    with Runtime(tmp_path) as rt:
        Agent(tmp_path, runtime=rt, provider=AsyncScripted(["hi"]), tools=tools)
        rt.start()
        assert rt._loop is not None and rt._pool is not None
        asyncio.run_coroutine_threadsafe(asyncio.sleep(0), rt._loop).result(10)  # after what start() scheduled
        assert rt._pool.started == started
