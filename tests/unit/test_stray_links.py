"""A creator killed between linking a new log to its name and removing its temporary name leaves a second name.

Forks and ``delite copy`` create a log under ``.<name>.<pid>.<hex>.tmp`` and link it to its name; SIGKILL between
the link and the unlink leaves the log with two names, which claims refuse (a log must be reachable under one
id). The next claim, or the next attempt to create it (a copy run again), removes that leftover name, and only it.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from delite import Agent, ScriptedProvider
from delite.errors import ExecutionIdConflictError
from delite.store import FileStore


def _leftover(data: Path, eid: str) -> tuple[Path, Path]:
    log = data / "executions" / f"{eid}.log"
    stray = data / "executions" / f".{eid}.log.4242.a1b2c3.tmp"
    os.link(log, stray)  # what a creator killed after its link and before its unlink leaves
    other = data / "executions" / f".{eid}.log.4243.d4e5f6.tmp"
    other.write_bytes(b"another file")  # a temporary name of another file: never touched
    return stray, other


@pytest.fixture
def data(tmp_path: Path) -> Path:
    with Agent(tmp_path / "data", provider=ScriptedProvider(["hi"])) as agent:
        agent.run("hello", execution_id="one")
    return tmp_path / "data"


def test_a_claim_removes_the_leftover_name_and_only_it(data: Path) -> None:
    stray, other = _leftover(data, "one")
    store = FileStore(data)
    with store.claim("one") as log:
        assert len(log.records) == 3
    assert not stray.exists() and other.read_bytes() == b"another file"
    assert os.stat(data / "executions" / "one.log").st_nlink == 1


def test_creating_it_again_removes_the_leftover_name_then_says_it_exists(data: Path) -> None:
    stray, other = _leftover(data, "one")
    store = FileStore(data)
    payloads = store.read_payloads("one")
    with pytest.raises(ExecutionIdConflictError):
        store.create_payloads("one", payloads)
    assert not stray.exists() and other.exists()
    assert store.read_payloads("one") == payloads


def test_a_log_linked_under_another_id_is_still_refused(data: Path) -> None:
    os.link(data / "executions" / "one.log", data / "executions" / "two.log")
    from delite.errors import LogIdentityError

    with pytest.raises(LogIdentityError, match="hard links"):
        FileStore(data).claim("one")
    assert (data / "executions" / "two.log").exists()
