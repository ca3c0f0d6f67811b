"""Crash torture: SIGKILL agent runs at random instants, resume them in new processes, check every invariant.

A standalone script (the CI runs a short form from ``tests/crash/test_torture.py``):

    python benchmarks/torture.py --kills 1000             # the long form; a summary table
    python benchmarks/torture.py --kills 50 --json        # the short form, as JSON
    python benchmarks/torture.py --kills 100 --exec       # every worker a fresh interpreter (slower)
    python benchmarks/torture.py --smoke                  # or --quick; CI: one execution, a few kills, seed 7
    python benchmarks/torture.py --kills 0 --forks 100 --cancels 100   # forks killed, async runs cancelled
    python benchmarks/torture.py --kills 0 --inputs 2000               # bad inputs (torture_inputs.py)
    python benchmarks/torture.py --postgres --kills 100                # workers on PostgreSQL (torture_pg.py)

The workload is one execution of ten model turns that mixes every kind of step: plain tool calls (two in one
turn too), a tool that needs a human's approval (approved once, rejected once), a client-side tool, a tool
that must not be retried blindly (``retry_in_doubt=False``), a question to a human, and a budget of model
calls that pauses the run twice. Executions are driven one after another until ``--kills`` workers have
been killed.

Each worker process takes the *one* next action a person or a server would take on the execution: start it,
continue it after a crash, approve or reject, submit a client tool's result, answer the question, raise the
budget, or settle an in-doubt call (the operator looks in the side-effect ledger, as one would ask the bank,
and supplies the result if the call acted, or asks for a re-run if it did not). Three answering workers in
ten answer twice (``double-*`` actions): they record the expected answer, then give a different one, which
must be refused (one answer per pending call) before they continue the run. Most workers are armed to die
by SIGKILL: at a random event among the log's writes (before, in the middle of, or after the bytes), its
fsyncs, the model call and the tool bodies (before or after the side effect), or from the driver at a random
time after the worker is ready. A worker that is not killed just finishes its action.

Invariants checked after every worker (each breach is reported; the exit status is 1 if there is one):

* the log verifies (``read_log``): no damage; a torn tail only right after a kill, gone after the next claim;
* the log only grows: the complete records before a worker are a prefix of those after it;
* every side effect (a ledger line ``name key attempt result``) has a durable intent: a ``tool-started``
  record with that idempotency key and that attempt number; no two side effects share a key and an attempt;
* a call whose result was recorded never runs again; a ``retry_in_doubt=False`` tool never runs twice;
* a worker never finds the execution claimed by a dead one, and never fails;
* at the end: completed, the same answer and the same conversation as an uninterrupted run, one result per
  call, and every call that should have acted did (deduplicated by key, exactly once).

Workers are forked from the driver after ``import delite`` by default (fast); ``--exec`` starts each one as
a fresh interpreter instead.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from delite import Agent, Budget, ScriptedProvider, current_call, tool  # noqa: E402
from delite.engine._answers import unanswered  # noqa: E402
from delite.errors import DeliteError, ExecutionStateError  # noqa: E402
from delite.log import _os as log_os  # noqa: E402
from delite.log import read_log  # noqa: E402
from delite.log.records import ExecutionSuspended, ToolFinished, ToolStarted  # noqa: E402
from delite.providers import call  # noqa: E402
from delite.state._fold import fold  # noqa: E402

TEXT = "run the torture workload"
FIRST_BUDGET = 4  # model calls before the first budget pause
BUDGET_STEP = 4  # what the human adds each time the budget pauses
REJECT_OVER = 6  # the human rejects transfers above this amount
DURABILITY = {"mode": "full"}  # --durability: a killed process loses nothing in any mode


def tool_outputs(messages: list[dict[str, Any]]) -> str:
    return " | ".join(str(m["content"]) for m in messages if m["role"] == "tool")


SCRIPT: list[Any] = [
    call("work", i=1),
    call("transfer", amount=5),  # needs approval: approved
    {"tool_calls": [{"name": "work", "arguments": {"i": 2}}, {"name": "work", "arguments": {"i": 3}}]},
    call("read_cell", cell="B2"),  # runs on the client
    call("wire", to="ACME", amount=100),  # never retried blindly: in doubt, a human decides
    call("ask_human", question="Which city?"),
    {"tool_calls": [{"name": "transfer", "arguments": {"amount": 7}}, {"name": "work", "arguments": {"i": 4}}]},
    call("work", i=5),
    call("work", i=6),
    tool_outputs,
]
CLIENT_VALUE = "B2=42"
HUMAN_ANSWER = "Oslo"


# -- the worker side -------------------------------------------------------------------------------------------


class Killer:
    """Counts the events a worker passes through and SIGKILLs the process at the armed one."""

    def __init__(self, at: int, kind: str, rng: random.Random, out: int) -> None:
        self.action = "start"
        self.at = at
        self.kind = kind  # count only events of this kind ("any": every event)
        self.n = 0
        self.counted = 0
        self.rng = rng
        self.out = out

    def event(self, kind: str) -> bool:
        self.n += 1
        if self.kind in ("any", kind):
            self.counted += 1
            return self.counted == self.at
        return False

    def die(self, where: str) -> None:
        os.write(self.out, f"kill {where} {self.action}\n".encode())
        os.kill(os.getpid(), signal.SIGKILL)

    def arm_log(self) -> None:
        real_write, real_fsync, real_fsync_dir = log_os.write_all, log_os.fsync, log_os.fsync_dir

        def write_all(fd: int, data: bytes) -> None:
            if self.event("write"):
                how = self.rng.choice(["before", "torn", "after"])
                if how == "torn" and len(data) > 1:
                    real_write(fd, data[: self.rng.randrange(1, len(data))])
                    self.die("write-torn")
                if how == "after":
                    real_write(fd, data)
                self.die(f"write-{how}")
            real_write(fd, data)

        def fsync(fd: int) -> None:
            if self.event("fsync"):
                self.die("fsync")
            real_fsync(fd)

        def fsync_dir(path: str) -> None:
            if self.event("fsync"):
                self.die("fsync-dir")
            real_fsync_dir(path)

        log_os.write_all = write_all
        log_os.fsync = fsync
        log_os.fsync_dir = fsync_dir


def build_agent(data_dir: str, eid: str, killer: Killer | None) -> Agent:
    ledger = os.path.join(data_dir, "ledger.txt")

    def effect(name: str, result: str) -> str:
        ctx = current_call()
        if killer is not None and killer.event("tool-before"):
            killer.die(f"tool-before:{name}")
        fd = os.open(ledger, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            os.write(fd, f"{name}\t{ctx.idempotency_key}\t{ctx.attempt}\t{result}\n".encode())
        finally:
            os.close(fd)
        if killer is not None and killer.event("tool-after"):
            killer.die(f"tool-after:{name}")
        return result

    @tool
    def work(i: int) -> str:
        """A unit of work with a side effect."""
        return effect("work", f"w{i}")

    @tool(requires_confirmation=True)
    def transfer(amount: int) -> str:
        """Move money (a human approves it first)."""
        return effect("transfer", f"moved {amount}")

    @tool(target="client")
    def read_cell(cell: str) -> str:
        """Read a cell of the user's spreadsheet (runs on the client)."""
        raise AssertionError(cell)

    @tool(retry_in_doubt=False)
    def wire(to: str, amount: int) -> str:
        """Send a wire transfer (the bank cannot deduplicate it)."""
        return effect("wire", f"sent {amount} to {to}")

    script = ScriptedProvider(list(SCRIPT))

    def model(messages: list[dict[str, Any]], tools: list[dict[str, Any]], model_id: str | None) -> Any:
        turn = script(messages, tools, model_id)
        if killer is not None and killer.event("model"):
            killer.die("model")
        return turn

    agent = Agent(
        data_dir,
        provider=model,
        tools=[work, transfer, read_cell, wire],
        agent_id="torture",
        durability=DURABILITY["mode"],
    )
    agent.budget = Budget(max_llm_calls=read_budget(data_dir, eid))
    return agent


