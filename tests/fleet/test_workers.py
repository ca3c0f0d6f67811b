"""Several ``delite worker`` processes sharing one store: real processes, real signals, real side effects.

Each test runs on a data directory (several processes on one machine) and on PostgreSQL (a throwaway cluster
from the ``pg_url`` fixture; skipped with the reason where no server binaries exist). Every tool body appends
its idempotency key to a ledger (``fleet_agent``), so "exactly once" is counted on real side effects: no
completed call ever runs twice, whichever worker took the execution, died or drained.
"""

from __future__ import annotations

import collections
import json
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from _fleet import HERE, Place, Worker, ledger, lines, ran_twice, wait_until

sys.path.insert(0, str(HERE))

import fleet_agent

from delite import DataDir
from delite.log.records import ToolFinished, ToolStarted

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(params=["file", "pg"])
def place(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Place]:
    if request.param == "pg":
        where = Place("pg", request.getfixturevalue("pg_url"), tmp_path / "files")
    else:
        where = Place("file", str(tmp_path / "data"), tmp_path / "data")
    monkeypatch.setenv("FLEET_FILES", str(where.files))
    yield where
    where.close()


def test_fifty_enqueued_executions_complete_exactly_once_on_three_workers(place: Place) -> None:
    agent = place.agent(fleet_agent.build)
    ids = [agent.enqueue(f"job {i}") for i in range(50)]
    assert set(place.statuses(ids).values()) == {"running"}  # durable, nobody advancing them
    workers = [Worker(place, concurrency=4) for _ in range(3)]
    try:
        wait_until(lambda: place.all_completed(ids), timeout=240, what="50 executions to complete")
    finally:
        codes = [w.finish() for w in workers]
    assert codes == [0, 0, 0], [w.err for w in workers]
    completed = [eid for w in workers for eid in w.took("completed")]
    assert sorted(completed) == sorted(ids)  # each completed by exactly one worker
    assert sum(1 for w in workers if w.took("completed")) >= 2  # the work was shared
    assert len(ledger(place.files)) == 150 and ran_twice(place.files) == []  # three calls each, each once
    for w in workers:
        last = w.events[-1]
        assert last["event"] == "stopped" and last["exit_code"] == 0 and last["left"] == 0
    assert {eid: agent.get(eid).answer for eid in ids} == {eid: f"done {i}" for i, eid in enumerate(ids)}


def test_a_sigkilled_workers_executions_finish_on_the_others(place: Place) -> None:
    agent = place.agent(fleet_agent.build)
    ids = [agent.enqueue(f"park {i}", execution_id=f"park-{i:02d}") for i in range(6)]
    doomed = Worker(place, concurrency=6, env={"FLEET_PARK": "1"})
    others: list[Worker] = []
    try:
        # The barrier: every execution is inside its first tool body in the doomed worker.
        wait_until(lambda: len(lines(place.files / "parked.txt")) == 6, timeout=60, what="all six to park")
        others = [Worker(place, concurrency=3) for _ in range(2)]
        doomed.kill()
        assert doomed.proc.returncode == -signal.SIGKILL
        killed_at = time.monotonic()
        wait_until(lambda: place.all_completed(ids), timeout=120, what="the others to finish them")
        takeover = time.monotonic() - killed_at
    finally:
        doomed.kill()
        codes = [w.finish() for w in others]
    assert codes == [0, 0], [w.err for w in others]
    assert takeover < 30
    assert sorted(doomed.took("taken")) == ids and doomed.took("completed") == []
    assert sorted(eid for w in others for eid in w.took("completed")) == ids
    effects = ledger(place.files)
    assert ran_twice(place.files) == [] and len(effects) == 12  # two calls per execution, each once
    assert doomed.pid not in {pid for _, _, pid in effects}
    retried = [key for key, attempt, _ in effects if attempt == 2]
    assert len(retried) == 6  # the call each was in when its worker died ran again, with the same key
    for eid in ids:
        records = place.store.read(eid).records
        started = {r.call_id for r in records if isinstance(r, ToolStarted)}
        finished = [r for r in records if isinstance(r, ToolFinished)]
        assert len(finished) == 2 and len(started) == 2


