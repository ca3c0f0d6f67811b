"""A crash while a log is being created leaves it without its first record; the execution can still start.

Found by the crash torture (benchmarks/torture.py): a worker killed inside the creating write left an empty
or header-only log, after which ``run`` with that id refused ("started with another input") and ``resume``
appended records to a file without a header.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from delite import Agent, ScriptedProvider, tool
from delite.errors import ExecutionNotFoundError
from delite.log import Durability, LogWriter, read_log
from delite.log._codec import encode_record
from delite.log._framing import HEADER, encode_frame
from delite.log.records import ExecutionStarted, ToolStarted

TEXT = "go"


@tool
def step(i: int) -> str:
    """One step."""
    return f"s{i}"


def make_agent(data_dir: Path) -> Agent:
    return Agent(data_dir, provider=ScriptedProvider.tool_loop(2, "step"), tools=[step])


def first_write() -> bytes:
    """What creating a log writes in one go: the header and the ``execution-started`` record."""
    return HEADER + encode_frame(encode_record(ExecutionStarted(at=1.0, execution_id="e", input=TEXT)))


@pytest.mark.parametrize("durability", ["full", "off"])
def test_every_cut_of_the_creating_write_can_be_started(tmp_path: Path, durability: str) -> None:
    data = first_write()
    for cut in range(len(data)):
        data_dir = tmp_path / f"{durability}-{cut}"
        (data_dir / "executions").mkdir(parents=True)
        log = data_dir / "executions" / "e.log"
        log.write_bytes(data[:cut])
        agent = Agent(data_dir, provider=ScriptedProvider.tool_loop(2, "step"), tools=[step], durability=durability)
        with pytest.raises(ExecutionNotFoundError):
            agent.resume("e")  # never started: nothing to resume, and nothing written
        assert log.read_bytes() == data[:cut]
        response = agent.run(TEXT, execution_id="e")
        assert response.status == "completed"
        assert response.answer == "done"
        contents = read_log(str(log))
        assert contents.torn is None
        assert isinstance(contents.records[0], ExecutionStarted)
        assert contents.records[0].input == TEXT
        assert agent.run(TEXT, execution_id="e").answer == "done"  # and it replays as usual


def test_reopening_an_empty_log_writes_its_header(tmp_path: Path) -> None:
    path = tmp_path / "x.log"
    path.write_bytes(b"")
    writer = LogWriter.open(str(path), 0, Durability.FULL)
    assert writer.size == len(HEADER)
    writer.append([ToolStarted(call_id="c")])
    writer.close()
    assert read_log(str(path)).records == [ToolStarted(call_id="c")]
    assert os.path.getsize(path) == len(HEADER) + len(encode_frame(encode_record(ToolStarted(call_id="c"))))


def test_a_started_log_is_left_alone(tmp_path: Path) -> None:
    agent = make_agent(tmp_path)
    first = agent.run(TEXT, execution_id="e")
    size = (tmp_path / "executions" / "e.log").stat().st_size
    assert agent.run(TEXT, execution_id="e").answer == first.answer
    assert (tmp_path / "executions" / "e.log").stat().st_size == size
