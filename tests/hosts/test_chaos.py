"""Chaos on several hosts: ``delite worker`` processes in three network namespaces against one PostgreSQL server.

Each host is a network namespace on a private bridge (``tests/_netns.py``); the throwaway server (``tests/_pg.py``)
listens on the bridge's address; every worker is a real ``delite worker --data-dir postgresql://...`` process
inside a host. Every tool body writes a line to a ledger (``hosts_agent``: key, attempt, pid, host) as its
side effect, so what the tests count are real side effects: a worker SIGKILLed inside a tool, a host cut off
the network mid-tool and brought back, the database restarted mid-run, and eight processes on three hosts
answering one approval.
"""

from __future__ import annotations

import collections
import json
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from _workers import HERE, HostWorker, env_for, ledger, parked, ran_twice, wait_until

sys.path.insert(0, str(HERE))

import hosts_agent

import delite.errors
from delite import Agent
from delite.log.records import ToolFinished
from delite.store._postgres import PostgresStore

pytestmark = pytest.mark.timeout(400)


@pytest.fixture
def db(cluster: Any, tmp_path: Path) -> Iterator[tuple[str, str, PostgresStore, Agent, str]]:
    """A fresh database: (URL for the hosts, work dir, a store on it here, the agent on that store, URL here)."""
    url, bridge_url = cluster.database()
    store = PostgresStore(url)
    try:
        yield bridge_url, str(tmp_path), store, hosts_agent.build(store), url
    finally:
        store.close()


def statuses(store: PostgresStore, ids: list[str]) -> dict[str, str]:
    return {eid: store.state(eid).status.value for eid in ids}


def finished_by(store: PostgresStore, eid: str) -> list[str]:
    """The outputs of the tool calls in the log, in order (each names the host that ran it)."""
    return [str(r.result) for r in store.read(eid).records if isinstance(r, ToolFinished) and r.source == "tool"]


def test_a_sigkilled_workers_executions_finish_on_other_hosts(cluster: Any, db: Any) -> None:
    url, work, store, agent, _ = db
    work_dir = Path(work)
    parks = [agent.enqueue(f"park {i}", execution_id=f"park-{i}") for i in range(4)]
    ask = agent.enqueue("once 9", execution_id="once-9")  # its middle tool is never retried blindly
    ids = [*parks, ask]
    doomed = HostWorker(cluster.hosts, 0, url, work_dir, concurrency=5, env={"HOSTS_PARK": "1"})
    others: list[HostWorker] = []
    try:
        # The barrier: every execution is inside its second tool's body on host 0, the first one's effect done.
        wait_until(lambda: len(parked(work_dir)) == 5, timeout=60, what="five calls to park on host 0")
        others = [HostWorker(cluster.hosts, h, url, work_dir, concurrency=3) for h in (1, 2)]
        for w in others:
            w.wait_started()
        doomed.kill()
        assert doomed.proc.returncode == -9
        wait_until(
            lambda: statuses(store, ids) == {**dict.fromkeys(parks, "completed"), ask: "suspended"},
            timeout=120,
            what="the other hosts to take them over",
        )
        # The tool that asked never to be retried blindly waits for an operator, on whichever host.
        reason = agent.get(ask).suspend_reason
        assert reason is not None and reason.kind == "in_doubt"
        parked_key = {eid: key for eid, key, _ in parked(work_dir)}
        assert parked_key[ask] not in {key for key, *_ in ledger(work_dir)}  # it did not run again
        # The operator checks the outside world (the ledger: no effect), asks for a re-run; a worker finishes it.
        agent.resolve(ask, reason.confirmation_id, rerun=True, advance=False)
        wait_until(lambda: statuses(store, [ask]) == {ask: "completed"}, timeout=60, what="the re-run")
    finally:
        doomed.kill()
        codes = [w.finish() for w in others]
    assert codes == [0, 0], (codes, [w.err for w in others], [w.events for w in others])
    assert sorted(doomed.took("taken")) == sorted(ids) and doomed.took("completed") == []
    assert sorted(eid for w in others for eid in w.took("completed")) == sorted(ids)
    effects = ledger(work_dir)
    assert ran_twice(work_dir) == []  # no completed call ran again, anywhere
    assert len(effects) == 3 * len(ids)
    by_key = {key: (attempt, host) for key, attempt, _, host in effects}
    for eid in ids:
        first, middle, last = finished_by(store, eid)
        assert first.endswith("on h0")  # done on host 0 before the kill, and not repeated
        assert middle.split(" on ")[1] in ("h1", "h2") and last.split(" on ")[1] in ("h1", "h2")
        key = parked_key[eid]
        # The in-doubt call ran again elsewhere with the very idempotency key host 0 had given it.
        assert by_key[key][0] == 2 and by_key[key][1] in ("h1", "h2")
    assert {agent.get(eid).answer for eid in parks} == {f"parked done {i}" for i in range(4)}


