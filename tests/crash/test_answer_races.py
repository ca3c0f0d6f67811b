"""A pending call takes exactly one answer, whatever races for it: real processes, every kind of answer.

Each race lines up several worker processes (``answer_worker.py``) on one suspended execution; every one
has imported delite and built its agent before any acts (each says so with a ready file, then waits for the
go file). Exactly one answer is recorded; every other racer gets a 409 that is an ``ExecutionStateError``,
whether it came through the API (recording only, or continuing the run), the Runtime or the ``delite``
command; the run then continues on the winner's answer alone.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from delite.log import read_log
from delite.log.records import DecisionRecorded, InDoubtResolved, InputSubmitted, Record, ToolFinished

HERE = Path(__file__).resolve().parent
WORKER = str(HERE / "answer_worker.py")
STATE_ERRORS = {
    "AlreadyDecidedError",
    "ExecutionIdConflictError",
    "ExecutionAlreadyClaimedError",
    "ExecutionAlreadyTerminalError",
    "ExecutionNotSuspendedError",
    "SuspendKindMismatchError",
}


def worker(data: Path, scenario: str, *args: str, env: dict[str, str] | None = None) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, WORKER, str(data), scenario, *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **(env or {})},
        check=False,
    )
    if out.returncode != 0:
        return {"returncode": out.returncode, "stderr": out.stderr}
    return json.loads(out.stdout.strip().splitlines()[-1])


def suspended(data: Path, scenario: str) -> None:
    """Start execution e1 and leave it waiting (an in-doubt call: the first process dies inside ``pay``)."""
    if scenario == "doubt":
        assert worker(data, scenario, "start", "e1", env={"DELITE_TEST_DIE": "1"})["returncode"] < 0
        started = worker(data, scenario, "resume", "e1")
    else:
        started = worker(data, scenario, "start", "e1")
    assert started["ids"] == ["c1.0"], started


def race(data: Path, racers: list[tuple[str, list[str], dict[str, str]]]) -> list[dict[str, Any]]:
    """Run the racers together; each result is its JSON line, or for the CLI its exit code and stderr."""
    go = data / "go"
    procs = []
    for scenario, args, env in racers:
        procs.append(
            subprocess.Popen(
                [sys.executable, WORKER, str(data), scenario, *args],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                cwd=HERE,
                env={**os.environ, **env, "DELITE_TEST_GO_FILE": str(go)},
            )
        )
    deadline = time.monotonic() + 120
    while len(list(data.glob("go.*.ready"))) < len(procs):
        assert time.monotonic() < deadline, "the racers never got ready"
        assert all(p.poll() is None for p in procs), [p.communicate() for p in procs if p.poll() is not None]
        time.sleep(0.01)
    go.touch()
    results = []
    for (_, args, _), p in zip(racers, procs, strict=True):
        out, err = p.communicate(timeout=120)
        if args[0] == "cli":
            results.append({"cli": p.returncode, "stdout": out, "stderr": err})
        else:
            assert p.returncode == 0, err
            results.append(json.loads(out.strip().splitlines()[-1]))
    for ready in data.glob("go*"):
        ready.unlink()
    return results


def won(result: dict[str, Any]) -> bool:
    return result.get("cli") == 0 or "status" in result


def assert_lost(result: dict[str, Any]) -> None:
    """A loser got a 409 ExecutionStateError: from the API, or as the CLI's exit 1 with its JSON error."""
    if "cli" in result:
        assert result["cli"] == 1, result
        error = json.loads(result["stderr"])["error"]
        assert error["type"] in STATE_ERRORS, result
    else:
        assert result["http"] == 409 and result["state"] is True and result["error"] in STATE_ERRORS, result


def answers(data: Path, kind: type[Record] | tuple[type[Record], ...]) -> list[Record]:
    records = read_log(str(data / "executions" / "e1.log")).records
    return [r for r in records if isinstance(r, kind) and getattr(r, "call_id", None) == "c1.0"]


def one_winner(results: list[dict[str, Any]]) -> int:
    winners = [i for i, r in enumerate(results) if won(r)]
    assert len(winners) == 1, results
    for i, r in enumerate(results):
        if i != winners[0]:
            assert_lost(r)
    return winners[0]


ANSWERS: dict[str, tuple[list[list[str]], Any]] = {
    "approval": ([["approve", "e1"], ["reject", "e1"], ["approve", "e1"], ["reject", "e1"]], DecisionRecorded),
    "client": ([["results", "e1", json.dumps(f"v{i}")] for i in range(4)], ToolFinished),
    "human": ([["input", "e1", f"city {i}"] for i in range(4)], InputSubmitted),
    "doubt": (
        [
            ["resolve", "e1", "result", '"sent"'],
            ["resolve", "e1", "error", "not sent"],
            ["resolve", "e1", "rerun"],
            ["resolve", "e1", "result", '"sent twice"'],
        ],
        (ToolFinished, InDoubtResolved),
    ),
}
EXPECTED = {  # the run's answer once continued, by the winning racer's index
    "approval": [
        "moved 5",
        "Error: the call was rejected by a human",
        "moved 5",
        "Error: the call was rejected by a human",
    ],
    "client": ["v0", "v1", "v2", "v3"],
    "human": ["city 0", "city 1", "city 2", "city 3"],
    "doubt": ["sent", "Error: not sent", "paid 5", "sent twice"],
}