def budget_path(data_dir: str, eid: str) -> str:
    return os.path.join(data_dir, f"budget-{eid}.txt")


def read_budget(data_dir: str, eid: str) -> int:
    try:
        with open(budget_path(data_dir, eid)) as f:
            return int(f.read().strip() or FIRST_BUDGET)
    except FileNotFoundError:
        return FIRST_BUDGET


def ledger_lines(data_dir: str) -> list[list[str]]:
    try:
        with open(os.path.join(data_dir, "ledger.txt")) as f:
            text = f.read()
    except FileNotFoundError:
        return []
    # A line is written with one write(); a kill cannot split it, but be strict about it anyway.
    return [line.split("\t") for line in text.split("\n") if line]


def act(agent: Agent, data_dir: str, eid: str, killer: Killer | None = None) -> str:
    """Take the one next action on the execution, as a person or a server would. Returns what was done."""
    return _act(agent, data_dir, eid, lambda name: setattr(killer, "action", name) if killer else None)


def _act(agent: Agent, data_dir: str, eid: str, doing: Any) -> str:
    state = agent.get(eid) if agent.store.exists(eid) else None
    if state is None or state.records == 0:  # never started, or cut while it was being created
        doing("start")
        agent.run(TEXT, execution_id=eid)
        return "start"
    status = state.status.value
    reason = state.suspend_reason
    if status == "completed":
        return "done"
    if reason is None or not state.status.is_suspended:
        # Running (a crash left it) or failed: continue it, by either door.
        if random.random() < 0.5:
            doing("continue-run")
            agent.run(TEXT, execution_id=eid)
            return "continue-run"
        doing("continue-resume")
        agent.resume(eid)
        return "continue-resume"
    kind = reason.kind
    if kind in SECOND_ANSWERS and not unanswered(state):
        # A worker recorded the answers and died before it continued the run: continue it, do not answer again.
        doing("continue-answered")
        agent.resume(eid)
        return "continue-answered"
    if kind in SECOND_ANSWERS and random.random() < DOUBLE_ANSWERS:
        return _answer_twice(agent, data_dir, eid, state, doing)
    if kind == "approval":
        decisions = {p.call_id: int(p.arguments["amount"]) <= REJECT_OVER for p in reason.calls}
        doing("approve")
        agent.submit_approval(eid, decisions=decisions)
        return "approve"
    if kind == "client_tool":
        doing("client-result")
        agent.submit_tool_results(eid, {p.call_id: CLIENT_VALUE for p in reason.calls})
        return "client-result"
    if kind == "human_input":
        doing("human-input")
        agent.submit_input(eid, HUMAN_ANSWER)
        return "human-input"
    if kind == "budget":
        doing("raise-budget")
        with open(budget_path(data_dir, eid), "w") as f:
            f.write(str(state.totals.llm_calls + BUDGET_STEP))
        agent.budget = Budget(max_llm_calls=state.totals.llm_calls + BUDGET_STEP)
        agent.resume(eid)
        return "raise-budget"
    if kind == "in_doubt":
        # The operator checks the outside world (the ledger stands in for the bank) before deciding.
        call_id = reason.confirmation_ids[0]
        key = f"{eid}:{call_id}"
        acted = [line for line in ledger_lines(data_dir) if line[1] == key]
        if acted:
            doing("resolve-result")
            agent.resolve(eid, call_id, result=acted[0][3])
            return "resolve-result"
        doing("resolve-rerun")
        agent.resolve(eid, call_id, rerun=True)
        return "resolve-rerun"
    raise AssertionError(f"unexpected suspension {kind}")


