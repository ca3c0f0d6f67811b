"""Bad entries in the other folders of a data directory (issue 10, item 9): signals and claims.

A FIFO, a directory or a symbolic link named like a cancel marker or a claim lock is a bad entry: ``health``
names it, it never blocks, it is never taken for a cancel request, and every other execution works as usual.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from delite import Agent, DataDir, Runtime, ScriptedProvider, tool
from delite.providers._scripted import call


@tool(requires_confirmation=True)
def pay(amount: int) -> str:
    """Pay."""
    return f"paid {amount}"


def fifo(path: Path) -> None:
    os.mkfifo(path, 0o600)


def directory(path: Path) -> None:
    path.mkdir(mode=0o700)
    (path / "inside").write_text("x")


def symlink(path: Path) -> None:
    path.symlink_to(path.parent / "elsewhere")


BAD: list[Callable[[Path], Any]] = [fifo, directory, symlink]


def _agent(data_dir: Path) -> Agent:
    return Agent(data_dir, provider=ScriptedProvider([call("pay", amount=1), "done"] * 4), tools=[pay])


@pytest.mark.parametrize("make", BAD, ids=lambda f: f.__name__)
def test_a_bad_entry_named_like_a_cancel_marker_is_no_cancel_request(data_dir: Path, make: Any) -> None:
    agent = _agent(data_dir)
    agent.run("first", execution_id="good")
    make(data_dir / "signals" / "new.cancel")
    r = agent.run("second", execution_id="new")  # neither cancelled by it nor failing to clear it
    assert r.status.value == "waiting_approval"
    assert agent.cancel("new").status.value == "cancelled"  # a real cancel still works
    problems = DataDir(data_dir).health().problems
    assert any("new.cancel" in str(p.path) for p in problems), problems
    assert agent.get("good").status.value == "waiting_approval"


@pytest.mark.parametrize("make", BAD, ids=lambda f: f.__name__)
def test_a_bad_claim_lock_stops_only_its_own_execution(data_dir: Path, make: Any) -> None:
    agent = _agent(data_dir)
    agent.run("first", execution_id="good")
    agent.run("other", execution_id="bad")
    lock = data_dir / "claims" / "bad.lock"
    lock.unlink(missing_ok=True)
    make(lock)
    assert agent.approve("good", "c1.0").status.value == "waiting_approval"  # the model asks to pay again
    with Runtime(data_dir) as rt:
        other = Agent(provider=ScriptedProvider(["hi"]), runtime=rt, agent_id="rt")
        assert rt.wait(rt.go(other, "hello")).answer == "hi"
    listed = {row.id: str(row.status) for row in DataDir(data_dir).list()}
    assert listed["bad"] == "waiting_approval"
    problems = DataDir(data_dir).health().problems
    assert any("bad.lock" in str(p.path) for p in problems), problems
