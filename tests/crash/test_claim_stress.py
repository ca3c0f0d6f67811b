"""Eight processes contend for the same executions for many rounds: never two owners, no lost wake-ups."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from delite.log import read_log
from delite.log.records import ExecutionResumed, ExecutionStarted, ExecutionSuspended
from delite.store import FileStore

WORKER = str(Path(__file__).with_name("claim_worker.py"))
PROCESSES = 8
ROUNDS = 150
IDS = ["e1", "e2", "e3"]


def test_eight_processes_contend_for_three_executions(tmp_path: Path) -> None:
    store = FileStore(tmp_path)
    for eid in IDS:
        store.claim(eid, create=[ExecutionStarted(execution_id=eid, input="x")]).release()
        (tmp_path / f"counter-{eid}").write_text("0")
    go = tmp_path / "go"
    procs = [
        subprocess.Popen(
            [sys.executable, WORKER, str(tmp_path), str(go), str(ROUNDS), *IDS],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(PROCESSES)
    ]
    for p in procs:  # the barrier: every worker has imported delite and built its store before any claims
        assert p.stdout is not None
        line = p.stdout.readline()
        assert line == "ready\n", (line, p.stderr.read() if p.stderr else "")
    go.touch()
    reports = []
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
        reports.append(json.loads(out.strip().splitlines()[-1]))
    assert [b for r in reports for b in r["breaches"]] == []
    # Every round of every process either owned an execution or found it busy when it only tried: nobody
    # waited forever for a claim that had been released.
    assert all(sum(r["claims"].values()) + r["busy"] == ROUNDS for r in reports)
    for eid in IDS:
        claims = sum(r["claims"][eid] for r in reports)
        assert claims > 0
        # No update lost: the read-modify-write counter saw every owner one after another.
        assert (tmp_path / f"counter-{eid}").read_text() == str(claims)
        contents = read_log(str(tmp_path / "executions" / f"{eid}.log"))
        assert contents.torn is None
        records = contents.records[1:]
        assert len(records) == 2 * claims
        # Each owner's two records are adjacent: no two owners ever appended in between each other.
        for first, second in zip(records[::2], records[1::2], strict=True):
            assert isinstance(first, ExecutionResumed)
            assert isinstance(second, ExecutionSuspended)
            assert second.reason.message == str(first.pid)
        assert not store.is_claimed(eid)
        assert not (tmp_path / f"inside-{eid}").exists()
