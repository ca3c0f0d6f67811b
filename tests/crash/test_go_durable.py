"""``rt.go()`` is durable before it returns, and a process that exits with runs in flight says so.

A real child process calls ``go()`` with a model that never answers, prints the id once ``go()`` returned,
and is killed with SIGKILL on reading it: the execution's start must be on disk and a new Runtime on the
same data directory must resume and finish it.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from delite import Agent, DataDir, Runtime, ScriptedProvider, Status
from delite.errors import UsageError
from delite.log import read_log
from delite.log.records import ExecutionResumed, ExecutionStarted

WORKER = str(Path(__file__).with_name("go_worker.py"))


def run_worker(data_dir: Path, mode: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, WORKER, str(data_dir), mode], capture_output=True, text=True, timeout=60, check=False
    )


def test_sigkill_right_after_go_returns_loses_nothing_and_the_next_runtime_resumes(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    child = subprocess.Popen(
        [sys.executable, WORKER, str(data_dir), "hang"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    assert child.stdout is not None
    eid = child.stdout.readline().strip()  # go() has returned
    child.send_signal(signal.SIGKILL)
    _, err = child.communicate(timeout=30)
    assert child.returncode == -signal.SIGKILL, err
    assert eid, err

    records = read_log(str(data_dir / "executions" / f"{eid}.log")).records
    assert isinstance(records[0], ExecutionStarted)
    assert records[0].input == "answer me" and records[0].agent_id == "waiter"

    with Runtime(data_dir) as rt:
        agent = Agent(data_dir, runtime=rt, agent_id="waiter", provider=ScriptedProvider(["answered"]))
        rt.start()
        assert rt.recovered == [eid]
        response = rt.wait(eid, timeout=60)
    assert response.status is Status.COMPLETED and response.answer == "answered"
    assert agent.get(eid).resumes == 1
    assert any(isinstance(r, ExecutionResumed) for r in read_log(str(data_dir / "executions" / f"{eid}.log")).records)


def test_every_log_exists_when_go_returns(data_dir: Path) -> None:
    release = threading.Event()

    def model(messages: list[dict[str, Any]], tools: list[dict[str, Any]], model: str | None) -> Any:
        release.wait(60)
        return {"content": "late"}

    with Runtime(data_dir, workers=4) as rt:
        agent = Agent(data_dir, runtime=rt, agent_id="slow", provider=model)
        ids = []
        for i in range(20):
            eid = rt.go(agent, f"task {i}", metadata={"i": i})
            records = agent.store.read(eid).records  # before any model call could have answered
            assert isinstance(records[0], ExecutionStarted) and records[0].metadata == {"i": i}
            ids.append(eid)
        release.set()
        assert [rt.wait(eid, timeout=60).answer for eid in ids] == ["late"] * 20
        assert [agent.get(eid).resumes for eid in ids] == [0] * 20  # the start made in go() is not a resume


def test_go_raises_on_bad_arguments_before_writing_anything(data_dir: Path) -> None:
    with Runtime(data_dir) as rt:
        agent = Agent(data_dir, runtime=rt, agent_id="no-model")
        with pytest.raises(UsageError, match="no model provider"):
            rt.go(agent, "x")
        with pytest.raises(TypeError):
            rt.go(agent, "x", colour="red")
        assert rt.running == 0
    assert DataDir(data_dir).list().items == []


def test_exit_with_runs_in_flight_warns_once_and_the_start_is_on_disk(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    out = run_worker(data_dir, "exit")
    assert out.returncode == 0, out.stderr
    eid = out.stdout.strip()
    lines = [line for line in out.stderr.splitlines() if line.startswith("delite:")]
    assert len(lines) == 1, out.stderr
    assert "1 execution in flight" in lines[0] and "the next Runtime on that data directory resumes it" in lines[0]
    assert str(data_dir) in lines[0]
    assert isinstance(read_log(str(data_dir / "executions" / f"{eid}.log")).records[0], ExecutionStarted)


def test_exit_warning_says_a_memory_store_loses_them(tmp_path: Path) -> None:
    out = run_worker(tmp_path / "data", "memory")
    assert out.returncode == 0, out.stderr
    assert "1 execution in flight" in out.stderr and "lost with this process" in out.stderr


def test_no_warning_when_the_runs_finished(tmp_path: Path) -> None:
    out = run_worker(tmp_path / "data", "clean")
    assert out.returncode == 0, out.stderr
    assert "delite:" not in out.stderr


def test_the_claim_taken_in_go_is_released_however_the_run_ends(data_dir: Path) -> None:
    from delite.engine._begin import begin
    from delite.errors import ProviderError

    def broken(messages: list[dict[str, Any]], tools: list[dict[str, Any]], model: str | None) -> Any:
        raise ProviderError("the model is down", retryable=False)

    with Runtime(data_dir) as rt:
        ok = Agent(data_dir, runtime=rt, agent_id="ok", provider=ScriptedProvider(["fine"]))
        bad = Agent(data_dir, runtime=rt, agent_id="bad", provider=broken)
        done, failed = rt.go(ok, "x"), rt.go(bad, "y")
        assert rt.wait(done, timeout=60).answer == "fine"
        with pytest.raises(ProviderError, match="the model is down"):
            rt.wait(failed, timeout=60)
        for eid in (done, failed):
            assert not ok.store.is_claimed(eid)
            ok.store.claim(eid).release()  # nobody holds it

    # Begun by hand and abandoned (go() does this when the runtime shut down meanwhile): written, released.
    agent = Agent(data_dir, agent_id="left", provider=ScriptedProvider(["later"]))
    started = begin(agent._start("z", execution_id="left-1", history=None, metadata=None, model=None,
                                 idempotency_key=None, output_type=None))  # fmt: skip
    assert agent.store.is_claimed("left-1")
    started.abandon()
    assert not agent.store.is_claimed("left-1")
    assert agent.resume("left-1").answer == "later"
