"""A fork appears whole or not at all under SIGKILL, can be retried with the same id, and is not a crashed run."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import msgspec
import pytest

from delite import Agent, DataDir, Runtime, ScriptedProvider, tool
from delite.errors import UsageError
from delite.log.records import ExecutionResumed, ExecutionStarted, Record, ToolStarted
from delite.state._fold import fold
from delite.store import FileStore

WORKER = str(Path(__file__).with_name("fork_worker.py"))
STEPS = 30
BIG = "x" * 40_000  # each tool result: the fork is one write of over a megabyte


@tool
def fetch(i: int) -> str:
    """Returns a large page."""
    return f"{i}:{BIG}"


def _origin(data_dir: Path) -> None:
    agent = Agent(data_dir, provider=ScriptedProvider.tool_loop(STEPS, "fetch"), tools=[fetch])
    assert agent.run("go", execution_id="origin").answer == "done"


def _same(a: list[Record], b: list[Record]) -> bool:
    """Two forks of the same step hold the same records (apart from the new id and the fork's time)."""
    if len(a) != len(b):
        return False
    first_a, first_b = a[0], b[0]
    assert isinstance(first_a, ExecutionStarted) and isinstance(first_b, ExecutionStarted)
    return msgspec.structs.replace(first_a, execution_id="", at=0.0) == msgspec.structs.replace(
        first_b, execution_id="", at=0.0
    ) and list(a[1:]) == list(b[1:])


@pytest.mark.parametrize("via", ["api", "cli"])
@pytest.mark.parametrize("point", ["write", "fsync", "link", "linked"])
def test_a_fork_killed_at_any_point_is_whole_or_absent_and_can_be_retried(tmp_path: Path, point: str, via: str) -> None:
    _origin(tmp_path)
    data = DataDir(tmp_path)
    reference = data.fork("origin", at=STEPS - 2, new_id="reference")
    expected = FileStore(tmp_path).read(reference).records
    child = subprocess.run(
        [sys.executable, WORKER, str(tmp_path), "origin", str(STEPS - 2), "f1", point, via],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert child.returncode == -signal.SIGKILL, child.stderr
    ids = DataDir(tmp_path).ids()
    if point == "linked":
        assert "f1" in ids  # named: the fork is whole
    else:
        assert "f1" not in ids  # not named: there is no fork at all, not a partial one
    if "f1" in ids:
        contents = FileStore(tmp_path).read("f1")
        assert contents.torn is None and _same(contents.records, expected)
        with pytest.raises(UsageError, match="exists already"):
            DataDir(tmp_path).fork("origin", at=STEPS - 2, new_id="f1")
    else:
        assert DataDir(tmp_path).fork("origin", at=STEPS - 2, new_id="f1") == "f1"  # the retry works
        assert _same(FileStore(tmp_path).read("f1").records, expected)
    leftovers = [p.name for p in (tmp_path / "executions").iterdir() if not p.name.endswith(".log")]
    assert leftovers == [] or point == "linked"  # a retry clears what a crash left; "linked" had no retry
    assert {s.id for s in DataDir(tmp_path).list(limit=None).items} >= {"origin", "f1"}


def test_an_unkilled_fork_through_the_worker_is_whole(tmp_path: Path) -> None:
    _origin(tmp_path)
    child = subprocess.run(
        [sys.executable, WORKER, str(tmp_path), "origin", "3", "f1", "none"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert child.returncode == 0, child.stderr
    assert fold(FileStore(tmp_path).read("f1").records).steps == 3


def test_runtime_recovery_leaves_forks_alone_until_a_process_takes_them_on(tmp_path: Path) -> None:
    _origin(tmp_path)
    fork = DataDir(tmp_path).fork("origin", at=2, new_id="fork")
    store = FileStore(tmp_path)
    before = store.read(fork).records
    state = fold(before)
    assert state.status.value == "running" and state.dormant
    agent = Agent(tmp_path, provider=ScriptedProvider.tool_loop(STEPS, "fetch"), tools=[fetch])
    with Runtime(tmp_path) as rt:
        rt.join(agent)
        rt.start()
        assert fork not in rt.recovered
    assert store.read(fork).records == before  # nothing ran, nothing was written
    # A resume after the copy means a process took the fork on; the origin's resumes that were copied do not.
    assert not fold([*before, ExecutionResumed(at=0.0, pid=1)]).dormant


def test_a_fork_a_process_was_advancing_when_it_died_is_recovered(tmp_path: Path) -> None:
    _origin(tmp_path)
    fork = DataDir(tmp_path).fork("origin", at=2, new_id="fork")
    script = (
        "import os, signal, sys\n"
        "from delite import Agent, ScriptedProvider, tool\n"
        "@tool\n"
        "def fetch(i: int) -> str:\n"
        "    '''Returns a large page.'''\n"
        "    os.kill(os.getpid(), signal.SIGKILL)  # dies inside the first body the resumed fork runs\n"
        "    return ''\n"
        f"Agent(sys.argv[1], provider=ScriptedProvider.tool_loop({STEPS}, 'fetch'), tools=[fetch]).resume('fork')\n"
    )
    child = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path)], capture_output=True, text=True, timeout=120, check=False
    )
    assert child.returncode == -signal.SIGKILL, child.stderr
    records = FileStore(tmp_path).read(fork).records
    assert not fold(records).dormant and any(isinstance(r, ToolStarted) for r in records[len(records) - 2 :])
    agent = Agent(tmp_path, provider=ScriptedProvider.tool_loop(STEPS, "fetch"), tools=[fetch])
    with Runtime(tmp_path) as rt:
        rt.join(agent)
        rt.start()
        assert fork in rt.recovered
        assert rt.wait(fork, timeout=60).answer == "done"
