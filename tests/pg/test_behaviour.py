"""The engine's behaviour unchanged on PostgreSQL: one answer from racing handles, wake-ups, keys and forks.

Every "process" here is its own PostgresStore (its own pool and claim connection), as another host would have.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest

from delite import Agent, DataDir, ScriptedProvider, tool
from delite.errors import ExecutionAlreadyClaimedError, ExecutionStateError
from delite.providers import call
from delite.store._postgres import PostgresStore


def outputs(messages: list[dict[str, Any]]) -> str:
    return " | ".join(m["content"] for m in messages if m["role"] == "tool")


@tool(target="client")
def read_cell(cell: str) -> str:
    """Read a cell on the client."""
    raise AssertionError(cell)


def build(store: PostgresStore) -> Agent:
    return Agent(store=store, provider=ScriptedProvider([call("read_cell", cell="B2"), outputs]), tools=[read_cell])


@pytest.fixture
def handles(pg_url: str) -> Iterator[list[PostgresStore]]:
    opened = [PostgresStore(pg_url) for _ in range(8)]
    yield opened
    for h in opened:
        h.close()


def test_racing_handles_record_one_answer_and_wake_a_worker(handles: list[PostgresStore]) -> None:
    first = handles[0]
    r = build(first).run("go", execution_id="e1")
    assert r.is_suspended and r.suspend_reason is not None and r.suspend_reason.kind == "client_tool"
    assert first.runnable() == []  # waiting on an answer: nothing for a worker yet
    worker = handles[1]
    worker.listen()
    barrier = threading.Barrier(len(handles))
    outcomes: list[object] = []

    def give(i: int, h: PostgresStore) -> None:
        barrier.wait()
        while True:
            try:
                build(h).submit_tool_results("e1", {"c1.0": f"v{i}"}, advance=False)
                outcomes.append(i)
                return
            except ExecutionAlreadyClaimedError:
                continue  # another handle holds it: try again until the answer is there
            except ExecutionStateError as e:
                outcomes.append(type(e).__name__)
                return

    threads = [threading.Thread(target=give, args=(i, h)) for i, h in enumerate(handles)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    winners = [o for o in outcomes if isinstance(o, int)]
    assert len(winners) == 1 and outcomes.count("AlreadyDecidedError") == len(handles) - 1, outcomes
    assert worker.wait_for_work(5) is True  # the answer made it advanceable: NOTIFY
    assert [s.id for s in worker.runnable()] == ["e1"]  # every answer in: a worker may advance it
    assert [s.id for s in worker.recoverable()] == []  # not left running: nothing to recover
    done = build(worker).resume("e1")
    assert done.answer == f"v{winners[0]}"
    assert worker.runnable() == []
    assert DataDir(handles[2]).list(status="completed").total == 1


def test_an_idempotency_key_names_one_execution_across_handles(handles: list[PostgresStore]) -> None:
    a = Agent(store=handles[0], provider=ScriptedProvider(["one"])).run("hi", idempotency_key="k1")
    b = Agent(store=handles[1], provider=ScriptedProvider(["two"])).run("hi", idempotency_key="k1")
    assert a.execution_id == b.execution_id and b.answer == "one"
    assert handles[2].lookup_key("k1") is not None
    assert handles[2].list_ids() == [a.execution_id]


def test_a_fork_is_dormant_until_resumed_and_cancels_cross_handles(handles: list[PostgresStore]) -> None:
    Agent(store=handles[0], provider=ScriptedProvider(["hello"])).run("hi", execution_id="orig")
    fork = DataDir(handles[1]).fork("orig", at=1, new_id="copy")
    assert fork == "copy"
    summary = handles[2].list_executions(status="running").items[0]
    assert summary.id == "copy" and summary.forked_from == "orig"
    assert handles[2].runnable() == [] and handles[2].recoverable() == []  # nobody asked to run it
    handles[3].request_cancel("copy")
    assert handles[0].cancels_requested(["orig", "copy"]) == {"copy"}
    r = Agent(store=handles[0], provider=ScriptedProvider(["again"])).resume("copy")
    assert r.status.value == "cancelled"
    assert handles[4].list_executions(status="cancelled").total == 1
