"""agent.enqueue: a durable start and nothing else; checked and keyed exactly as run is."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import msgspec
import pytest
from _stores import store_at

from delite import Agent, ScriptedProvider, Status, tool
from delite.errors import ExecutionIdConflictError, IdempotencyConflictError, UsageError
from delite.log.records import ExecutionStarted
from delite.providers import call


@pytest.fixture
def data_dir(any_data_dir: Any) -> Any:
    """Every test here runs on the file store and on PostgreSQL (the files_only ones on files alone)."""
    return any_data_dir


@tool
def add(a: int, b: int) -> int:
    """Add."""
    return a + b


def build(data: Path, **kwargs: Any) -> Agent:
    provider = ScriptedProvider([call("add", a=2, b=3), "The sum is 5."])
    return Agent(data, provider=provider, tools=[add], agent_id="calc", **kwargs)


def test_enqueue_writes_the_start_and_runs_nothing(data_dir: Path) -> None:
    agent = build(data_dir)
    eid = agent.enqueue("add 2 and 3", metadata={"thread": "t1"}, model="m-2")
    store = store_at(data_dir)
    records = store.read(eid).records
    assert len(records) == 1 and isinstance(records[0], ExecutionStarted)
    started = records[0]
    assert (started.input, started.metadata, started.model, started.agent_id) == (
        "add 2 and 3",
        {"thread": "t1"},
        "m-2",
        "calc",
    )
    assert started.config == agent.fingerprint()
    assert store.state(eid).status is Status.RUNNING and not store.is_claimed(eid)
    assert [s.id for s in store.runnable(agent="calc")] == [eid]
    assert agent.resume(eid).answer == "The sum is 5."  # any agent (a worker) continues it


def test_run_with_the_enqueued_id_continues_it(data_dir: Path) -> None:
    agent = build(data_dir)
    eid = agent.enqueue("add 2 and 3", execution_id="job-1")
    assert eid == "job-1"
    assert agent.enqueue("add 2 and 3", execution_id="job-1") == "job-1"  # the same request: nothing new
    with pytest.raises(ExecutionIdConflictError):
        agent.enqueue("something else", execution_id="job-1")
    assert agent.run("add 2 and 3", execution_id="job-1").answer == "The sum is 5."
    assert agent.enqueue("add 2 and 3", execution_id="job-1") == "job-1"  # finished: still its id, untouched
    assert len(store_at(data_dir).read("job-1").records) > 1


def test_an_idempotency_key_names_one_execution(data_dir: Path) -> None:
    agent = build(data_dir)
    eid = agent.enqueue("add 2 and 3", idempotency_key="req-1")
    assert agent.enqueue("add 2 and 3", idempotency_key="req-1") == eid
    with store_at(data_dir).claim(eid):  # a worker is advancing it: still the bound id, no error
        assert agent.enqueue("add 2 and 3", idempotency_key="req-1") == eid
    with pytest.raises(IdempotencyConflictError):
        agent.enqueue("add 3 and 4", idempotency_key="req-1")
    assert store_at(data_dir).list_ids() == [eid]
    assert agent.run("add 2 and 3", idempotency_key="req-1").execution_id == eid  # run finds the same one
    with pytest.raises(IdempotencyConflictError):
        agent.run("add 3 and 4", idempotency_key="req-1")


@pytest.mark.parametrize(
    ("text", "options", "error"),
    [
        ("hi", {"history": "not a list"}, UsageError),
        ("hi", {"metadata": {"k": object()}}, UsageError),
        ("hi", {"idempotency_key": ""}, UsageError),
        ("hi", {"execution_id": "../escape"}, Exception),
        ("hi", {"model": 3}, UsageError),
        ("x" * (65 * 1024 * 1024), {}, UsageError),
        ("hi", {"temperature": 0.2}, TypeError),
    ],
)
def test_bad_arguments_are_refused_before_anything_is_written(
    data_dir: Path, text: str, options: dict[str, Any], error: type[Exception]
) -> None:
    agent = build(data_dir)
    with pytest.raises(error):
        agent.enqueue(text, **options)
    assert store_at(data_dir).list_ids() == []
    if isinstance(data_dir, Path):  # no idempotency key bound either
        assert not (data_dir / "keys").exists() or not any((data_dir / "keys").iterdir())


def test_an_agent_without_a_model_cannot_enqueue(data_dir: Path) -> None:
    with pytest.raises(UsageError, match="no model provider"):
        Agent(data_dir).enqueue("hi")
    assert store_at(data_dir).list_ids() == []


class Answer(msgspec.Struct):
    total: int


def test_the_output_type_is_recorded_and_a_worker_with_it_completes_the_run(data_dir: Path) -> None:
    agent = Agent(data_dir, provider=ScriptedProvider(['{"total": 5}']), agent_id="calc")
    eid = agent.enqueue("total?", output_type=Answer)
    assert store_at(data_dir).read(eid).records[0].output_schema is not None
    worker_agent = Agent(data_dir, provider=ScriptedProvider(['{"total": 5}']), agent_id="calc", output_type=Answer)
    assert worker_agent.resume(eid).output == Answer(total=5)


def test_aenqueue(data_dir: Path) -> None:
    agent = build(data_dir)

    async def main() -> tuple[str, str]:
        first = await agent.aenqueue("add 2 and 3", idempotency_key="k")
        return first, await agent.aenqueue("add 2 and 3", idempotency_key="k")

    first, again = asyncio.run(main())
    assert first == again and store_at(data_dir).state(first).status is Status.RUNNING