DOUBLE_ANSWERS = 0.3  # the share of answering workers that give a second, different answer after the first


def _first_answer(agent: Agent, data_dir: str, eid: str, reason: Any, *, advance: bool) -> str:
    """The answer the workload expects, recorded (``advance=False``) or continuing the run."""
    kind = reason.kind
    if kind == "approval":
        decisions = {p.call_id: int(p.arguments["amount"]) <= REJECT_OVER for p in reason.calls}
        agent.decide(eid, decisions, advance=advance)
    elif kind == "client_tool":
        agent.submit_tool_results(eid, {p.call_id: CLIENT_VALUE for p in reason.calls}, advance=advance)
    elif kind == "human_input":
        agent.submit_input(eid, HUMAN_ANSWER, advance=advance)
    else:
        call_id = reason.confirmation_ids[0]
        acted = [line for line in ledger_lines(data_dir) if line[1] == f"{eid}:{call_id}"]
        if acted:
            agent.resolve(eid, call_id, result=acted[0][3], advance=advance)
            return "result"
        agent.resolve(eid, call_id, rerun=True, advance=advance)
        return "rerun"
    return ""


def _second_answer(agent: Agent, eid: str, reason: Any, first: str, *, advance: bool) -> None:
    """Another answer to the same calls, unlike the first: it must be refused, or the run would go wrong."""
    kind = reason.kind
    if kind == "approval":
        decisions = {p.call_id: int(p.arguments["amount"]) > REJECT_OVER for p in reason.calls}
        agent.decide(eid, decisions, advance=advance)
    elif kind == "client_tool":
        agent.submit_tool_results(eid, {p.call_id: "B2=-1" for p in reason.calls}, advance=advance)
    elif kind == "human_input":
        agent.submit_input(eid, "Bergen", advance=advance)
    elif first == "result":
        agent.resolve(eid, reason.confirmation_ids[0], rerun=True, advance=advance)
    else:
        agent.resolve(eid, reason.confirmation_ids[0], result="not sent", advance=advance)


