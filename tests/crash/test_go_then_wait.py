"""After a SIGKILL right after ``rt.go()``, the next Runtime's ``wait(id)`` resumes the run and returns its end.

The natural shape (``with Runtime(...) as rt``, the agent joins, ``rt.wait(eid)``) never calls ``start()``:
waiting on an execution a dead process left running, of an agent that joined, starts the runtime, whose
recovery resumes it; ``wait`` never returns a ``running`` response for it.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

from delite import Agent, Runtime, ScriptedProvider, Status

WORKER = str(Path(__file__).with_name("go_worker.py"))


def _killed_after_go(data_dir: Path) -> str:
    child = subprocess.Popen(
        [sys.executable, WORKER, str(data_dir), "hang"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    assert child.stdout is not None
    eid = child.stdout.readline().strip()  # go() has returned
    child.send_signal(signal.SIGKILL)
    _, err = child.communicate(timeout=30)
    assert child.returncode == -signal.SIGKILL and eid, err
    return eid


def test_wait_on_a_run_a_dead_process_left_resumes_it(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    eid = _killed_after_go(data_dir)
    with Runtime(data_dir) as rt:
        Agent(data_dir, runtime=rt, agent_id="waiter", provider=ScriptedProvider(["answered"]))
        response = rt.wait(eid, timeout=60)
        assert rt.recovered == [eid]
    assert response.status is Status.COMPLETED and response.answer == "answered"


def test_wait_without_the_agent_or_with_recovery_off_only_reads(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    eid = _killed_after_go(data_dir)
    with Runtime(data_dir) as rt:  # no agent of that id joined: nothing here can resume it
        assert rt.wait(eid, timeout=60).status is Status.RUNNING and rt.recovered == []
    with Runtime(data_dir, recover=False) as rt:
        Agent(data_dir, runtime=rt, agent_id="waiter", provider=ScriptedProvider(["answered"]))
        assert rt.wait(eid, timeout=60).status is Status.RUNNING and rt.recovered == []
    with Runtime(data_dir) as rt:  # and a later runtime with the agent still resumes it
        Agent(data_dir, runtime=rt, agent_id="waiter", provider=ScriptedProvider(["answered"]))
        assert rt.wait(eid, timeout=60).answer == "answered"