def test_an_approval_recorded_by_the_cli_is_picked_up_by_a_worker(place: Place) -> None:
    agent = place.agent(fleet_agent.build)
    eid = agent.enqueue("pay 7")
    worker = Worker(place)
    try:
        wait_until(lambda: place.status(eid) == "waiting_approval", what="the approval request")
        assert ledger(place.files) == []  # not paid before the approval
        decided = subprocess.run(
            place.command("approve", eid, "--all"), capture_output=True, text=True, env=place.env(), check=False
        )
        assert decided.returncode == 0, decided.stderr
        wait_until(lambda: place.status(eid) == "completed", what="the worker to continue it")
    finally:
        code = worker.finish()
    assert code == 0, worker.err
    mine = [e["event"] for e in worker.events if e.get("execution_id") == eid]
    assert mine == ["taken", "suspended", "taken", "completed"]
    assert len(ledger(place.files)) == 1 and agent.get(eid).answer == "paid 7"


def test_an_in_doubt_call_waits_for_the_operator_whose_resolution_a_worker_picks_up(place: Place) -> None:
    agent = place.agent(fleet_agent.build)
    eid = agent.enqueue("move 40")
    doomed = Worker(place, env={"FLEET_PARK": "1"})
    survivor: Worker | None = None
    try:
        wait_until(lambda: len(lines(place.files / "parked.txt")) == 1, what="the transfer to start")
        survivor = Worker(place)
        doomed.kill()
        wait_until(lambda: place.status(eid) == "suspended", what="the survivor to find the call in doubt")
        reason = place.store.state(eid).suspend_reason
        assert reason.kind == "in_doubt" and ledger(place.files) == []  # never run again on its own
        (call_id,) = reason.confirmation_ids
        resolved = subprocess.run(
            place.command("resolve", eid, call_id, "--result", '"checked: moved once"'),
            capture_output=True,
            text=True,
            env=place.env(),
            check=False,
        )
        assert resolved.returncode == 0, resolved.stderr
        wait_until(lambda: place.status(eid) == "completed", what="a worker to continue after the resolution")
    finally:
        doomed.kill()
        code = survivor.finish() if survivor is not None else 0
    assert code == 0, survivor.err if survivor else ""
    assert ledger(place.files) == []  # the operator settled it: the transfer never ran twice (nor again)
    assert agent.get(eid).answer == "transfer: checked: moved once"
    assert survivor is not None and survivor.took("suspended") == [eid] and survivor.took("completed") == [eid]


def test_sigterm_drains_the_step_in_flight_and_leaves_the_rest_for_another_worker(place: Place) -> None:
    agent = place.agent(fleet_agent.build)
    eid = agent.enqueue("slow 1")
    worker = Worker(place, env={"FLEET_SLOW": "1.5"})
    try:
        wait_until(lambda: len(lines(place.files / "slow.txt")) == 1, what="the slow call to start")
        worker.send(signal.SIGTERM)
        code = worker.finish(None, timeout=30)
    finally:
        worker.kill()
    assert code == 3, (worker.out, worker.err)  # drained, one execution left running for others
    events = [e["event"] for e in worker.events]
    assert events[0] == "started" and "draining" in events and events[-1] == "stopped"
    assert worker.took("left") == [eid]
    assert worker.events[-1]["left"] == 1 and worker.events[-1]["exit_code"] == 3
    store = place.store
    assert store.state(eid).status.value == "running" and not store.is_claimed(eid)  # claim released
    finished = [r for r in store.read(eid).records if isinstance(r, ToolFinished)]
    assert [r.result for r in finished] == ["slow 0"]  # the step in flight finished and was recorded
    assert len(ledger(place.files)) == 1
    assert [s.id for s in store.runnable(agent="fleet")] == [eid]
    second = Worker(place)
    try:
        wait_until(lambda: place.status(eid) == "completed", what="another worker to finish it")
    finally:
        assert second.finish() == 0, second.err
    assert ran_twice(place.files) == [] and len(ledger(place.files)) == 2  # the slow call did not run again


