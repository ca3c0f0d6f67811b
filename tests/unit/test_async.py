"""The async API: the same operations as the sync one, awaited; the event loop never runs a blocking edge."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from _stores import store_at

from delite import Agent, ScriptedProvider, Status, current_call, tool
from delite.engine._events import Completed, TextDelta, ToolCallFinished, ToolCallStarted
from delite.errors import ExecutionAlreadyClaimedError, ProviderError
from delite.log import _os as log_os
from delite.log.records import ExecutionCompleted, ToolFinished
from delite.providers import call
from delite.store import FileStore


@pytest.fixture
def data_dir(any_data_dir: Any) -> Any:
    """Every test here runs on the file store and on PostgreSQL (the files_only ones on files alone)."""
    return any_data_dir


def outputs(messages: list[dict[str, Any]]) -> str:
    return " | ".join(m["content"] for m in messages if m["role"] == "tool")


def test_arun_records_the_same_log_as_run(data_dir: Path) -> None:
    @tool
    def add(a: int, b: int) -> int:
        """Add."""
        return a + b

    def script() -> ScriptedProvider:
        return ScriptedProvider([call("add", a=1, b=2), call("add", a=3, b=4), outputs])

    sync = Agent(data_dir, provider=script(), tools=[add]).run("go", execution_id="s")
    done = asyncio.run(Agent(data_dir, provider=script(), tools=[add]).arun("go", execution_id="a"))
    assert done.answer == sync.answer == "3 | 7"
    store = store_at(data_dir)
    kinds = [[type(r).__name__ for r in store.read(e).records] for e in ("s", "a")]
    assert kinds[0] == kinds[1]
    again = asyncio.run(Agent(data_dir, provider=ScriptedProvider([]), tools=[add]).arun("go", execution_id="a"))
    assert again.answer == "3 | 7"  # replayed from the log: the empty script is never asked


@pytest.mark.files_only  # it watches the file store's writes
def test_async_tools_run_on_the_loop_and_sync_tools_and_writes_do_not(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    threads: dict[str, set[str]] = {"async": set(), "sync": set(), "write": set()}
    real_write = log_os.write_all

    def write_all(fd: int, data: bytes) -> None:
        threads["write"].add(threading.current_thread().name)
        real_write(fd, data)

    monkeypatch.setattr(log_os, "write_all", write_all)

    @tool
    async def fetch(url: str) -> str:
        """Fetch (async)."""
        threads["async"].add(threading.current_thread().name)
        await asyncio.sleep(0)
        return f"got {url} as {current_call().call_id}"

    @tool
    def parse(text: str) -> str:
        """Parse (sync)."""
        threads["sync"].add(threading.current_thread().name)
        return text.upper()

    script = ScriptedProvider([call("fetch", url="x"), call("parse", text="y"), outputs])

    async def main() -> tuple[str, str | None]:
        async with Agent(data_dir, provider=script, tools=[fetch, parse]) as agent:
            r = await agent.arun("go")
        return threading.current_thread().name, r.answer

    loop_thread, answer = asyncio.run(main())
    assert answer == "got x as c1.0 | Y"
    assert threads["async"] == {loop_thread}
    assert threads["sync"] and loop_thread not in threads["sync"]
    assert threads["write"] and loop_thread not in threads["write"]


def test_async_provider_is_awaited_and_sync_provider_runs_in_a_thread(data_dir: Path) -> None:
    seen: list[str] = []

    async def async_model(messages: list[dict[str, Any]], tools: Any, model: Any) -> dict[str, Any]:
        seen.append("async:" + threading.current_thread().name)
        return {"content": "from async"}

    def sync_model(messages: list[dict[str, Any]], tools: Any, model: Any) -> dict[str, Any]:
        seen.append("sync:" + threading.current_thread().name)
        return {"content": "from sync"}

    async def main() -> tuple[str, list[str | None]]:
        a = await Agent(data_dir, provider=async_model).arun("hi")
        b = await Agent(data_dir, provider=sync_model).arun("hi")
        return threading.current_thread().name, [a.answer, b.answer]

    loop_thread, answers = asyncio.run(main())
    assert answers == ["from async", "from sync"]
    assert seen[0] == f"async:{loop_thread}" and seen[1] != f"sync:{loop_thread}"


def test_async_submissions_resume_and_cancel(data_dir: Path) -> None:
    ran: list[int] = []

    @tool(requires_confirmation=True)
    def transfer(amount: int) -> str:
        """Move money."""
        ran.append(amount)
        return f"moved {amount}"

    @tool(target="client")
    def read_cell(cell: str) -> str:
        """A client tool."""
        raise AssertionError

    def agent() -> Agent:
        script = ScriptedProvider(
            [call("transfer", amount=5), call("read_cell", cell="B2"), call("ask_human", question="ok?"), outputs]
        )
        return Agent(data_dir, provider=script, tools=[transfer, read_cell])

    async def main() -> None:
        r = await agent().arun("go", execution_id="e1")
        assert r.status is Status.WAITING_APPROVAL and ran == []
        r = await agent().asubmit_approval("e1", approved=True)
        assert r.status is Status.WAITING_CLIENT_TOOL and ran == [5]
        r = await agent().asubmit_tool_results("e1", {"c2.0": "42"})
        assert r.status is Status.WAITING_HUMAN_INPUT
        assert (await agent().aget("e1")).suspend_reason is not None
        r = await agent().asubmit_input("e1", "yes")
        assert r.answer == "moved 5 | 42 | yes"
        assert (await agent().aresponse("e1")).answer == r.answer
        assert (await agent().aresume("e1")).answer == r.answer

        other = await agent().arun("go", execution_id="e2")
        assert other.is_suspended
        assert (await agent().acancel("e2")).status is Status.CANCELLED
        assert (await agent().aresume("e2")).status is Status.CANCELLED

        await agent().arun("go", execution_id="e3")
        await agent().adecide("e3", {"c1.0": False}, reasons={"c1.0": "no"}, advance=False)
        r = await agent().aresume("e3")
        assert r.status is Status.WAITING_CLIENT_TOOL  # rejected: the model moves on to the client tool

    asyncio.run(main())
    assert ran == [5]


def test_astream_yields_text_and_events(data_dir: Path) -> None:
    @tool
    def lookup(q: str) -> str:
        """Look up."""
        return "found"

    def agent() -> Agent:
        return Agent(
            data_dir, provider=ScriptedProvider([call("lookup", q="x"), "It was found, all good."]), tools=[lookup]
        )

    async def main() -> tuple[list[str], list[Any], str | None]:
        stream = agent().astream("go")
        chunks = [c async for c in stream]
        events = agent().astream_events("again")
        seen = [e async for e in events]
        assert events.response is not None and events.execution_id == events.response.execution_id
        return chunks, seen, stream.response.answer if stream.response else None

    chunks, events, answer = asyncio.run(main())
    assert "".join(chunks) == "It was found, all good." == answer
    kinds = [type(e) for e in events if not isinstance(e, TextDelta)]
    assert kinds == [ToolCallStarted, ToolCallFinished, Completed]


def test_leaving_an_async_stream_stops_the_run_resumably(data_dir: Path) -> None:
    @tool
    def work(i: int) -> str:
        """Work."""
        return f"w{i}"

    def agent() -> Agent:
        return Agent(data_dir, provider=ScriptedProvider.tool_loop(5, "work"), tools=[work])

    async def main() -> None:
        async with agent().astream_events("go") as stream:
            async for event in stream:
                if isinstance(event, ToolCallFinished):
                    break
        eid = stream.execution_id
        state = await agent().aget(eid)
        assert state.status is Status.RUNNING and state.steps < 6
        assert not store_at(data_dir).is_claimed(eid)  # the run let go of the execution
        assert (await agent().aresume(eid)).answer == "done"

    asyncio.run(main())


def test_cancelling_the_task_releases_the_claim(data_dir: Path) -> None:
    started = threading.Event()
    release = threading.Event()

    @tool
    def slow(i: int) -> str:
        """A tool that takes a while (in a worker thread)."""
        started.set()
        release.wait(30)
        return "slow"

    async def main() -> None:
        agent = Agent(data_dir, provider=ScriptedProvider.tool_loop(1, "slow"), tools=[slow])
        task = asyncio.create_task(agent.arun("go", execution_id="c1"))
        await asyncio.to_thread(started.wait, 30)
        with pytest.raises(ExecutionAlreadyClaimedError):
            await agent.aresume("c1")
        task.cancel()
        release.set()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert not store_at(data_dir).is_claimed("c1")
        # The tool's intent was written and its result was not: the call is in doubt and runs again.
        assert (await agent.aresume("c1")).answer == "done"

    asyncio.run(main())


def test_async_provider_failure_is_recorded_and_raised(data_dir: Path) -> None:
    async def broken(messages: Any, tools: Any, model: Any) -> dict[str, Any]:
        raise ValueError("model down")

    async def main() -> None:
        with pytest.raises(ProviderError, match="model down"):
            await Agent(data_dir, provider=broken).arun("x", execution_id="f")
        state = await Agent(data_dir, provider=broken).aget("f")
        assert state.status is Status.FAILED

    asyncio.run(main())


def test_many_concurrent_aruns_on_one_loop(data_dir: Path) -> None:
    @tool
    async def step(i: int) -> str:
        """A step."""
        await asyncio.sleep(0.001)
        return f"s{i}"

    async def main() -> list[str | None]:
        agent = Agent(data_dir, provider=ScriptedProvider.tool_loop(3, "step", delay=0.01), tools=[step])
        responses = await asyncio.gather(*(agent.arun("go", execution_id=f"x{i}") for i in range(30)))
        return [r.answer for r in responses]

    assert asyncio.run(main()) == ["done"] * 30
    store = store_at(data_dir)
    for i in range(30):
        contents = store.read(f"x{i}")
        assert getattr(contents, "torn", None) is None and isinstance(contents.records[-1], ExecutionCompleted)
        assert sum(isinstance(r, ToolFinished) for r in contents.records) == 3


def test_the_thread_pool_runs_a_burst_of_blocking_calls_at_once() -> None:
    from delite.engine._aio import Threads

    pool = Threads("test-pool", 4)
    barrier = threading.Barrier(4, timeout=20)
    results: list[int] = []
    done = threading.Semaphore(0)

    def meet(i: int) -> None:
        barrier.wait()  # passes only if all four calls run at the same time
        results.append(i)
        done.release()

    for i in range(4):
        pool.submit(meet, i)
    for _ in range(4):
        assert done.acquire(timeout=20)
    assert sorted(results) == [0, 1, 2, 3] and pool.started == 4
    pool.submit(results.append, 4)  # no fifth thread: the four are idle again
    pool.close()  # runs what is queued first
    assert results[-1] == 4
    assert pool.started == 4 and not pool.threads


def test_a_pool_started_ahead_runs_its_first_call_in_the_thread_already_there() -> None:
    from delite.engine._aio import Threads

    pool = Threads("ahead", 4)
    pool.prestart()
    pool.prestart()  # once only
    assert pool.started == 1 and len(pool.threads) == 1 and pool.threads[0].is_alive()
    ran: list[str] = []
    done = threading.Event()
    pool.submit(lambda: (ran.append(threading.current_thread().name), done.set()))
    assert done.wait(20)
    assert ran == ["ahead-1"] and pool.started == 1  # the idle thread took it: none started for it
    pool.close()
    assert not pool.threads
    pool.prestart()  # closed: nothing starts
    assert not pool.threads


@pytest.mark.files_only  # it holds the file store's claim
def test_a_claim_taken_after_its_caller_was_cancelled_is_released(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    Agent(data_dir, provider=ScriptedProvider(["hi"])).run("x", execution_id="c")
    entered = threading.Event()
    go_on = threading.Event()
    returned = threading.Event()
    real_claim = FileStore.claim

    def held_claim(self: FileStore, *args: Any, **kwargs: Any) -> Any:
        entered.set()
        go_on.wait(30)  # the caller is cancelled while the claim is being taken
        try:
            return real_claim(self, *args, **kwargs)
        finally:
            returned.set()

    monkeypatch.setattr(FileStore, "claim", held_claim)

    async def main() -> None:
        task = asyncio.create_task(Agent(data_dir, provider=ScriptedProvider([])).aresume("c"))
        await asyncio.to_thread(entered.wait, 30)
        task.cancel()
        for _ in range(5):  # let the task take the cancellation while its claim is still held up
            await asyncio.sleep(0)
        go_on.set()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    assert returned.wait(30)  # the claim was taken (after the cancel)...
    store = store_at(data_dir)
    deadline = time.monotonic() + 30
    while store.is_claimed("c") and time.monotonic() < deadline:
        time.sleep(0.001)
    assert not store.is_claimed("c")  # ...and released for nobody
