"""Each suspension is started in one process and finished in another; races and kills use real processes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from delite.log import read_log
from delite.log.records import DecisionRecorded, ExecutionCancelled, ToolStarted

WORKER = str(Path(__file__).with_name("handoff_worker.py"))


def worker(data_dir: Path, scenario: str, *args: str, env: dict[str, str] | None = None) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, WORKER, str(data_dir), scenario, *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **(env or {})},
        check=False,
    )
    if out.returncode != 0:
        return {"returncode": out.returncode, "stderr": out.stderr}
    return json.loads(out.stdout.strip().splitlines()[-1])


def ledger(data_dir: Path) -> list[str]:
    path = data_dir / "ledger.txt"
    return path.read_text().splitlines() if path.exists() else []


def test_approval_in_another_process(tmp_path: Path) -> None:
    started = worker(tmp_path, "approval", "start", "e1")
    assert started["status"] == "waiting_approval" and started["ids"] == ["c1.0"]
    assert ledger(tmp_path) == []
    done = worker(tmp_path, "approval", "approve-all", "e1")
    assert done == {"status": "completed", "answer": "moved 5", "kind": None, "ids": [], "question": None}
    assert [line.split()[0] for line in ledger(tmp_path)] == ["transfer"]


def test_rejection_in_another_process(tmp_path: Path) -> None:
    worker(tmp_path, "approval", "start", "e1")
    done = worker(tmp_path, "approval", "reject-all", "e1", "too risky")
    assert done["answer"] == "Error: the call was rejected by a human: too risky"
    assert ledger(tmp_path) == []


def test_client_tool_in_another_process(tmp_path: Path) -> None:
    started = worker(tmp_path, "client", "start", "e1")
    assert started["status"] == "waiting_client_tool" and started["ids"] == ["c1.0"]
    bad = worker(tmp_path, "client", "tool-results", "e1", json.dumps({"c9.9": 1}))
    assert bad["error"] == "InvalidToolResultError" and bad["http"] == 400
    done = worker(tmp_path, "client", "tool-results", "e1", json.dumps({"c1.0": "42"}))
    assert done["answer"] == "42"


def test_human_input_in_another_process(tmp_path: Path) -> None:
    started = worker(tmp_path, "human", "start", "e1")
    assert started["status"] == "waiting_human_input" and started["question"] == "Which city?"
    wrong = worker(tmp_path, "human", "approve-all", "e1")
    assert wrong["error"] == "SuspendKindMismatchError" and wrong["http"] == 409
    assert worker(tmp_path, "human", "input", "e1", "Oslo")["answer"] == "city=Oslo"


def test_contract_override_in_another_process(tmp_path: Path) -> None:
    started = worker(tmp_path, "contract", "start", "e1")
    assert started["status"] == "suspended" and started["kind"] == "contract"
    assert ledger(tmp_path) == []
    assert worker(tmp_path, "contract", "approve-all", "e1")["answer"] == "charged 5000"
    assert [line.split()[0] for line in ledger(tmp_path)] == ["charge"]


def test_budget_raise_and_resume_in_another_process(tmp_path: Path) -> None:
    started = worker(tmp_path, "budget", "start", "e1", env={"DELITE_TEST_BUDGET": "2"})
    assert started["kind"] == "budget" and len(ledger(tmp_path)) == 2
    again = worker(tmp_path, "budget", "resume", "e1", env={"DELITE_TEST_BUDGET": "2"})
    assert again["kind"] == "budget" and len(ledger(tmp_path)) == 2
    done = worker(tmp_path, "budget", "resume", "e1", env={"DELITE_TEST_BUDGET": "10"})
    assert done["answer"] == "done"
    keys = [line.split()[1] for line in ledger(tmp_path)]
    assert len(keys) == 4 and len(set(keys)) == 4  # no paid work replayed


@pytest.mark.parametrize("trial", range(8))
def test_racing_approvals_exactly_one_wins(tmp_path: Path, trial: int) -> None:
    assert worker(tmp_path, "approval", "start", "e1")["status"] == "waiting_approval"
    go = tmp_path / "go"
    procs = [
        subprocess.Popen(
            [sys.executable, WORKER, str(tmp_path), "approval", "approve-all", "e1"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "DELITE_TEST_GO_FILE": str(go)},
        )
        for _ in range(4)
    ]
    for p in procs:  # the barrier: every racer has imported delite and built its agent
        assert p.stdout is not None
        line = p.stdout.readline()
        assert line == "ready\n", (line, p.stderr.read() if p.stderr else "")
    go.touch()
    results = []
    for p in procs:
        out, err = p.communicate(timeout=60)
        assert p.returncode == 0, err
        results.append(json.loads(out.strip().splitlines()[-1]))
    winners = [r for r in results if r.get("status") == "completed"]
    losers = [r for r in results if "error" in r]
    assert len(winners) == 1, results
    assert len(losers) == 3 and all(r["http"] == 409 for r in losers), results
    assert [line.split()[0] for line in ledger(tmp_path)] == ["transfer"]
    decisions = [
        r for r in read_log(str(tmp_path / "executions" / "e1.log")).records if isinstance(r, DecisionRecorded)
    ]
    assert len(decisions) == 1


@pytest.mark.parametrize("die", ["before", "after"])
def test_sigkill_between_decision_and_result(tmp_path: Path, die: str) -> None:
    worker(tmp_path, "approval", "start", "e1")
    killed = worker(tmp_path, "approval", "approve-all", "e1", env={"DELITE_TEST_DIE": die})
    assert killed["returncode"] == -signal.SIGKILL
    records = read_log(str(tmp_path / "executions" / "e1.log")).records
    assert any(isinstance(r, DecisionRecorded) and r.approved for r in records)  # the decision survived
    done = worker(tmp_path, "approval", "resume", "e1")
    assert done["status"] == "completed" and done["answer"] == "moved 5"  # no second approval asked
    lines = ledger(tmp_path)
    if die == "before":
        assert [line.split()[2] for line in lines] == ["2"]  # ran once, as the retry of the in-doubt call
    else:
        keys = {line.split()[1] for line in lines}
        assert len(lines) == 2 and len(keys) == 1  # in doubt: retried once with the same idempotency key


def test_cancel_while_running_from_another_process(tmp_path: Path) -> None:
    runner = subprocess.Popen(
        [sys.executable, WORKER, str(tmp_path), "slow", "start", "e1"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        # The barrier: the runner is held inside its fourth tool body (it wrote its ledger line, then waits for
        # the release file), so the cancel lands while the run is certainly in flight.
        deadline = time.monotonic() + 60
        while len(ledger(tmp_path)) < 4 and runner.poll() is None and time.monotonic() < deadline:
            time.sleep(0.005)
        assert len(ledger(tmp_path)) == 4, (ledger(tmp_path), runner.poll())
        cancelled = worker(tmp_path, "slow", "cancel", "e1")
        assert cancelled.get("status") == "running", cancelled  # the owner is alive: it stops at its next boundary
    finally:
        (tmp_path / "release").touch()
    out, err = runner.communicate(timeout=60)
    assert runner.returncode == 0, err
    assert json.loads(out.strip().splitlines()[-1])["status"] == "cancelled"
    records = read_log(str(tmp_path / "executions" / "e1.log")).records
    assert isinstance(records[-1], ExecutionCancelled)
    started = sum(isinstance(r, ToolStarted) for r in records)
    assert started == len(ledger(tmp_path)) == 4  # the held call finished; no further call started
    assert worker(tmp_path, "slow", "resume", "e1")["status"] == "cancelled"
    assert len(ledger(tmp_path)) == 4