def test_a_second_signal_ends_the_drain_at_once_and_the_call_in_flight_runs_again_elsewhere(place: Place) -> None:
    agent = place.agent(fleet_agent.build)
    eid = agent.enqueue("slow 2")
    worker = Worker(place, env={"FLEET_SLOW": "30"})
    try:
        wait_until(lambda: len(lines(place.files / "slow.txt")) == 1, what="the slow call to start")
        worker.send(signal.SIGTERM)
        time.sleep(0.5)
        worker.send(signal.SIGINT)
        code = worker.finish(None, timeout=10)
    finally:
        worker.kill()
    assert code == 4, (worker.out, worker.err)
    assert [e["event"] for e in worker.events][-2:] == ["draining", "forced"]
    assert ledger(place.files) == []  # the slow call never got to act
    second = Worker(place, env={"FLEET_SLOW": "0"})
    try:
        wait_until(lambda: place.status(eid) == "completed", what="another worker to finish it")
    finally:
        assert second.finish() == 0, second.err
    slow_effects = [(key, attempt) for key, attempt, _ in ledger(place.files) if key.endswith(".0")] or ledger(
        place.files
    )
    assert ran_twice(place.files) == [] and len(ledger(place.files)) == 2
    assert any(attempt == 2 for _, attempt, _ in ledger(place.files)), slow_effects  # in doubt: run again, same key


def test_an_idle_worker_drains_at_once_with_exit_code_zero(place: Place) -> None:
    worker = Worker(place, poll=5)
    try:
        time.sleep(1.5)  # started, and waiting out its 5 s poll
        assert worker.proc.poll() is None, worker.finish()
        code = worker.finish(signal.SIGINT, timeout=4)  # wakes at once: no waiting out the poll
    finally:
        worker.kill()
    assert code == 0, worker.err
    assert [e["event"] for e in worker.events] == ["started", "draining", "stopped"]


def test_a_worker_never_starts_a_waiting_suspension_a_fork_or_another_agents_execution(place: Place) -> None:
    agent = place.agent(fleet_agent.build)
    theirs = place.agent(fleet_agent.build_other).enqueue("job 1")
    waiting = agent.run("pay 3").execution_id  # suspended for an approval nobody gave
    done = agent.run("job 2").execution_id
    fork = DataDir(place.store).fork(done, at=1)
    heads = {eid: place.store.head(eid) for eid in (theirs, waiting, fork)}
    effects_before = len(ledger(place.files))
    sentinel = agent.enqueue("job 3")
    worker = Worker(place, poll=0.1)
    try:
        wait_until(lambda: place.status(sentinel) == "completed", what="the sentinel")
        time.sleep(1.0)  # ten more polls
    finally:
        code = worker.finish()
    assert code == 0, worker.err
    assert worker.took("taken") == [sentinel]
    assert {eid: place.store.head(eid) for eid in (theirs, waiting, fork)} == heads  # not a record written
    assert len(ledger(place.files)) == effects_before + 3
    assert place.statuses([theirs, waiting, fork]) == {theirs: "running", waiting: "waiting_approval", fork: "running"}
    served = collections.Counter(e["agent_id"] for e in worker.events if "agent_id" in e)
    assert set(served) == {"fleet"}


def test_a_worker_serves_several_agents(place: Place) -> None:
    mine = place.agent(fleet_agent.build).enqueue("job 1")
    theirs = place.agent(fleet_agent.build_other).enqueue("job 2")
    worker = Worker(place, "fleet_agent:build", "fleet_agent:build_other", poll=0.1)
    try:
        wait_until(lambda: place.all_completed([mine, theirs]), what="both agents' executions")
    finally:
        assert worker.finish() == 0, worker.err
    assert sorted(worker.took("completed")) == sorted([mine, theirs])
    assert {e["agent_id"] for e in worker.events if e["event"] == "completed"} == {"fleet", "other"}