SECOND_ANSWERS = {"approval", "client_tool", "human_input", "in_doubt"}


def _answer_twice(agent: Agent, data_dir: str, eid: str, state: Any, doing: Any) -> str:
    """Record the expected answer, give a different one (refused: one answer per call), then continue."""
    reason = state.suspend_reason
    name = f"double-{reason.kind}"
    doing(name)
    first = _first_answer(agent, data_dir, eid, reason, advance=False)
    try:
        _second_answer(agent, eid, reason, first, advance=random.random() < 0.5)
    except ExecutionStateError:
        pass  # refused, with nothing written: what must happen
    else:
        raise AssertionError(f"a second {reason.kind} answer was accepted")
    agent.resume(eid)
    return name


def worker(data_dir: str, eid: str, plan: dict[str, Any], out: int) -> None:
    """One worker process: arm the kill plan, say ready, take one action, report it."""
    random.seed(plan["seed"])
    DURABILITY["mode"] = plan.get("durability", "full")
    killer = Killer(plan["at"], plan["kind"], random.Random(plan["seed"]), out) if plan["at"] else None
    if killer is not None:
        killer.arm_log()
    agent = build_agent(data_dir, eid, killer)
    os.write(out, b"ready\n")
    try:
        action = act(agent, data_dir, eid, killer)
    except DeliteError as e:
        os.write(out, f"error {json.dumps(f'{type(e).__name__}: {e}')}\n".encode())
        return
    except Exception:  # noqa: BLE001 - reported to the driver as a breach
        os.write(out, f"error {json.dumps(traceback.format_exc())}\n".encode())
        return
    events = killer.n if killer is not None else 0
    os.write(out, f"result {json.dumps({'action': action, 'events': events})}\n".encode())


# -- the driver side -------------------------------------------------------------------------------------------


@dataclass
class Outcome:
    """What became of one worker process."""

    killed: bool
    seam: str
    lines: list[str]
    action: str = ""
    error: str = ""
    events: int = 0
    seconds: float = 0.0


