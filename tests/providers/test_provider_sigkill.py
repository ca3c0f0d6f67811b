"""The agent process is SIGKILLed mid-stream, with the fake server in a process of its own; a new process
resumes the execution by id and gets the next turn. Nothing half-streamed was recorded; the tool ran once."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fakellm import Call, FakeLLMProcess, Fault, Script, Turn
from providerkit import APIS, base_url

from delite.log import read_log
from delite.log.records import ModelResponded, ToolFinished

WORKER = str(Path(__file__).with_name("stream_worker.py"))
STALL_AFTER = 2
ANSWER = "It is 18C and sunny in Paris, a fine day for a walk along the river."
SCRIPT = Script(
    turns=[
        Turn(calls=[Call(name="get_weather", arguments={"city": "Paris"})]),
        # The first request for the answer sends two events and then stalls (far longer than the test), so the
        # kill lands in the middle of the stream however slow the machine is.
        Turn(text=ANSWER, faults=[Fault(kind="stall", after=STALL_AFTER, seconds=120)]),
    ]
)


@pytest.fixture(scope="module")
def server_process() -> Iterator[FakeLLMProcess]:
    server = FakeLLMProcess()
    yield server
    server.stop()


def worker(api: str, server: FakeLLMProcess, data_dir: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, WORKER, api, base_url(server, api), str(data_dir), "killed"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.mark.parametrize("api", APIS)
def test_sigkill_mid_stream_then_resume(server_process: FakeLLMProcess, tmp_path: Path, api: str) -> None:
    server_process.load(SCRIPT)
    first = worker(api, server_process, tmp_path)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            streaming = [r for r in server_process.requests if r["turn"] == 1 and r["events_sent"] >= STALL_AFTER]
            if streaming or first.poll() is not None:
                break
            time.sleep(0.02)
        assert first.poll() is None, first.communicate()
        assert streaming, "the answer never started streaming"
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=10)
    finally:
        if first.poll() is None:
            first.kill()
        first.communicate()
    assert first.returncode == -signal.SIGKILL

    log_path = tmp_path / "executions" / "killed.log"
    before = read_log(str(log_path)).records
    assert [r.step for r in before if isinstance(r, ModelResponded)] == [1]  # the half-streamed turn is not there
    assert sum(isinstance(r, ToolFinished) for r in before) == 1

    second = worker(api, server_process, tmp_path)
    out, err = second.communicate(timeout=60)
    assert second.returncode == 0, err
    lines = [json.loads(line) for line in out.splitlines()]
    assert lines[-1] == {"answer": ANSWER, "status": "completed"}
    assert "".join(line["chunk"] for line in lines[:-1]) == ANSWER  # the resumed process streamed the next turn

    after = read_log(str(log_path)).records
    turns = [r for r in after if isinstance(r, ModelResponded)]
    assert [(t.step, t.content) for t in turns] == [(1, None), (2, ANSWER)]
    assert (tmp_path / "ledger.txt").read_text().splitlines() == ["killed:c1.0"]  # the tool ran once
    answer_requests = [r for r in server_process.requests if r["turn"] == 1]
    assert [r["fault"] for r in answer_requests] == ["stall", None]
    assert answer_requests[0]["outcome"] != "complete" and answer_requests[1]["outcome"] == "complete"
