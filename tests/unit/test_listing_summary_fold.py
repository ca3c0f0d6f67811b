"""The listing index derives its rows with the summary fold: the same summaries a full fold gives.

The summary fold leaves the conversation out, so the Runtime's recovery scan (which builds the index on a data
directory without one, as after a crash) reads each log for less; nothing a listing shows may change.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from delite import Agent, Runtime, ScriptedProvider, tool
from delite.log._reader import parse_log
from delite.state._fold import fold
from delite.store._derive import summary_of_state
from delite.store._file import FileStore

CRASH = r"""
import os, sys
from delite import Agent, ScriptedProvider, tool
data_dir, eid = sys.argv[1], sys.argv[2]

@tool
def noop(i: int) -> dict:
    "A trivial tool."
    if i == 3:
        os._exit(3)
    return {"ok": i}

with Agent(data_dir, provider=ScriptedProvider.tool_loop(5, "noop"), tools=[noop]) as agent:
    agent.run("crash at the fourth call", execution_id=eid)
"""


@tool
def noop(i: int) -> dict[str, int]:
    """A trivial tool."""
    return {"ok": i}


def _full_fold_summary(store: FileStore, eid: str) -> object:
    path = store.layout.log(eid)
    data = Path(path).read_bytes()
    records = parse_log(data, path=path).records
    return summary_of_state(eid, records, fold(records), log_bytes=len(data), torn=False)


def test_index_rows_equal_the_full_folds_and_a_runtime_recovers_without_an_index(tmp_path: Path) -> None:
    data = str(tmp_path / "data")
    with Agent(data, provider=ScriptedProvider.tool_loop(3, "noop"), tools=[noop]) as agent:
        assert agent.run("three steps", execution_id="done-1").status == "completed"
    done = subprocess.run([sys.executable, "-c", CRASH, data, "crashed-1"], check=False)
    assert done.returncode == 3
    store = FileStore(data)
    assert not os.path.exists(store.layout.index)  # no listing yet: the scan builds it

    listed = {s.id: s for s in store.list_executions(limit=None).items}
    assert {eid: s.status for eid, s in listed.items()} == {"done-1": "completed", "crashed-1": "running"}
    for eid, summary in listed.items():
        assert summary == _full_fold_summary(store, eid)
    assert [s.id for s in store.recoverable()] == ["crashed-1"]
    store.close()

    os.unlink(FileStore(data).layout.index)  # again from nothing, as after the crash
    rt = Runtime(data)
    Agent(data, runtime=rt, provider=ScriptedProvider.tool_loop(5, "noop"), tools=[noop])
    rt.start()
    try:
        assert rt.recovered == ["crashed-1"]  # the finished one is left alone
        assert rt.wait("crashed-1", timeout=60).status == "completed"
    finally:
        rt.close()


def test_a_log_only_the_summary_fold_refuses_is_still_listed(monkeypatch: pytest.MonkeyPatch) -> None:
    """Should the summary fold ever refuse a log the full fold accepts, the listing uses the full fold's state."""
    from delite.log.records import ExecutionStarted
    from delite.store import _derive

    def refusing(records: object) -> object:
        raise KeyError("summary only")

    monkeypatch.setattr(_derive, "fold_summary", refusing)
    state = _derive.fold_checked([ExecutionStarted(at=1.0, execution_id="e", input="hi")], summary=True)
    assert state.execution_id == "e" and state.input == "hi"
