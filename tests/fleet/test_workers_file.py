"""Several ``delite worker`` processes sharing one data directory: real processes, real files, real signals.

Every tool body appends its idempotency key to a ledger (``fleet_agent``), so "exactly once" is counted on real
side effects: no completed call ever runs twice, whichever worker took the execution, died or drained.
"""

from __future__ import annotations

import collections
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from _fleet import HERE, Worker, ledger, lines, ran_twice, wait_until

sys.path.insert(0, str(HERE))

import fleet_agent

from delite import DataDir
from delite.log.records import ToolFinished, ToolStarted
from delite.store import FileStore

pytestmark = pytest.mark.timeout(300)


def statuses(data: Path, ids: list[str]) -> dict[str, str]:
    store = FileStore(data)
    return {eid: store.state(eid).status.value for eid in ids}


def all_completed(data: Path, ids: list[str]) -> bool:
    return set(statuses(data, ids).values()) == {"completed"}


def test_fifty_enqueued_executions_complete_exactly_once_on_three_workers(tmp_path: Path) -> None:
    data = tmp_path / "data"
    agent = fleet_agent.build(str(data))
    ids = [agent.enqueue(f"job {i}") for i in range(50)]
    assert set(statuses(data, ids).values()) == {"running"}  # durable, nobody advancing them
    workers = [Worker(str(data), concurrency=4) for _ in range(3)]
    try:
        wait_until(lambda: all_completed(data, ids), timeout=240, what="50 executions to complete")
    finally:
        codes = [w.finish() for w in workers]
    assert codes == [0, 0, 0], [w.err for w in workers]
    completed = [eid for w in workers for eid in w.took("completed")]
    assert sorted(completed) == sorted(ids)  # each completed by exactly one worker
    assert sum(1 for w in workers if w.took("completed")) >= 2  # the work was shared
    effects = ledger(data)
    assert len(effects) == 150 and ran_twice(data) == []  # three calls each, every one exactly once
    for w in workers:
        last = w.events[-1]
        assert last["event"] == "stopped" and last["exit_code"] == 0 and last["left"] == 0
    answers = {eid: agent.get(eid).answer for eid in ids}
    assert answers == {eid: f"done {i}" for i, eid in enumerate(ids)}


def test_a_sigkilled_workers_executions_finish_on_the_others(tmp_path: Path) -> None:
    data = tmp_path / "data"
    agent = fleet_agent.build(str(data))
    ids = [agent.enqueue(f"park {i}", execution_id=f"park-{i:02d}") for i in range(6)]
    doomed = Worker(str(data), concurrency=6, env={"FLEET_PARK": "1"})
    others: list[Worker] = []
    try:
        # The barrier: every execution is inside its first tool body in the doomed worker.
        wait_until(lambda: len(lines(data / "parked.txt")) == 6, timeout=60, what="all six to park")
        others = [Worker(str(data), concurrency=3) for _ in range(2)]
        doomed.kill()
        assert doomed.proc.returncode == -signal.SIGKILL
        wait_until(lambda: all_completed(data, ids), timeout=120, what="the others to finish them")
    finally:
        doomed.kill()
        codes = [w.finish() for w in others]
    assert codes == [0, 0], [w.err for w in others]
    assert sorted(doomed.took("taken")) == ids and doomed.took("completed") == []
    assert sorted(eid for w in others for eid in w.took("completed")) == ids
    assert ran_twice(data) == []
    effects = ledger(data)
    assert len(effects) == 12  # two calls per execution, each once
    assert {pid for _, _, pid in effects}.isdisjoint({doomed.pid})
    retried = [key for key, attempt, _ in effects if attempt == 2]
    assert len(retried) == 6  # the call each was in when its worker died ran again, with the same key
    for eid in ids:
        records = FileStore(data).read(eid).records
        started = [r for r in records if isinstance(r, ToolStarted)]
        finished = [r for r in records if isinstance(r, ToolFinished)]
        assert len(finished) == 2 and len({r.call_id for r in started}) == 2