@pytest.mark.parametrize("scenario", list(ANSWERS))
@pytest.mark.parametrize("trial", range(2))
def test_racing_recorded_answers_record_exactly_one(tmp_path: Path, scenario: str, trial: int) -> None:
    """The record-only path (the API with advance=False, as the CLI without --agent): one answer recorded.

    Every racer retries while another holds the execution, so each one gets to look at the log after the
    winner wrote to it: all of them must find the answer there.
    """
    suspended(tmp_path, scenario)
    commands, kind = ANSWERS[scenario]
    env = {"DELITE_TEST_VIA": "record", "DELITE_TEST_RETRY_BUSY": "1"}
    results = race(tmp_path, [(scenario, args, env) for args in commands])
    winner = one_winner(results)
    assert all(r["error"] == "AlreadyDecidedError" for r in results if "error" in r), results  # none was let in
    assert len(answers(tmp_path, kind)) == 1
    done = worker(tmp_path, scenario, "resume", "e1")
    assert done["status"] == "completed" and done["answer"] == EXPECTED[scenario][winner], (winner, done)
    ledger = tmp_path / "ledger.txt"
    ran = ledger.read_text().splitlines() if ledger.exists() else []
    assert len(ran) == (1 if done["answer"] in ("moved 5", "paid 5") else 0)


@pytest.mark.parametrize("scenario", ["client", "human", "doubt"])
def test_racing_answers_that_continue_the_run(tmp_path: Path, scenario: str) -> None:
    """Through the API continuing the run: the winner completes it, every loser gets a 409."""
    suspended(tmp_path, scenario)
    commands, kind = ANSWERS[scenario]
    env = {"DELITE_TEST_VIA": "advance", "DELITE_TEST_RETRY_BUSY": "1"}
    results = race(tmp_path, [(scenario, args, env) for args in commands])
    winner = one_winner(results)
    assert results[winner]["status"] == "completed"
    assert results[winner]["answer"] == EXPECTED[scenario][winner]
    assert len(answers(tmp_path, kind)) == (2 if scenario == "doubt" and winner == 2 else 1)  # rerun: then a result


@pytest.mark.parametrize("scenario", ["approval", "client", "doubt"])
def test_racing_runtimes(tmp_path: Path, scenario: str) -> None:
    """Runtime.signal / submit_tool_results / resolve: each records, then resumes in the background."""
    suspended(tmp_path, scenario)
    commands, kind = ANSWERS[scenario]
    results = race(tmp_path, [(scenario, args, {"DELITE_TEST_VIA": "runtime"}) for args in commands])
    winner = one_winner(results)
    assert results[winner]["status"] == "completed", results
    assert results[winner]["answer"] == EXPECTED[scenario][winner]
    records = read_log(str(tmp_path / "executions" / "e1.log")).records
    kinds = kind if isinstance(kind, tuple) else (kind,)
    assert sum(isinstance(r, kinds[0]) and r.call_id == "c1.0" for r in records) == 1


@pytest.mark.parametrize("scenario", ["approval", "client", "human", "doubt"])
def test_the_cli_racing_the_api(tmp_path: Path, scenario: str) -> None:
    """Two ``delite`` commands (recording only) against two API callers continuing the run: one winner."""
    suspended(tmp_path, scenario)
    data = str(tmp_path)
    cli: dict[str, list[str]] = {
        "approval": ["approve", "e1", "--all"],
        "client": ["submit-tool-results", "e1", str(tmp_path / "results.json")],
        "human": ["submit-input", "e1", "from the terminal"],
        "doubt": ["resolve", "e1", "c1.0", "--error", "not sent"],
    }
    (tmp_path / "results.json").write_text(json.dumps({"c1.0": "from the terminal"}))
    commands, kind = ANSWERS[scenario]
    racers = [(scenario, ["cli", *cli[scenario], "--data-dir", data, "--json"], {}) for _ in range(2)]
    racers += [(scenario, args, {"DELITE_TEST_VIA": "advance"}) for args in commands[:2]]
    results = race(tmp_path, racers)
    winner = one_winner(results)
    if winner < 2:
        assert json.loads(results[winner]["stdout"])["advanced"] is False
        done = worker(tmp_path, scenario, "resume", "e1")
        assert done["status"] == "completed"
    else:
        assert results[winner]["status"] == "completed"
    kinds = kind if isinstance(kind, tuple) else (kind,)
    records = read_log(str(tmp_path / "executions" / "e1.log")).records
    assert sum(isinstance(r, kinds[0]) and r.call_id == "c1.0" for r in records) == 1


def test_racing_starts_of_one_id_with_different_inputs(tmp_path: Path) -> None:
    """Four processes start execution e1, each with its own input: one starts it, the others get a 409."""
    results = race(tmp_path, [("approval", ["start", "e1", f"input {i}"], {}) for i in range(4)])
    winner = one_winner(results)
    assert results[winner]["status"] == "waiting_approval"
    losers = [r["error"] for i, r in enumerate(results) if i != winner]
    assert set(losers) <= {"ExecutionIdConflictError", "ExecutionAlreadyClaimedError"}, results
    started = worker(tmp_path, "approval", "start", "e1", f"input {winner}")
    assert started["status"] == "waiting_approval"  # the winner's input continues it
