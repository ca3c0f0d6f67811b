"""The PostgreSQL mode of ``benchmarks/torture.py`` (``--postgres``): a fleet of workers SIGKILLed at random.

A throwaway PostgreSQL server (the tests' own ``tests/_pg.py``, ``fsync`` back on) holds ``--executions``
executions, enqueued at once. ``--workers`` ``delite worker`` processes serve them (this module is their
agent: ``--agent torture_pg:build``); the driver SIGKILLs a random one of them at a random instant (0 to
``--kill-every`` seconds apart; with tool bodies of a few milliseconds, many kills land in a model call, a
tool body before or after its side effect, or an append) and starts a replacement, until ``--kills`` kills.
Meanwhile it plays the humans: it approves each waiting transfer, and settles each in-doubt wire the way an
operator would (the ledger says whether the wire acted: then its result is supplied, else a re-run is
asked for). Then the last workers finish everything and drain.

Each execution's script: ``work(0)``; ``transfer(5)`` (needs approval); ``work(1)`` and ``work(2)`` in one
turn; ``wire(100)`` (``retry_in_doubt=False``: never retried blindly); ``work(3)``; the answer. Every tool
body appends ``name key attempt pid`` to a ledger (fsynced) as its side effect, a little after it starts.

Invariants checked at the end (each breach is listed; the exit status is 1 if there is one):

* every execution completed, with the answer of an uninterrupted run, and none is left ``running``;
* every log reads back verified (each record's checksum, in order);
* every side effect has a durable intent: a ``tool-started`` record with its key and its attempt;
* no two side effects share a key and an attempt; no call runs after its result was recorded
  (``reran_completed``); a ``wire`` never runs twice;
* every call that should act did: each tool call's key is in the ledger.

The counts reported: kills (and how many landed while a tool body was in flight), workers started, claims
lost (a worker's error events), in-doubt retries (the same key run again by a later attempt), wires settled
by the operator, approvals given.
"""

from __future__ import annotations

import collections
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
for _p in (str(ROOT), str(ROOT / "tests")):
    if _p not in sys.path:
        sys.path.insert(0, _p)

from delite import Agent, ScriptedProvider, current_call, tool  # noqa: E402
from delite.log.records import ToolFinished, ToolStarted  # noqa: E402
from delite.providers import call  # noqa: E402
from delite.store import Store  # noqa: E402

AGENT_ID = "torture-pg"
SCRIPT: list[Any] = [
    call("work", i=0),
    call("transfer", amount=5),
    {"tool_calls": [{"name": "work", "arguments": {"i": 1}}, {"name": "work", "arguments": {"i": 2}}]},
    call("wire", to="ACME", amount=100),
    call("work", i=3),
    "all done",
]
TOOL_CALLS = 6  # work x4, transfer, wire


def _effect(name: str) -> None:
    """The side effect: one ledger line, after a short random delay (so kills land before and after it)."""
    ctx = current_call()
    ledger = Path(os.environ["TORTURE_DIR"]) / "ledger.txt"
    time.sleep(random.uniform(0, 0.03))
    with ledger.open("a") as f:
        f.write(f"{name} {ctx.idempotency_key} {ctx.attempt} {os.getpid()}\n")
        f.flush()
        os.fsync(f.fileno())
    time.sleep(random.uniform(0, 0.005))


@tool
def work(i: int) -> str:
    """A step with a side effect."""
    _effect("work")
    return f"worked {i}"


@tool(requires_confirmation=True)
def transfer(amount: int) -> str:
    """Move money (a human approves first)."""
    _effect("transfer")
    return f"transferred {amount}"


@tool(retry_in_doubt=False)
def wire(to: str, amount: int) -> str:
    """Wire money out: never retried blindly after a crash inside it."""
    _effect("wire")
    return f"wired {amount} to {to}"


class Model:
    """The script, with a few milliseconds of latency."""

    name = "torture-pg-model"

    def __call__(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]], model: str | None) -> Any:
        time.sleep(random.uniform(0, 0.005))
        return ScriptedProvider(SCRIPT)(messages, tools, model)


def build(where: str | Store) -> Agent:
    """The agent the workers serve (``--agent torture_pg:build``)."""
    store = where if isinstance(where, Store) else None
    return Agent(
        None if store is not None else where,
        store=store,
        provider=Model(),
        tools=[work, transfer, wire],
        agent_id=AGENT_ID,
        prompt="torture",
    )


# -- the driver --------------------------------------------------------------------------------------------------