def test_an_approval_recorded_by_the_cli_is_picked_up_by_a_worker(tmp_path: Path) -> None:
    data = tmp_path / "data"
    agent = fleet_agent.build(str(data))
    eid = agent.enqueue("pay 7")
    worker = Worker(str(data))
    try:
        wait_until(lambda: statuses(data, [eid])[eid] == "waiting_approval", what="the approval request")
        assert ledger(data) == []  # not paid before the approval
        decided = subprocess.run(
            [sys.executable, "-m", "delite_cli", "approve", eid, "--all", "--data-dir", str(data)],
            capture_output=True,
            text=True,
            env={k: v for k, v in os.environ.items() if k != "DELITE_AGENT"},
            check=False,
        )
        assert decided.returncode == 0, decided.stderr
        wait_until(lambda: statuses(data, [eid])[eid] == "completed", what="the worker to continue it")
    finally:
        code = worker.finish()
    assert code == 0, worker.err
    assert [e["event"] for e in worker.events if e.get("execution_id") == eid] == [
        "taken",
        "suspended",
        "taken",
        "completed",
    ]
    assert len(ledger(data)) == 1 and agent.get(eid).answer == "paid 7"


def test_sigterm_drains_the_step_in_flight_and_leaves_the_rest_for_another_worker(tmp_path: Path) -> None:
    data = tmp_path / "data"
    agent = fleet_agent.build(str(data))
    eid = agent.enqueue("slow 1")
    worker = Worker(str(data), env={"FLEET_SLOW": "1.5"})
    try:
        wait_until(lambda: len(lines(data / "slow.txt")) == 1, what="the slow call to start")
        worker.send(signal.SIGTERM)
        code = worker.finish(timeout=30)
    finally:
        worker.kill()
    assert code == 3, (worker.out, worker.err)  # drained, one execution left running for others
    events = [e["event"] for e in worker.events]
    assert events[0] == "started" and "draining" in events and events[-1] == "stopped"
    assert worker.took("left") == [eid]
    assert worker.events[-1]["left"] == 1 and worker.events[-1]["exit_code"] == 3
    store = FileStore(data)
    assert store.state(eid).status.value == "running" and not store.is_claimed(eid)  # claim released
    finished = [r for r in store.read(eid).records if isinstance(r, ToolFinished)]
    assert [r.result for r in finished] == ["slow 0"]  # the step in flight finished and was recorded
    assert len(ledger(data)) == 1
    assert [s.id for s in store.runnable(agent="fleet")] == [eid]
    second = Worker(str(data))
    try:
        wait_until(lambda: statuses(data, [eid])[eid] == "completed", what="another worker to finish it")
    finally:
        assert second.finish() == 0, second.err
    assert ran_twice(data) == [] and len(ledger(data)) == 2  # the slow call did not run again


def test_an_idle_worker_drains_at_once_with_exit_code_zero(tmp_path: Path) -> None:
    worker = Worker(str(tmp_path / "data"), poll=5)
    try:
        time.sleep(1.5)  # started, and waiting out its 5 s poll
        assert worker.proc.poll() is None
        code = worker.finish(signal.SIGINT, timeout=4)  # wakes at once: no waiting out the poll
    finally:
        worker.kill()
    assert code == 0, worker.err
    assert [e["event"] for e in worker.events] == ["started", "draining", "stopped"]


def test_a_worker_never_starts_a_waiting_suspension_a_fork_or_another_agents_execution(tmp_path: Path) -> None:
    data = tmp_path / "data"
    agent = fleet_agent.build(str(data))
    other = fleet_agent.build_other(str(data))
    theirs = other.enqueue("job 1")
    waiting = agent.run("pay 3").execution_id  # suspended for an approval nobody gave
    done = agent.run("job 2").execution_id
    fork = DataDir(data).fork(done, at=1)
    before = {eid: FileStore(data).head(eid) for eid in (theirs, waiting, fork)}
    effects_before = len(ledger(data))
    sentinel = agent.enqueue("job 3")
    worker = Worker(str(data), poll=0.1)
    try:
        wait_until(lambda: statuses(data, [sentinel])[sentinel] == "completed", what="the sentinel")
        time.sleep(1.0)  # ten more polls
    finally:
        code = worker.finish()
    assert code == 0, worker.err
    assert worker.took("taken") == [sentinel]
    after = {eid: FileStore(data).head(eid) for eid in (theirs, waiting, fork)}
    assert after == before  # not a record written to any of them
    assert len(ledger(data)) == effects_before + 3
    assert statuses(data, [theirs, waiting, fork]) == {
        theirs: "running",
        waiting: "waiting_approval",
        fork: "running",
    }
    served = collections.Counter(e["agent_id"] for e in worker.events if "agent_id" in e)
    assert set(served) == {"fleet"}