def test_a_partitioned_host_is_taken_over_and_fenced_when_it_returns(cluster: Any, db: Any) -> None:
    url, work, store, agent, _ = db
    work_dir = Path(work)
    ids = [agent.enqueue(f"park {i}", execution_id=f"cut-{i}") for i in range(3)]
    cut = HostWorker(cluster.hosts, 0, url, work_dir, concurrency=3, env={"HOSTS_PARK": "1"})
    others: list[HostWorker] = []
    try:
        wait_until(lambda: len(parked(work_dir)) == 3, timeout=60, what="three calls to park on host 0")
        others = [HostWorker(cluster.hosts, h, url, work_dir, concurrency=3) for h in (1, 2)]
        for w in others:
            w.wait_started()
        time.sleep(1.0)  # the others are polling: nothing is theirs while host 0's claims live
        assert all(not w.took("taken") for w in others)
        cluster.hosts.partition(0)
        took = wait_until(
            lambda: set(statuses(store, ids).values()) == {"completed"},
            timeout=90,
            what="the others to take over the cut host's executions",
        )
        assert took < 60, took  # the server's keepalives ended the vanished host's claims
        assert cut.proc.poll() is None  # host 0's worker never noticed anything: it is still in its tool
        cluster.hosts.heal(0)
        (work_dir / "release").touch()  # its tool bodies finish now, and it tries to record them
        wait_until(lambda: len(cut.errors()) == 3, timeout=90, what="the old worker to be refused 3 times")
    finally:
        cluster.hosts.heal(0)
        cut_code = cut.finish()
        codes = [w.finish() for w in others]
    assert codes == [0, 0], [w.err for w in others]
    assert cut_code in (0, 3), cut.err  # drained (nothing left of its own)
    refusals = cut.errors()
    assert sorted(e["execution_id"] for e in refusals) == sorted(ids)
    for event in refusals:  # it says so: its claim was lost, nothing of it was written
        assert event["error"].startswith("ClaimLostError"), event
    for eid in ids:
        outputs = finished_by(store, eid)
        assert len(outputs) == 3 and outputs[0].endswith("on h0")
        assert not any(o.endswith("on h0") for o in outputs[1:])  # nothing of the fenced worker's was appended
        assert agent.get(eid).answer == f"parked done {eid[-1]}"
    # The zombie's tool bodies did act when it came back (an effect no fence can stop), under the same keys as
    # the takeover's retry, so an idempotent sink counts each once.
    parked_keys = {key for _, key, _ in parked(work_dir)}
    effects = collections.Counter(key for key, *_ in ledger(work_dir))
    assert {k for k, n in effects.items() if n > 1} == parked_keys
    assert all(effects[k] == 2 for k in parked_keys)


def test_postgresql_restarted_mid_run_every_execution_completes(cluster: Any, db: Any) -> None:
    url, work, store, agent, here = db
    work_dir = Path(work)
    ids = [agent.enqueue(f"job {i}") for i in range(30)]
    slow = {"HOSTS_MODEL_DELAY": "0.05"}
    workers = [HostWorker(cluster.hosts, h, url, work_dir, concurrency=4, env=slow) for h in range(3)]
    try:
        for w in workers:
            w.wait_started()
        wait_until(
            lambda: list(statuses(store, ids).values()).count("completed") >= 5, timeout=90, what="some progress"
        )
        store.close()  # the test's own connections would die too
        cluster.server.restart()
        store = PostgresStore(here)
        done_in = wait_until(
            lambda: set(statuses(store, ids).values()) == {"completed"},
            timeout=180,
            what="every execution to complete after the restart",
        )
        assert all(w.proc.poll() is None for w in workers)  # they lived through it
    finally:
        codes = [w.finish() for w in workers]
        store.close()
    assert codes == [0, 0, 0], [w.err for w in workers]
    check = PostgresStore(here)
    try:
        assert check.list_executions(status="running", limit=None).total == 0  # none stranded
    finally:
        check.close()
    effects = ledger(work_dir)
    pairs = collections.Counter((key, attempt) for key, attempt, _, _ in effects)
    assert [p for p, n in pairs.items() if n > 1] == []  # a call ran again only as a retry of one in doubt
    assert len({key for key, *_ in effects}) == 90  # every call's effect, each key at least once
    assert done_in < 180


APPROVE = textwrap.dedent(
    """
    import sys, time
    import delite_cli.main, delite.store._postgres  # imported before the start line: the race is the approval
    go = float(sys.argv[1])
    time.sleep(max(0.0, go - time.time()))
    sys.argv = ["delite", "approve", sys.argv[2], "--data-dir", sys.argv[3], "--json"]
    delite_cli.main.main()
    """
)


def test_eight_processes_on_three_hosts_answer_one_approval_one_wins(cluster: Any, db: Any) -> None:
    url, work, store, agent, _ = db
    work_dir = Path(work)
    eid = agent.enqueue("pay 7", execution_id="pay-7")
    worker = HostWorker(cluster.hosts, 0, url, work_dir, concurrency=2)
    try:
        wait_until(lambda: statuses(store, [eid]) == {eid: "waiting_approval"}, timeout=60, what="the approval")
        go = time.time() + 3.0
        procs = [
            cluster.hosts.popen(
                i % 3,
                [sys.executable, "-c", APPROVE, str(go), eid, url],
                cwd=HERE,
                env=env_for(work_dir, f"h{i % 3}"),
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
            )
            for i in range(8)
        ]
        results = []
        for proc in procs:
            out, err = proc.communicate(timeout=120)
            results.append((proc.returncode, out, err))
        wait_until(lambda: statuses(store, [eid]) == {eid: "completed"}, timeout=60, what="a worker to finish it")
    finally:
        code = worker.finish()
    assert code == 0, worker.err
    winners = [r for r in results if r[0] == 0]
    losers = [r for r in results if r[0] != 0]
    assert len(winners) == 1, results
    assert len(losers) == 7
    for returncode, out, err in losers:
        assert returncode == 1, (out, err)  # a state error (409), not a usage error
        error = json.loads((out or err).strip().splitlines()[-1])["error"]
        kind = getattr(delite.errors, error["type"])
        assert issubclass(kind, delite.errors.ExecutionStateError) and kind.http_status == 409, error
    assert len(ledger(work_dir)) == 1  # paid once
    assert agent.get(eid).answer == "paid 7"
