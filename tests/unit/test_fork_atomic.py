"""A fork that fails part-way (disk full, an I/O error) leaves nothing and can be made again with the same id."""

from __future__ import annotations

import errno
import os
from pathlib import Path
from typing import Any

import pytest
from _race import race
from _stores import store_at

from delite import Agent, DataDir, ScriptedProvider, tool
from delite.errors import StoreError, UsageError
from delite.log import _os as log_os
from delite.state._fold import fold


@pytest.fixture
def data_dir(any_data_dir: Any) -> Any:
    """Every test here runs on the file store and on PostgreSQL (the files_only ones on files alone)."""
    return any_data_dir


@tool
def step(i: int) -> str:
    """A step."""
    return f"s{i}"


def _origin(data_dir: Path) -> None:
    Agent(data_dir, provider=ScriptedProvider.tool_loop(4, "step"), tools=[step]).run("go", execution_id="o")


@pytest.mark.files_only  # it breaks the file store's writes
@pytest.mark.parametrize("where", ["write_all", "fsync", "link"])
def test_a_fork_that_fails_part_way_leaves_nothing_and_can_be_retried(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch, where: str
) -> None:
    _origin(data_dir)
    real = getattr(log_os, where)

    def failing(*args: object) -> None:
        if where == "write_all":
            os.write(args[0], bytes(args[1])[:100])  # type: ignore[arg-type]
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(log_os, where, failing)
    with pytest.raises(StoreError) as caught:
        DataDir(data_dir).fork("o", at=2, new_id="f")
    assert caught.value.errno == errno.ENOSPC
    assert not store_at(data_dir).exists("f")
    assert [p for p in os.listdir(data_dir / "executions") if not p.endswith(".log")] == []
    monkeypatch.setattr(log_os, where, real)
    assert DataDir(data_dir).fork("o", at=2, new_id="f") == "f"
    state = fold(store_at(data_dir).read("f").records)
    assert state.steps == 2 and state.dormant


def test_forking_onto_an_existing_id_is_refused_and_changes_nothing(data_dir: Path) -> None:
    _origin(data_dir)
    before = store_at(data_dir).read_payloads("o")
    with pytest.raises(UsageError, match="exists already"):
        DataDir(data_dir).fork("o", at=1, new_id="o")
    assert store_at(data_dir).read_payloads("o") == before


def test_a_resumed_fork_is_no_longer_dormant(data_dir: Path) -> None:
    _origin(data_dir)
    DataDir(data_dir).fork("o", at=2, new_id="f")
    agent = Agent(data_dir, provider=ScriptedProvider.tool_loop(4, "step"), tools=[step])
    assert agent.resume("f").answer == "done"
    assert not fold(store_at(data_dir).read("f").records).dormant
    DataDir(data_dir).fork("f", at=3, new_id="ff")  # a fork of it copies its resume, and is dormant again
    assert fold(store_at(data_dir).read("ff").records).dormant


def test_racing_forks_onto_one_id_have_one_winner_and_409s(data_dir: Path) -> None:
    """Forks raced from threads onto one new id: exactly one creates it, every other gets a 409 state error."""

    from delite.errors import ExecutionStateError

    with Agent(data_dir, provider=ScriptedProvider.tool_loop(3, "step"), tools=[step]) as agent:
        origin = agent.run("go").execution_id
    d = DataDir(data_dir)
    outcomes = race(lambda: d.fork(origin, at=1, new_id="raced"))
    d.close()
    assert outcomes.count("raced") == 1, outcomes
    assert all(isinstance(o, ExecutionStateError) and o.http_status == 409 for o in outcomes if o != "raced")
