"""The async driver appends on the loop only when the append does not wait on the disk."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import pytest

from delite import Agent, MemoryStore, ScriptedProvider, Status, tool
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
    if durability == "off":
        assert threads == {threading.main_thread().name}
    else:
        assert threads and all(name.startswith("delite-io") for name in threads)
