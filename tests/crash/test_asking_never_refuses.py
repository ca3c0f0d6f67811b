"""Asking whether an execution is claimed never makes a claim fail (a 409 only when a claimant holds it).

``rt.wait`` polls ``is_claimed``, a Runtime's recovery and every worker ask ``recoverable()``, ``delite status``
and ``delite serve`` list claims: if asking took the claim lock for an instant, a process claiming at that
instant got ``ExecutionAlreadyClaimedError`` for an execution nobody was advancing (a resumed run reported as
"another process advances it", and left unadvanced). Here other processes ask in a tight loop while this one
claims and releases over and over, on each store: not one claim is refused. A real claimant is still refused
at once, and still seen by the askers.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from delite.errors import ExecutionAlreadyClaimedError
from delite.log.records import ExecutionStarted
from delite.store import Store, open_store

PROBER = str(Path(__file__).with_name("probe_worker.py"))
IDS = ["e1", "e2"]
ROUNDS = 400


def _probers(where: str, stop: Path, n: int) -> list[subprocess.Popen[str]]:
    procs = [
        subprocess.Popen(
            [sys.executable, PROBER, where, str(stop), *IDS], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for _ in range(n)
    ]
    for p in procs:
        assert p.stdout is not None
        line = p.stdout.readline()
        assert line == "ready\n", (line, p.stderr.read() if p.stderr else "")
    return procs


@pytest.fixture
def opened() -> Any:
    """Open stores at a place, closed after the test (a PostgreSQL store holds connections)."""
    stores: list[Store] = []

    def open_at(where: str) -> Store:
        stores.append(open_store(where))
        return stores[-1]

    yield open_at
    for store in stores:
        store.close()


def test_claims_are_never_refused_because_someone_asked(any_data_dir: Any, tmp_path: Path, opened: Any) -> None:
    where = str(any_data_dir)
    store = opened(where)
    for eid in IDS:
        store.claim(eid, create=[ExecutionStarted(execution_id=eid, input="x")]).release()
    stop = tmp_path / "stop"
    procs = _probers(where, stop, 2)
    refused = 0
    try:
        for i in range(ROUNDS):
            try:
                store.claim(IDS[i % 2]).release()
            except ExecutionAlreadyClaimedError:
                refused += 1
    finally:
        stop.touch()
        asked = [int(p.communicate(timeout=60)[0].split()[-1]) for p in procs]
    assert all(p.returncode == 0 for p in procs)
    assert min(asked) > 0  # the askers really asked while the claims went on
    assert refused == 0


def test_a_real_claimant_is_still_refused_at_once_and_seen(any_data_dir: Any, tmp_path: Path, opened: Any) -> None:
    where = str(any_data_dir)
    store, other = opened(where), opened(where)
    with store.claim("e1", create=[ExecutionStarted(execution_id="e1", input="x")]):
        stop = tmp_path / "stop"
        procs = _probers(where, stop, 1)
        try:
            started = time.monotonic()
            with pytest.raises(ExecutionAlreadyClaimedError):
                other.claim("e1")
            assert time.monotonic() - started < 5  # refused, not waited out (only probers are retried)
            assert other.is_claimed("e1")
        finally:
            stop.touch()
            procs[0].communicate(timeout=60)
    assert not other.is_claimed("e1")
    other.claim("e1").release()
