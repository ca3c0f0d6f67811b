"""kill -9 the process hosting a Runtime with 20 executions in flight; a new Runtime finishes every one of them.

The kill lands once every execution has parked inside a tool body, each at a step of its own: no timing decides
where the executions are when the process dies.
"""

from __future__ import annotations

import collections
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

from delite.log import read_log
from delite.log.records import ToolFinished, ToolStarted

WORKER = str(Path(__file__).with_name("runtime_worker.py"))
N = 20
STEPS = 12


def park_at(execution_id: str) -> int:
    """Where the worker parks execution e<k> (runtime_worker.park_at)."""
    return int(execution_id[1:]) % STEPS


def lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def test_a_new_runtime_resumes_every_execution_a_killed_one_left(tmp_path: Path) -> None:
    host = subprocess.Popen(
        [sys.executable, WORKER, str(tmp_path), "start", str(N)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    ids = [f"e{i:02d}" for i in range(N)]
    logs = tmp_path / "executions"
    parked_path = tmp_path / "parked.txt"
    try:
        # The barrier: every execution has parked inside a tool body (each at its own step), so all N are
        # in flight when the process dies.
        deadline = time.monotonic() + 120
        while len(lines(parked_path)) < N and host.poll() is None and time.monotonic() < deadline:
            time.sleep(0.005)
        assert host.poll() is None, host.communicate()
        assert len(lines(parked_path)) == N, lines(parked_path)
        host.send_signal(signal.SIGKILL)
        _, err = host.communicate(timeout=30)
    finally:
        if host.poll() is None:
            host.kill()
            host.communicate()
    assert host.returncode == -signal.SIGKILL, err
    parked = dict(line.split() for line in lines(parked_path))
    assert sorted(parked) == ids
    before = {p.stem: read_log(str(p)).records for p in logs.glob("e*.log")}
    assert sorted(before) == ids
    done_before = {eid: {r.call_id for r in recs if isinstance(r, ToolFinished)} for eid, recs in before.items()}
    for eid in ids:  # each died exactly where it parked: its earlier calls done, the parked one in doubt
        assert len(done_before[eid]) == park_at(eid), (eid, done_before[eid])
        assert parked[eid] not in done_before[eid]
        assert any(isinstance(r, ToolStarted) and r.call_id == parked[eid] for r in before[eid])
    assert len(lines(tmp_path / "ledger.txt")) == sum(park_at(eid) for eid in ids)

    out = subprocess.run(
        [sys.executable, WORKER, str(tmp_path), "recover"], capture_output=True, text=True, timeout=180, check=False
    )
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert sorted(result["recovered"]) == ids
    # Each finished exactly as an uninterrupted run would: the same answer, every step's effect present.
    for eid in ids:
        assert result["answers"][eid] == ",".join(f"{eid}/{i}" for i in range(STEPS))
        records = read_log(str(logs / f"{eid}.log"))
        assert records.torn is None
    runs = collections.Counter(line.split()[0] for line in lines(tmp_path / "ledger.txt"))
    assert len(runs) == N * STEPS
    assert set(runs.values()) == {1}  # no side effect twice: the parked bodies died before theirs
    for eid in ids:
        attempts = [
            r.attempt for r in read_log(str(logs / f"{eid}.log")).records
            if isinstance(r, ToolStarted) and r.call_id == parked[eid]
        ]  # fmt: skip
        assert attempts == [1, 2], (eid, attempts)  # the call in doubt at the kill: retried once, same key