def spawn(data_dir: str, eid: str, plan: dict[str, Any], *, use_exec: bool) -> Outcome:
    """Run one worker, killing it from outside if the plan says so; wait for it."""
    started = time.perf_counter()
    if use_exec:
        proc = subprocess.Popen(
            [sys.executable, __file__, "--worker", data_dir, eid, json.dumps(plan)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        pid, stream = proc.pid, proc.stdout
        assert stream is not None
        read_fd = stream.fileno()
    else:
        read_fd, write_fd = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: never returns into the driver
            code = 0
            try:
                os.close(read_fd)
                worker(data_dir, eid, plan, write_fd)
            except BaseException:  # noqa: BLE001
                code = 3
            os._exit(code)
        os.close(write_fd)
    buf = b""
    timer_done = False
    ready_at: float | None = None
    while True:
        chunk = os.read(read_fd, 65536)
        if not chunk:
            break
        buf += chunk
        if ready_at is None and b"ready\n" in buf:
            ready_at = time.perf_counter()
        if not timer_done and plan["timer"] is not None and ready_at is not None:
            timer_done = True
            time.sleep(plan["timer"])
            with contextlib.suppress(ProcessLookupError):  # not reaped yet, so it cannot vanish
                os.kill(pid, signal.SIGKILL)
    if use_exec:
        proc.wait()
        assert proc.stderr is not None
        stderr = proc.stderr.read().decode(errors="replace")
        proc.stderr.close()
        assert proc.stdout is not None
        proc.stdout.close()
        returncode = proc.returncode
        killed = returncode == -signal.SIGKILL
    else:
        os.close(read_fd)
        _, status = os.waitpid(pid, 0)
        stderr = ""
        killed = os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
        returncode = os.waitstatus_to_exitcode(status)
    lines = buf.decode(errors="replace").splitlines()
    # How long the worker ran after it said ready: the span a timer kill is drawn over (the start before it, an
    # import and a claim, would make most timers fire after a short action had already ended).
    outcome = Outcome(killed=killed, seam="", lines=lines, seconds=time.perf_counter() - (ready_at or started))
    for line in lines:
        if line.startswith("kill "):
            where, outcome.action = line[5:].split(" ", 1)
            outcome.seam = where.split(":")[0]
        elif line.startswith("result "):
            result = json.loads(line[7:])
            outcome.action, outcome.events = result["action"], result["events"]
        elif line.startswith("error "):
            outcome.error = json.loads(line[6:])
    if killed and not outcome.seam:
        outcome.seam = "timer"
        outcome.action = "?"
    if not killed and not outcome.action and not outcome.error:
        outcome.error = f"worker exited with {returncode} without a result: {stderr[-2000:]}"
    return outcome


@dataclass
class Summary:
    """Counts over the whole torture run, and every breach found."""

    kills: int = 0
    workers: int = 0
    executions: int = 0
    completed: int = 0
    kills_by_seam: collections.Counter[str] = field(default_factory=collections.Counter)
    kills_by_action: collections.Counter[str] = field(default_factory=collections.Counter)
    actions: collections.Counter[str] = field(default_factory=collections.Counter)
    torn_tails: int = 0
    torn_repaired: int = 0
    tool_calls: int = 0
    tool_runs: int = 0
    in_doubt_retries: int = 0
    in_doubt_suspensions: int = 0
    reran_completed: int = 0
    answers_matched: int = 0
    violations: list[str] = field(default_factory=list)
    seconds: float = 0.0
    mode: str = "fork"
    more: dict[str, Any] = field(default_factory=dict)  # --forks and --cancels (benchmarks/torture_more.py)

    def as_dict(self) -> dict[str, Any]:
        return {
            "kills": self.kills,
            "workers": self.workers,
            "executions": self.executions,
            "completed": self.completed,
            "answers_matched": self.answers_matched,
            "kills_by_seam": dict(sorted(self.kills_by_seam.items())),
            "kills_by_action": dict(sorted(self.kills_by_action.items())),
            "actions": dict(sorted(self.actions.items())),
            "torn_tails": self.torn_tails,
            "torn_repaired": self.torn_repaired,
            "tool_calls": self.tool_calls,
            "tool_runs": self.tool_runs,
            "in_doubt_retries": self.in_doubt_retries,
            "in_doubt_suspensions": self.in_doubt_suspensions,
            "reran_completed": self.reran_completed,
            "violations": self.violations,
            "seconds": round(self.seconds, 2),
            "mode": self.mode,
            "durability": DURABILITY["mode"],
            **self.more,
        }


@dataclass
class Reference:
    """An uninterrupted run of the workload."""

    answer: str
    messages: list[dict[str, Any]]
    calls: set[str]
    effects: dict[str, str]  # idempotency key -> result, for every call that acts
    seconds: float


def reference_run(root: str) -> Reference:
    data_dir = os.path.join(root, "reference")
    os.makedirs(data_dir)
    started = time.perf_counter()
    for _ in range(50):
        agent = build_agent(data_dir, "ref", None)
        if act(agent, data_dir, "ref") == "done":
            break
    seconds = time.perf_counter() - started
    state = fold(read_log(os.path.join(data_dir, "executions", "ref.log")).records)
    assert state.status.value == "completed", state.status
    effects = {line[1].split(":", 1)[1]: line[3] for line in ledger_lines(data_dir)}
    return Reference(state.answer or "", state.messages, set(state.calls), effects, seconds)


class Checker:
    """The invariants of one execution, checked after every worker."""

    def __init__(self, data_dir: str, eid: str, summary: Summary) -> None:
        self.data_dir = data_dir
        self.eid = eid
        self.path = os.path.join(data_dir, "executions", f"{eid}.log")
        self.summary = summary
        self.records: list[Any] = []
        self.finished: set[str] = set()
        self.ledger_seen = 0
        self.torn = False

    def breach(self, message: str) -> None:
        self.summary.violations.append(f"{self.eid}: {message}")

    def check(self, outcome: Outcome) -> bool:
        """Check after a worker; True when the execution is complete."""
        if outcome.error:
            self.breach(f"worker failed: {outcome.error[-600:]}")
        if not os.path.exists(self.path):
            if self.records:
                self.breach("the log vanished")
            return False
        try:
            contents = read_log(self.path)
        except DeliteError as e:
            self.breach(f"the log does not verify: {e}")
            return False
        if contents.torn is not None:
            if not outcome.killed:
                self.breach(f"a torn tail after a worker that was not killed: {contents.torn}")
            if not self.torn:
                self.summary.torn_tails += 1
            self.torn = True
        elif self.torn:  # the next claim cut it off (its worker may have been killed after that)
            self.summary.torn_repaired += 1
            self.torn = False
        records = contents.records
        if records[: len(self.records)] != self.records:
            self.breach("complete records were lost or changed")
        self.check_ledger(records)
        self.records = records
        self.finished = {r.call_id for r in records if isinstance(r, ToolFinished)}
        state = fold(records)
        return state.status.value == "completed"

    def check_ledger(self, records: list[Any]) -> None:
        eid = self.eid
        starts = {(r.idempotency_key, r.attempt) for r in records if isinstance(r, ToolStarted)}
        lines = [line for line in ledger_lines(self.data_dir) if line[1].startswith(f"{eid}:")]
        seen: set[tuple[str, str]] = set()
        for n, (name, key, attempt, _result) in enumerate(lines):
            if (key, int(attempt)) not in starts:
                self.breach(f"{name} acted (key {key}, attempt {attempt}) without a durable intent")
            if (key, attempt) in seen:
                self.breach(f"{name} ran twice as attempt {attempt} of {key}: a re-run without a new intent")
            seen.add((key, attempt))
            call_id = key.split(":", 1)[1]
            if n >= self.ledger_seen and call_id in self.finished:
                self.summary.reran_completed += 1
                self.breach(f"{name} {call_id} ran again after its result was recorded")
        wires = collections.Counter(key for name, key, _, _ in lines if name == "wire")
        for key, count in wires.items():
            if count > 1:
                self.breach(f"the no-retry tool ran {count} times for {key}")
        self.ledger_seen = len(lines)

    def final(self, reference: Reference) -> None:
        records = read_log(self.path).records
        state = fold(records)
        if state.answer != reference.answer:
            self.breach(f"answer {state.answer!r} != {reference.answer!r}")
        elif state.messages != reference.messages:
            self.breach("the conversation differs from an uninterrupted run's")
        else:
            self.summary.answers_matched += 1
        results = collections.Counter(r.call_id for r in records if isinstance(r, ToolFinished))
        if set(results) != reference.calls or set(results.values()) != {1}:
            self.breach(f"results per call: {dict(results)}")
        lines = [line for line in ledger_lines(self.data_dir) if line[1].startswith(f"{self.eid}:")]
        effects = {line[1].split(":", 1)[1]: line[3] for line in lines}
        if effects != reference.effects:
            self.breach(f"side effects by key {effects} != {reference.effects}")
        self.summary.tool_calls += len(reference.effects)
        self.summary.tool_runs += len(lines)
        self.summary.in_doubt_retries += sum(
            isinstance(r, ToolStarted) and r.attempt > 1 and r.call_id in reference.effects for r in records
        )
        self.summary.in_doubt_suspensions += sum(
            isinstance(r, ExecutionSuspended) and r.reason.kind == "in_doubt" for r in records
        )
        self.summary.completed += 1


# Where a worker is armed to die, and how many events of that kind to let pass at most.
SEAMS = [("any", 0), ("write", 6), ("fsync", 6), ("model", 2), ("tool-before", 2), ("tool-after", 2)]


def draw_plan(rng: random.Random, typical_events: float, typical_seconds: float) -> dict[str, Any]:
    """A kill plan: none (15%), a timer after the worker is ready (20%), or the n-th event of a kind."""
    roll = rng.random()
    plan: dict[str, Any] = {"seed": rng.randrange(2**32), "at": 0, "kind": "any", "timer": None}
    if roll < 0.65:
        plan["kind"], most = rng.choice(SEAMS)
        plan["at"] = rng.randint(1, most or max(2, round(typical_events * 1.5)))
    elif roll < 0.85:
        plan["timer"] = rng.uniform(0, typical_seconds * 1.5)
    return plan


def torture(kills: int, *, seed: int, use_exec: bool, root: str, max_workers: int | None = None) -> Summary:
    rng = random.Random(seed)
    summary = Summary(mode="exec" if use_exec else "fork")
    started = time.perf_counter()
    reference = reference_run(root)
    events: list[int] = [8]
    seconds: list[float] = [reference.seconds / 10]
    limit = max_workers or kills * 20
    n = 0
    while summary.kills < kills and summary.workers < limit:
        n += 1
        eid = f"t{n}"
        data_dir = os.path.join(root, "data")
        os.makedirs(data_dir, exist_ok=True)
        checker = Checker(data_dir, eid, summary)
        summary.executions += 1
        done = False
        for _ in range(200):
            typical_events = sorted(events)[len(events) // 2]
            typical_seconds = sorted(seconds)[len(seconds) // 2]
            plan = draw_plan(rng, typical_events, typical_seconds)
            plan["durability"] = DURABILITY["mode"]
            outcome = spawn(data_dir, eid, plan, use_exec=use_exec)
            summary.workers += 1
            if outcome.killed:
                summary.kills += 1
                summary.kills_by_seam[outcome.seam] += 1
                summary.kills_by_action[outcome.action] += 1
            else:
                summary.actions[outcome.action or "error"] += 1
                if outcome.action and outcome.action != "done":
                    seconds.append(outcome.seconds)
                    if outcome.events:
                        events.append(outcome.events)
            done = checker.check(outcome)
            if done:
                break
            if summary.violations and len(summary.violations) > 50:
                break
        else:
            checker.breach("did not complete in 200 workers")
        if done:
            checker.final(reference)
        if len(summary.violations) > 50:
            break
    summary.seconds = time.perf_counter() - started
    return summary


def print_table(s: Summary) -> None:
    d = s.as_dict()
    rows = [
        ("SIGKILLs", d["kills"]),
        ("worker processes", d["workers"]),
        (
            "executions (completed, answer = uninterrupted run's)",
            f"{d['executions']} ({d['completed']}, {d['answers_matched']})",
        ),
        ("kills by where", ", ".join(f"{k} {v}" for k, v in d["kills_by_seam"].items())),
        ("kills by action (timer kills: ?)", ", ".join(f"{k} {v}" for k, v in d["kills_by_action"].items())),
        ("actions of workers not killed", ", ".join(f"{k} {v}" for k, v in d["actions"].items())),
        ("torn tails left by a kill (repaired by the next claim)", f"{d['torn_tails']} ({d['torn_repaired']})"),
        ("tool calls that act (body runs)", f"{d['tool_calls']} ({d['tool_runs']})"),
        ("in-doubt calls retried with the same key", d["in_doubt_retries"]),
        ("in-doubt suspensions settled by the operator", d["in_doubt_suspensions"]),
        ("completed calls run again", d["reran_completed"]),
        ("invariant breaches", len(d["violations"])),
        ("wall time", f"{d['seconds']} s ({d['mode']}, durability {d['durability']})"),
    ]
    for name, counts in s.more.items():
        rows.append((name.replace("_", " "), ", ".join(f"{k} {v}" for k, v in counts.items())))
    width = max(len(r[0]) for r in rows)
    for name, value in rows:
        print(f"{name:<{width}}  {value}")
    for v in d["violations"][:20]:
        print("BREACH:", v)


def more(summary: Summary, root: str, seed: int, *, forks: int, cancels: int, inputs: int = 0) -> None:
    """The fork, async-cancellation and bad-input tortures, counted into ``summary``.

    Forks and cancellations are in ``benchmarks/torture_more.py``, bad inputs in ``benchmarks/torture_inputs.py``.
    """
    if not forks and not cancels and not inputs:
        return
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from torture_more import cancel_torture, fork_torture  # noqa: PLC0415 - only when asked for

    rng = random.Random(seed)
    started = time.perf_counter()
    if forks:
        summary.more["forks"], breaches = fork_torture(root, forks, rng)
        summary.violations.extend(breaches)
    if cancels:
        summary.more["async_cancels"], breaches = cancel_torture(root, cancels, rng)
        summary.violations.extend(breaches)
    if inputs:
        from torture_inputs import torture as input_torture  # noqa: PLC0415 - only when asked for

        folder = os.path.join(root, "inputs")
        os.makedirs(folder, exist_ok=True)
        result = input_torture(inputs, seed=seed, root=folder)
        summary.more["bad_inputs"] = {"trials": result["trials"], **result["counts"]}
        summary.violations.extend(f"bad input: {b}" for b in result["breaches"])
    summary.seconds += time.perf_counter() - started


def postgres_mode(args: argparse.Namespace) -> int:
    """``--postgres``: worker processes on a throwaway PostgreSQL server, SIGKILLed at random (torture_pg.py)."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    sys.path.insert(0, str(ROOT / "tests"))
    from _pg import unavailable  # noqa: PLC0415 - the tests' throwaway server

    why = unavailable()
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(2**31)
    if why is not None:
        summary: dict[str, Any] = {"mode": "postgres", "seed": seed, "skipped": why, "violations": []}
        print(f"PostgreSQL torture left out: {why}")
    else:
        from torture_pg import print_table as pg_table  # noqa: PLC0415 - only when asked for
        from torture_pg import run as pg_run  # noqa: PLC0415

        if args.smoke:
            args.kills, args.executions, args.kill_every = 3, 6, 0.5
        summary = pg_run(args.kills, args.executions, args.workers, args.kill_every, seed)
        if not args.json:
            pg_table(summary)
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(summary))
    if args.json:
        print(json.dumps(summary))
    return 1 if summary["violations"] else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kills", type=int, default=1000, help="stop after this many SIGKILLs")
    parser.add_argument("--seed", type=int, default=None, help="seed for the kill plans (random by default)")
    parser.add_argument("--exec", dest="use_exec", action="store_true", help="a fresh interpreter per worker")
    parser.add_argument("--durability", choices=["full", "normal", "off"], default="full")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    parser.add_argument("--keep", metavar="DIR", help="work in DIR and keep it (default: a temp dir, removed)")
    parser.add_argument("--forks", type=int, default=0, help="also fork N times in children killed at random points")
    parser.add_argument("--cancels", type=int, default=0, help="also cancel N async runs at random points")
    parser.add_argument("--inputs", type=int, default=0, help="also try N bad inputs (benchmarks/torture_inputs.py)")
    parser.add_argument(
        "--postgres",
        action="store_true",
        help="the PostgreSQL mode: a fleet of workers SIGKILLed at random (benchmarks/torture_pg.py)",
    )
    parser.add_argument("--executions", type=int, default=40, help="--postgres: executions enqueued")
    parser.add_argument("--workers", type=int, default=3, help="--postgres: worker processes at a time")
    parser.add_argument("--kill-every", type=float, default=1.0, help="--postgres: at most this many s between kills")
    parser.add_argument("--worker", nargs=3, help=argparse.SUPPRESS)
    parser.add_argument("--smoke", "--quick", action="store_true", help="CI smoke mode (also --quick): 3 kills, seed 7")
    parser.add_argument("--json-out", metavar="PATH", help="also write the JSON to PATH (the table is still printed)")
    args = parser.parse_args(argv)
    if args.smoke:  # a few of every kind, so none of them can rot
        args.kills = 3
        args.seed = 7 if args.seed is None else args.seed
        args.forks, args.cancels, args.inputs = args.forks or 2, args.cancels or 2, args.inputs or 10
    if args.postgres:
        return postgres_mode(args)
    if args.worker:
        data_dir, eid, plan = args.worker
        worker(data_dir, eid, json.loads(plan), sys.stdout.fileno())
        return 0
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(2**31)
    DURABILITY["mode"] = args.durability
    root = args.keep or tempfile.mkdtemp(prefix="delite-torture-")
    os.makedirs(root, exist_ok=True)
    try:
        summary = torture(args.kills, seed=seed, use_exec=args.use_exec, root=root)
        more(summary, root, seed, forks=args.forks, cancels=args.cancels, inputs=args.inputs)
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    if args.json_out:
        Path(args.json_out).write_text(json.dumps({"seed": seed, **summary.as_dict()}))
    if args.json:
        print(json.dumps({"seed": seed, **summary.as_dict()}))
    else:
        print(f"seed {seed}")
        print_table(summary)
    return 1 if summary.violations else 0


if __name__ == "__main__":
    raise SystemExit(main())