class Worker:
    def __init__(self, url: str, work_dir: Path, poll: float) -> None:
        env = {k: v for k, v in os.environ.items() if k not in ("DELITE_AGENT", "DELITE_DATA_DIR")}
        env["PYTHONPATH"] = os.pathsep.join([str(HERE), str(ROOT), env.get("PYTHONPATH", "")])
        env["TORTURE_DIR"] = str(work_dir)
        argv = [sys.executable, "-m", "delite_cli", "worker", "--data-dir", url, "--json", "--poll", str(poll)]
        argv += ["--concurrency", "4", "--agent", "torture_pg:build"]
        self.proc = subprocess.Popen(
            argv, cwd=HERE, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
        )
        self.events: list[dict[str, Any]] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            if line.startswith("{"):
                self.events.append(json.loads(line))

    def wait_started(self, timeout: float) -> None:
        """Wait until the worker has said it started (or exited, or ``timeout`` seconds passed)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.proc.poll() is None:
            if any(e.get("event") == "started" for e in self.events):
                return
            time.sleep(0.05)

    def end(self, sig: int) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            self.proc.wait(timeout=120)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.reader.join(timeout=10)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        return self.proc.returncode


def ledger(work_dir: Path) -> list[tuple[str, str, int]]:
    path = work_dir / "ledger.txt"
    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        parts = line.split()
        if len(parts) == 4:  # a line torn by a kill mid-write has no pid yet: the effect did not complete
            out.append((parts[0], parts[1], int(parts[2])))
    return out


def play_humans(agent: Agent, store: Store, work_dir: Path, counts: collections.Counter[str]) -> None:
    """Approve waiting transfers; settle in-doubt wires from the ledger, as an operator would."""
    for summary in store.list_executions(status=["waiting_approval", "suspended"], limit=None):
        eid = summary.id
        try:
            response = agent.get(eid)
            reason = response.suspend_reason
            if reason is None:
                continue
            if reason.kind == "approval":
                agent.approve(eid, reason.confirmation_id)
                counts["approvals"] += 1
            elif reason.kind == "in_doubt":
                call_id = reason.confirmation_id
                keys = {
                    r.idempotency_key
                    for r in store.read(eid).records
                    if isinstance(r, ToolStarted) and r.call_id == call_id
                }
                if any(k in keys for _, k, _ in ledger(work_dir)):  # the wire acted: supply its result
                    agent.resolve(eid, call_id, result="wired 100 to ACME", advance=False)
                else:  # it did not: run it again
                    agent.resolve(eid, call_id, rerun=True, advance=False)
                counts["settled_by_operator"] += 1
        except Exception:  # noqa: BLE001 - a race with a worker moving it on: the next round sees it again
            counts["human_retries"] += 1


def run(kills: int, executions: int, workers_n: int, kill_every: float, seed: int) -> dict[str, Any]:
    """The PostgreSQL torture; its summary (``violations`` empty when every invariant held)."""
    from _pg import PgServer  # noqa: PLC0415 - the tests' throwaway server

    from delite.store._postgres import PostgresStore  # noqa: PLC0415

    rng = random.Random(seed)
    work_dir = Path(tempfile.mkdtemp(prefix="delite-torture-pg-"))
    server = PgServer()
    with (server.data / "postgresql.conf").open("a") as f:
        f.write("\nfsync = on\nfull_page_writes = on\n")
    server.start()
    counts: collections.Counter[str] = collections.Counter()
    violations: list[str] = []
    started = time.monotonic()
    try:
        url = server.create_database()
        store = PostgresStore(url)
        agent = build(store)
        ids = [agent.enqueue(f"torture {i}", execution_id=f"t-{i:04d}") for i in range(executions)]
        workers = [Worker(url, work_dir, 0.2) for _ in range(workers_n)]
        counts["workers_started"] = workers_n
        done_kills = 0
        ended: list[Worker] = []
        while done_kills < kills:
            play_humans(agent, store, work_dir, counts)
            if store.list_executions(status="completed", limit=1).total == len(ids):  # more work to kill in
                ids += [
                    agent.enqueue(f"torture {i}", execution_id=f"t-{i:04d}")
                    for i in range(len(ids), len(ids) + executions)
                ]
            ready = [i for i, w in enumerate(workers) if any(e.get("event") == "started" for e in w.events)]
            if not ready:
                time.sleep(0.05)
                continue
            time.sleep(rng.uniform(0, kill_every))
            victim = rng.choice(ready)
            w = workers[victim]
            w.end(signal.SIGKILL)
            ended.append(w)
            done_kills += 1
            taken = collections.Counter(e["execution_id"] for e in w.events if e.get("event") == "taken")
            let_go = collections.Counter(
                e["execution_id"]
                for e in w.events
                if e.get("event") not in ("taken", "started") and "execution_id" in e
            )
            if taken - let_go:  # it was advancing something when it died
                counts["kills_mid_execution"] += 1
            workers[victim] = Worker(url, work_dir, 0.2)
            counts["workers_started"] += 1
            if time.monotonic() - started > 900:
                violations.append(f"gave up after {done_kills} kills: 900 s")
                break
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            play_humans(agent, store, work_dir, counts)
            if store.list_executions(status="completed", limit=1).total == len(ids):  # every one enqueued
                break
            time.sleep(0.2)
        for w in workers:
            w.wait_started(60.0)  # a worker restarted a moment ago has its SIGTERM handler only once started
            code = w.end(signal.SIGTERM)
            if code != 0:
                violations.append(f"a worker's drain exited {code}")
        all_workers = [*ended, *workers]
        counts["claims_lost"] = sum(
            1 for w in all_workers for e in w.events if e.get("event") == "error" and "ClaimLost" in str(e.get("error"))
        )
        counts["worker_errors"] = sum(1 for w in all_workers for e in w.events if e.get("event") == "error")
        check(store, agent, ids, work_dir, counts, violations)
        store.close()
    finally:
        server.destroy()
        shutil.rmtree(work_dir, ignore_errors=True)
    return {
        "mode": "postgres",
        "seed": seed,
        "kills": kills,
        "executions": len(ids),
        "workers": workers_n,
        "seconds": round(time.monotonic() - started, 1),
        **dict(counts),
        "violations": violations,
    }


def check(
    store: Store,
    agent: Agent,
    ids: list[str],
    work_dir: Path,
    counts: collections.Counter[str],
    violations: list[str],
) -> None:
    """Every invariant of the module's docstring, over every execution and the whole ledger."""
    effects = ledger(work_dir)
    by_pair = collections.Counter((key, attempt) for _, key, attempt in effects)
    violations.extend(f"side effect {p} happened {n} times" for p, n in by_pair.items() if n > 1)
    runs_by_key: dict[str, list[int]] = collections.defaultdict(list)
    names = {}
    for name, key, attempt in effects:
        runs_by_key[key].append(attempt)
        names[key] = name
    completed = answers = 0
    for eid in ids:
        try:
            records = store.read(eid).records  # every checksum verified
        except Exception as e:  # noqa: BLE001
            violations.append(f"{eid}: unreadable: {e}")
            continue
        response = agent.get(eid)
        if response.status.value == "completed":
            completed += 1
        else:
            violations.append(f"{eid}: {response.status.value}, not completed")
        if response.answer == SCRIPT[-1]:  # an uninterrupted run's answer
            answers += 1
        started: dict[str, list[tuple[str, int]]] = collections.defaultdict(list)
        finished: dict[str, int] = {}
        for i, r in enumerate(records):
            if isinstance(r, ToolStarted):
                if r.call_id in finished:
                    violations.append(f"{eid}: call {r.call_id} started again after its result was recorded")
                started[r.call_id].append((r.idempotency_key, r.attempt))
            elif isinstance(r, ToolFinished) and r.call_id not in finished:
                finished[r.call_id] = i
        intents = {pair for pairs in started.values() for pair in pairs}
        for key in [k for k in runs_by_key if k.startswith(eid + ":")]:
            for attempt in runs_by_key[key]:
                if (key, attempt) not in intents:
                    violations.append(f"{eid}: side effect {key} attempt {attempt} without a durable intent")
        calls_with_body = [c for c in started if c in finished]
        for call_id in calls_with_body:
            keys = {k for k, _ in started[call_id]}
            for key in keys:
                last = max(a for k, a in started[call_id] if k == key)
                if any(a > last for a in runs_by_key.get(key, [])):
                    counts["reran_completed"] += 1
                    violations.append(f"{eid}: {key} ran after its result was recorded")
        if len(finished) != TOOL_CALLS:
            violations.append(f"{eid}: {len(finished)} tool results, expected {TOOL_CALLS}")
    for key, attempts in runs_by_key.items():
        if names.get(key) == "wire" and len(attempts) > 1:
            violations.append(f"wire {key} ran {len(attempts)} times")
        if len(attempts) > 1:
            counts["in_doubt_retries"] += len(attempts) - 1
    if len(runs_by_key) != TOOL_CALLS * len(ids):
        violations.append(f"{len(runs_by_key)} distinct calls acted, expected {TOOL_CALLS * len(ids)}")
    leftover = store.list_executions(status="running", limit=1).total
    if leftover:
        violations.append(f"{leftover} executions left running")
    counts["completed"] = completed
    counts["answers_matched"] = answers
    counts["side_effects"] = len(effects)
    counts.setdefault("reran_completed", 0)


def print_table(summary: dict[str, Any]) -> None:
    """The counts, one per line, and the breaches."""
    print("PostgreSQL torture: workers SIGKILLed at random")
    print("| count | value |")
    print("|---|---|")
    for key in (
        "seed",
        "executions",
        "workers",
        "kills",
        "kills_mid_execution",
        "workers_started",
        "completed",
        "answers_matched",
        "side_effects",
        "in_doubt_retries",
        "settled_by_operator",
        "approvals",
        "claims_lost",
        "worker_errors",
        "reran_completed",
        "seconds",
    ):
        print(f"| {key} | {summary.get(key, 0)} |")
    print(f"| invariant breaches | {len(summary['violations'])} |")
    for v in summary["violations"][:20]:
        print(f"  breach: {v}")