def test_notify_wakes_an_idle_worker_long_before_its_poll(
    pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    place = Place("pg", pg_url, tmp_path / "files")
    monkeypatch.setenv("FLEET_FILES", str(place.files))
    worker = Worker(place, poll=60)
    try:
        time.sleep(2.0)  # idle, listening, with a minute to go before its next poll
        enqueued = time.monotonic()
        eid = place.agent(fleet_agent.build).enqueue("job 1")
        wait_until(lambda: place.status(eid) == "completed", timeout=30, what="the NOTIFY wake-up")
        elapsed = time.monotonic() - enqueued
    finally:
        code = worker.finish()
        place.close()
    assert code == 0, worker.err
    assert elapsed < 10, elapsed  # woken by the notification, not by the 60 s poll


def test_workers_ride_out_a_postgresql_restart(
    pg_server: object, pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    place = Place("pg", pg_url, tmp_path / "files")
    monkeypatch.setenv("FLEET_FILES", str(place.files))
    agent = place.agent(fleet_agent.build)
    ids = [agent.enqueue(f"slow {i}") for i in range(6)]
    place.close()  # this process's connections would only be cut too
    workers = [Worker(place, concurrency=3, env={"FLEET_SLOW": "2"}) for _ in range(2)]
    try:
        # Both workers are up and busy (three slow calls each, at most): the restart cuts runs in flight, not
        # a worker's start (a worker that cannot reach the database when it starts exits 1 at once).
        wait_until(lambda: len(lines(place.files / "slow.txt")) == 6, what="six slow calls in flight")
        pg_server.restart()  # type: ignore[attr-defined]
        wait_until(lambda: place.all_completed(ids), timeout=120, what="every execution to complete")
    finally:
        codes = [w.finish() for w in workers]
        place.close()
    assert codes == [0, 0], [(w.out[-2000:], w.err[-2000:]) for w in workers]
    effects = collections.Counter(key for key, _, _ in ledger(place.files))
    assert len(effects) == 12  # every call of every execution acted
    # A call whose result could not be recorded across the restart was in doubt: it ran again with its key.
    assert all(n <= 2 for n in effects.values())
    repeats = [key for key, attempt, _ in ledger(place.files) if attempt > 1]
    assert sorted(repeats) == sorted(k for k, n in effects.items() if n == 2)


_SIGNAL_AT_EVERY_LINE = r"""
import signal, sys
from delite_cli.main import cli

# Round k runs the worker's SIGTERM handler at the k-th line its main thread executes in the worker module, from
# the handler's install; a round that reaches Runtime.work first runs it there, and is the last.
k = 0
lines = 0
fired = ""

def tracer(frame, event, arg):
    global lines, fired
    handler = signal.getsignal(signal.SIGTERM)
    if fired or not callable(handler):
        return None if fired else tracer
    code = frame.f_code.co_filename
    if event == "line" and code.endswith("_worker.py") and "delite_cli" in code:
        lines += 1
        fired = "line" if lines == k else ""
    elif event == "call" and frame.f_code.co_name == "work" and code.endswith("_runtime.py"):
        fired = "work"
    if fired:
        handler(signal.SIGTERM, frame)  # as if a SIGTERM had landed here
    return tracer

while fired != "work":
    k, lines, fired = k + 1, 0, ""
    sys.settrace(tracer)
    args = ["worker", "--data-dir", sys.argv[1], "--json", "--poll", "0.05", "--agent", "fleet_agent:build"]
    code = cli.main(args, standalone_mode=False)
    sys.settrace(None)
    print("round", k, "exit", code, "signalled at", fired, flush=True)
"""


def test_sigterm_landing_on_any_line_of_the_workers_main_thread_drains(tmp_path: Path) -> None:
    """A signal's handler runs in the main thread wherever that thread was, in the middle of printing a line
    (the printer's lock held) among others. The SIGTERM handler of ``delite worker`` is run at each line its main
    thread executes in the worker module in turn, from the moment it is installed: every time, the worker drains
    and exits 0. Its old handler printed, and so waited forever on the printer's lock its own thread held when
    the SIGTERM came just as the ``started`` line was written: a drained worker that never exited."""
    place = Place("file", str(tmp_path / "data"), tmp_path / "data")
    proc = subprocess.run(
        [sys.executable, "-c", _SIGNAL_AT_EVERY_LINE, place.where],
        check=False,
        cwd=HERE,
        env=place.env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    rounds = [line.split() for line in proc.stdout.splitlines() if line.startswith("round ")]
    assert len(rounds) > 10, proc.stdout
    assert [r[-1] for r in rounds] == ["line"] * (len(rounds) - 1) + ["work"], proc.stdout
    assert {r[3] for r in rounds} == {"0"}, proc.stdout
    events = [json.loads(line)["event"] for line in proc.stdout.splitlines() if line.startswith("{")]
    assert events == ["started", "draining", "stopped"] * len(rounds), proc.stdout
