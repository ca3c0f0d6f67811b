"""Per-step overhead, bytes on disk, resume time and import time of delite.

A standalone script; it sets baselines and gates nothing. Run from the repository root:

    python benchmarks/bench_steps.py            # a table
    python benchmarks/bench_steps.py --json     # the same numbers as JSON
    python benchmarks/bench_steps.py --repeat 1 --processes 3 --resume 1000   # shorter: no 10,000-step resume
    python benchmarks/bench_steps.py --smoke    # or --quick; CI: tiny sizes, a few seconds, checks it still runs

What is measured (docs/benchmarks.md explains the limits):

* steps: one new execution of N steps with ``ScriptedProvider.tool_loop`` and a trivial tool, per durability
  mode, in a data directory that already exists (one per mode, warmed by a first run).
  One step is one model call and one tool call. ``ms/step`` is the wall time of ``agent.run`` divided by N
  (the median over repetitions); ``excl. model`` leaves out the time spent inside the scripted model, which
  is not delite's (the scripted model re-reads the conversation on every call, so its own cost grows with
  N; a real model's grows faster). ``p50 step`` is the median time from one tool call to the next (a result
  written, a model call, a response and an intent written), which a burst of disk traffic from another
  process moves less than the mean. ``fsync/step`` counts the log's fsync calls. ``CPU ms/step`` is the
  process's CPU time (every thread, user and system, so the kernel's work inside ``write`` and ``fsync``
  counts) per step, the scripted model's time left out: in ``off`` mode, what a step costs a core.
* fixed: what one execution costs whatever its length: a run whose model answers at once (the log and its
  claim created, one model call, the completion written), in the same warm data directory.
* disk: the log's size per step, the payload per step (the JSON of the model's text, the tool arguments and
  the tool result) and what delite adds beyond it; ``marginal B/step`` is the growth per extra step between
  the smallest and the largest N, so fixed costs (header, first and last record) do not flatter it.
* resume: a completed execution of N steps, continued by ``agent.run(text, execution_id=...)`` in a fresh
  process; timed inside the child after ``import delite`` (Agent built + run) and as the whole process.
  ``cold`` deletes the derived snapshot first, so the log is read, every frame verified, decoded and folded.
* recover: an *unfinished* execution of N steps (its process killed inside step N's tool call: the intent
  logged, the result not), recovered with ``agent.resume(id)`` in a fresh process, which runs the tool once
  more, calls the model and completes; timed as ``resume`` is. Each process recovers its own copy of the
  crashed data directory. With ``--against DIR`` (a checkout of another commit, such as ``main``), the same
  children run with that code on ``PYTHONPATH``, interleaved with this one's, round by round; each code
  crashes its own run first (the fold checkpoint a crash leaves is in that code's format).
* runtime recover: the same unfinished execution found and recovered by a ``Runtime`` starting in a fresh
  process (``start()`` lists the data directory, resumes it; ``rt.wait``), in a data directory that also holds
  ``--finished`` completed executions of N steps the listing index has not seen yet (the state after a busy
  process crashed: the index is only brought up to date by listings). Each code writes its own completed
  executions (with ``--against``, the base code's without tallies).
* check: what the writer's read-back check costs (every record is decoded with the reader's own types before
  it is appended): encoding the records of a 100-step log with and without it, per record and per step.
* import: ``import delite`` and ``from delite import Agent, ScriptedProvider, tool`` in fresh processes, timed
  inside the child, and the whole process next to a bare ``python -c pass``.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import msgspec  # noqa: E402
from _bytecode import precompile  # noqa: E402

import delite  # noqa: E402
from delite import Agent, ScriptedProvider, tool  # noqa: E402
from delite.log import _os as log_os  # noqa: E402
from delite.log import read_log  # noqa: E402
from delite.log.records import ModelResponded, ToolFinished  # noqa: E402

TEXT = "run the loop"

# The child that resumes a completed execution: timing starts before ``import delite``.
RESUME_CHILD = r"""
import sys, time, json
t0 = time.perf_counter()
import delite
from delite import Agent, ScriptedProvider, tool
t1 = time.perf_counter()
data_dir, eid, n, text = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]

@tool
def noop(i: int) -> dict:
    "A trivial tool."
    return {"ok": i}

provider = ScriptedProvider.tool_loop(n, "noop")
t2 = time.perf_counter()
agent = Agent(data_dir, provider=provider, tools=[noop])
t_open = time.perf_counter()
with agent:
    response = agent.run(text, execution_id=eid)
t3 = time.perf_counter()
assert response.status == "completed" and response.steps == n + 1, response
print(json.dumps({"import_ms": (t1 - t0) * 1e3, "open_ms": (t_open - t2) * 1e3, "call_ms": (t3 - t_open) * 1e3}))
"""

# The child that runs an execution and dies inside its last tool call (ToolStarted written, no result).
CRASH_CHILD = r"""
import os, sys
from delite import Agent, ScriptedProvider, tool
data_dir, eid, n, text = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]

@tool
def noop(i: int) -> dict:
    "A trivial tool."
    if i == n - 1:
        os._exit(3)
    return {"ok": i}

with Agent(data_dir, provider=ScriptedProvider.tool_loop(n, "noop"), tools=[noop], durability="off") as agent:
    agent.run(text, execution_id=eid)
"""

# The tool of the recovering children: it says which steps ran in this process (``runs``).
_RECORDING_NOOP = r"""
data_dir, eid, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
runs = []

@tool
def noop(i: int) -> dict:
    "A trivial tool."
    runs.append(i)
    return {"ok": i}
"""

# The child that recovers it with ``agent.resume``: timing starts before ``import delite``; it checks that
# the interrupted tool ran exactly once more and the execution completed. ``call_faults``: the process's
# minor page faults during the call (new memory touched: the bytes read and the objects decoded).
RECOVER_CHILD = (
    r"""
import resource, sys, time, json
t0 = time.perf_counter()
import delite
from delite import Agent, ScriptedProvider, tool
t1 = time.perf_counter()
"""
    + _RECORDING_NOOP
    + r"""
provider = ScriptedProvider.tool_loop(n, "noop")
t2 = time.perf_counter()
agent = Agent(data_dir, provider=provider, tools=[noop])
t_open = time.perf_counter()
faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
with agent:
    response = agent.resume(eid)
t3 = time.perf_counter()
faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults
assert response.status == "completed" and response.steps == n + 1 and runs == [n - 1], (response, runs)
print(json.dumps({
    "import_ms": (t1 - t0) * 1e3, "open_ms": (t_open - t2) * 1e3, "call_ms": (t3 - t_open) * 1e3,
    "call_faults": faults,
}))
"""
)

# The child that writes completed executions (``done-<i>``) into a data directory, with the code on its path.
FINISHED_CHILD = r"""
import sys
from delite import Agent, ScriptedProvider, tool
data_dir, n, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])

@tool
def noop(i: int) -> dict:
    "A trivial tool."
    return {"ok": i}

with Agent(data_dir, provider=ScriptedProvider.tool_loop(n, "noop"), tools=[noop], durability="off") as agent:
    for i in range(count):
        agent.run("run the loop", execution_id=f"done-{i}")
"""

# The child that recovers the unfinished execution through a Runtime: ``call`` is ``start()`` (it lists the data
# directory and resumes what a dead process left running) until ``rt.wait`` returns.
RUNTIME_RECOVER_CHILD = (
    r"""
import sys, time, json
t0 = time.perf_counter()
from delite import Agent, Runtime, ScriptedProvider, tool
t1 = time.perf_counter()
"""
    + _RECORDING_NOOP
    + r"""
rt = Runtime(data_dir)
Agent(data_dir, runtime=rt, provider=ScriptedProvider.tool_loop(n, "noop"), tools=[noop])
t_open = time.perf_counter()
rt.start()
assert rt.recovered == [eid], rt.recovered
response = rt.wait(eid, timeout=600)
t3 = time.perf_counter()
rt.shutdown()
assert response.status == "completed" and runs == [n - 1], (response, runs)
print(json.dumps({"import_ms": (t1 - t0) * 1e3, "open_ms": (t_open - t1) * 1e3, "call_ms": (t3 - t_open) * 1e3}))
"""
)

IMPORT_CHILD = "import sys, time; t = time.perf_counter(); exec(sys.argv[1]); print((time.perf_counter() - t) * 1e3)"
# ``import delite`` alone loads almost nothing (its names are imported on first use); what an application
# pays before its first run is the second statement.
IMPORTS = ("import delite", "from delite import Agent, ScriptedProvider, tool")


@tool
def noop(i: int) -> dict:
    """A trivial tool."""
    return {"ok": i}


class _Timed:
    """Wraps a callable and sums the time spent inside it (wall, and the calling thread's CPU)."""

    def __init__(self, fn: Any, name: str | None = None) -> None:
        self.fn = fn
        self.seconds = 0.0
        self.cpu_seconds = 0.0
        if name is not None:
            self.name = name

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        t, c = time.perf_counter(), time.thread_time()
        try:
            return self.fn(*args, **kwargs)
        finally:
            self.seconds += time.perf_counter() - t
            self.cpu_seconds += time.thread_time() - c


def _payload_bytes(path: str) -> int:
    """The JSON of everything the model and the tool produced: text, tool arguments, tool results."""
    enc = msgspec.json.encode
    total = 0
    for r in read_log(path).records:
        if isinstance(r, ModelResponded):
            total += len((r.content or "").encode())
            total += sum(len(enc(c.arguments)) for c in r.tool_calls)
        elif isinstance(r, ToolFinished):
            total += len(enc(r.result)) + len((r.error or "").encode())
    return total


def run_steps(n: int, mode: str, data_dir: str) -> dict[str, Any]:
    """One new execution of ``n`` steps in ``data_dir``."""
    provider = _Timed(ScriptedProvider.tool_loop(n, "noop"), name="scripted")
    marks: list[float] = []

    @tool("noop", description="A trivial tool.")
    def timed_noop(i: int) -> dict:
        marks.append(time.perf_counter())
        return {"ok": i}

    syncs = {"n": 0, "seconds": 0.0}
    real_fsync = log_os.fsync

    def counting_fsync(*args: Any, **options: Any) -> None:  # whatever the seam's signature becomes
        syncs["n"] += 1
        started = time.perf_counter()
        try:
            real_fsync(*args, **options)
        finally:
            syncs["seconds"] += time.perf_counter() - started

    log_os.fsync = counting_fsync
    try:
        with Agent(data_dir, provider=provider, tools=[timed_noop], durability=mode) as agent:
            start, cpu_start = time.perf_counter(), time.process_time()
            response = agent.run(TEXT)
            elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    finally:
        log_os.fsync = real_fsync
    assert response.status == "completed", response
    assert response.steps == n + 1, response
    log = os.path.join(data_dir, "executions", response.execution_id + ".log")
    size = os.path.getsize(log)
    payload = _payload_bytes(log)
    return {
        "mode": mode,
        "steps": n,
        "ms_per_step": elapsed * 1e3 / n,
        "delite_ms_per_step": (elapsed - provider.seconds) * 1e3 / n,
        "intervals_ms": [(b - a) * 1e3 for a, b in itertools.pairwise(marks)],
        "fsyncs_per_step": syncs["n"] / n,
        # the time spent inside delite's own fsync calls during the run, and the rest of delite's time: what
        # "two fsyncs plus X" means, with the fsyncs as this run's disk made them (not a separate probe)
        "fsync_ms_per_step": syncs["seconds"] * 1e3 / n,
        "beyond_fsync_ms_per_step": (elapsed - provider.seconds - syncs["seconds"]) * 1e3 / n,
        # CPU time of the whole process (every thread, user and system: the kernel's work in write and fsync
        # included), the scripted model's time left out: in ``off`` mode, what a step costs a core
        "cpu_ms_per_step": (cpu - provider.cpu_seconds) * 1e3 / n,
        "log_bytes": size,
        "bytes_per_step": size / n,
        "payload_per_step": payload / n,
        "overhead_per_step": (size - payload) / n,
    }


def bench_steps(sizes: list[int], modes: list[str], repeat: int, workdir: str) -> list[dict[str, Any]]:
    # Repetitions are interleaved across modes and sizes, so a burst of disk traffic from another process
    # spreads over all of them instead of landing on one row.
    # Each run is a new execution in a data directory that already exists, as in an application: creating
    # the directory tree is a one-off cost, and its first fsync also commits the directories' metadata.
    dirs = {m: tempfile.mkdtemp(prefix=f"steps-{m}-", dir=workdir) for m in modes}
    for mode in modes:
        run_steps(1, mode, dirs[mode])
    runs: dict[tuple[str, int], list[dict[str, Any]]] = {(m, n): [] for m in modes for n in sizes}
    for _ in range(repeat):
        for mode in modes:
            for n in sizes:
                runs[mode, n].append(run_steps(n, mode, dirs[mode]))
    rows = []
    for mine in runs.values():
        row = dict(mine[0])
        for key in (
            "ms_per_step",
            "delite_ms_per_step",
            "fsync_ms_per_step",
            "beyond_fsync_ms_per_step",
            "cpu_ms_per_step",
        ):
            row[key] = statistics.median(r[key] for r in mine)
        row["p50_step_ms"] = statistics.median(x for r in mine for x in r["intervals_ms"])
        del row["intervals_ms"]
        row["repeat"] = repeat
        rows.append(row)
    for mode in modes:
        mine = [r for r in rows if r["mode"] == mode]
        small, large = mine[0], mine[-1]
        if large["steps"] > small["steps"]:
            marginal = (large["log_bytes"] - small["log_bytes"]) / (large["steps"] - small["steps"])
            for r in mine:
                r["marginal_bytes_per_step"] = marginal
    return rows


def bench_write_check(repeat: int, workdir: str, steps: int = 100) -> dict[str, Any]:
    """The writer's read-back check: every record is decoded with the reader's types before it is appended.

    Times encoding the records of a real ``steps``-step log with a plain encoder and with ``encode_record``
    (encode, then strict decode) and reports what the check adds per record and per step (best of ``repeat``).
    """
    from delite.log._codec import encode_record  # noqa: PLC0415

    data = tempfile.mkdtemp(prefix="check-", dir=workdir)
    run_steps(steps, "off", data)
    (log,) = Path(data, "executions").glob("*.log")
    records = read_log(str(log)).records
    plain = msgspec.json.Encoder()
    loops = max(1, 20_000 // len(records))

    def best(fn: Any) -> float:
        times = []
        for _ in range(max(repeat, 3)):
            t0 = time.perf_counter()
            for _ in range(loops):
                for r in records:
                    fn(r)
            times.append((time.perf_counter() - t0) / (loops * len(records)))
        return min(times) * 1e6

    plain_us, checked_us = best(plain.encode), best(encode_record)
    return {
        "records": len(records),
        "steps": steps,
        "plain_us_per_record": plain_us,
        "checked_us_per_record": checked_us,
        "check_us_per_record": checked_us - plain_us,
        "check_us_per_step": (checked_us - plain_us) * len(records) / steps,
    }


def bench_fixed(modes: list[str], repeat: int, workdir: str) -> list[dict[str, Any]]:
    """What every execution pays once: a run whose model answers at once (create, one model call, complete)."""
    rows = []
    for mode in modes:
        data_dir = tempfile.mkdtemp(prefix=f"fixed-{mode}-", dir=workdir)
        times = []
        with Agent(data_dir, provider=ScriptedProvider(["done"]), durability=mode) as agent:
            agent.run(TEXT)  # warm the data directory
            for _ in range(repeat):
                start = time.perf_counter()
                response = agent.run(TEXT)
                times.append((time.perf_counter() - start) * 1e3)
                assert response.status == "completed", response
        rows.append({"mode": mode, "ms_per_execution": statistics.median(times), "repeat": repeat})
    return rows


def make_completed(n: int, workdir: str) -> tuple[str, str]:
    """A completed execution of ``n`` steps (written with durability off: the bytes are the same)."""
    data_dir = tempfile.mkdtemp(prefix=f"resume-{n}-", dir=workdir)
    eid = f"bench-{n}"
    with Agent(data_dir, provider=ScriptedProvider.tool_loop(n, "noop"), tools=[noop], durability="off") as agent:
        response = agent.run(TEXT, execution_id=eid)
    assert response.status == "completed", response
    _keep_snapshot(data_dir, eid)
    return data_dir, eid


def _keep_snapshot(data_dir: str, eid: str) -> None:
    """Give a finished log the snapshot a log that cannot answer for itself keeps (for the "snapshot" rows).

    The run keeps none when its terminal record's tally answers for it, which is the "cold" row; a snapshot is
    still what a log written before tallies or one with a very long final answer is answered from.
    Made as the run would have made it; a log under the snapshot threshold gets none either way.
    """
    from delite.log import parse_log  # noqa: PLC0415 - only for the resume rows
    from delite.state._outcome import finished_outcome  # noqa: PLC0415
    from delite.store import _snapshot  # noqa: PLC0415

    log = os.path.join(data_dir, "executions", eid + ".log")
    snap = os.path.join(data_dir, "snapshots", eid + ".snap")
    if os.path.exists(snap):
        return
    data = Path(log).read_bytes()
    contents = parse_log(data)
    told = finished_outcome(contents.records)
    assert told is not None
    _snapshot.save(snap, log, len(data), told, last_offset=contents.offsets[-1])


def _child(code: str, *args: str, code_dir: str | None = None) -> tuple[str, float]:
    """Run ``code`` in a fresh interpreter (with ``code_dir`` first on ``PYTHONPATH``); its stdout and wall ms."""
    env = None
    if code_dir is not None:
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [code_dir, os.environ.get("PYTHONPATH")])))
    start = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, check=True, env=env, cwd=code_dir
    )
    return out.stdout, (time.perf_counter() - start) * 1e3


def _codes(against: str | None) -> list[tuple[str, str | None]]:
    """The code each child runs: ``this`` checkout, and first ``base`` (another checkout) when given."""
    codes: list[tuple[str, str | None]] = [("this", str(ROOT))]
    if against is not None:
        codes.insert(0, ("base", os.path.abspath(against)))
    return codes


class _Timings:
    """The times of one row's fresh processes, per code (``this``, ``base``).

    ``open`` is building the Agent (the store opened, and what delite imports only when first used), ``call``
    the ``run``/``resume`` call itself, ``after import`` the two together; then the import and the whole process.
    """

    def __init__(self, codes: list[tuple[str, str | None]]) -> None:
        names = [name for name, _ in codes]
        self.open: dict[str, list[float]] = {name: [] for name in names}
        self.call: dict[str, list[float]] = {name: [] for name in names}
        self.imports: dict[str, list[float]] = {name: [] for name in names}
        self.whole: dict[str, list[float]] = {name: [] for name in names}
        self.faults: dict[str, list[int]] = {name: [] for name in names}

    def add(self, name: str, out: str, wall: float) -> None:
        """Take one child's JSON line (``open_ms``, ``call_ms``, ``import_ms``, ``call_faults`` if it counts them)
        and its process's wall time."""
        result = json.loads(out)
        self.open[name].append(result["open_ms"])
        self.call[name].append(result["call_ms"])
        self.imports[name].append(result["import_ms"])
        self.whole[name].append(wall)
        if "call_faults" in result:
            self.faults[name].append(result["call_faults"])

    def row(self, name: str, log: str, repeat: int, **extra: Any) -> dict[str, Any]:
        """The medians (and the fastest and slowest call) of ``name``'s processes, with the log's size."""
        calls = self.call[name]
        return {
            **extra,
            "code": name,
            "log_bytes": os.path.getsize(log),
            "records": len(read_log(log).records),
            "open_ms": statistics.median(self.open[name]),
            "call_ms": statistics.median(calls),
            "call_ms_min": min(calls),
            "call_ms_max": max(calls),
            "resume_ms": statistics.median(o + c for o, c in zip(self.open[name], calls, strict=True)),
            "import_ms": statistics.median(self.imports[name]),
            "process_ms": statistics.median(self.whole[name]),
            "call_faults": statistics.median(self.faults[name]) if self.faults[name] else None,
            "repeat": repeat,
        }


def bench_resume(sizes: list[int], repeat: int, workdir: str, against: str | None = None) -> list[dict[str, Any]]:
    """Continue a completed execution of N steps in fresh processes, with its snapshot and without (``cold``).

    With ``against``, each round runs the other checkout's child and then this one's, on the same log.
    """
    codes = _codes(against)
    rows = []
    for n in sizes:
        data_dir, eid = make_completed(n, workdir)
        log = os.path.join(data_dir, "executions", eid + ".log")
        snapshots = [p for p in Path(data_dir).rglob(f"{eid}.*") if p.suffix not in (".log", ".lock")]
        # A log under the snapshot threshold (64 KiB) has none: its "snapshot" row is a cold read, and says so.
        variants = ("snapshot", "cold") if snapshots else ("cold",)
        for variant in variants:
            times = _Timings(codes)
            for _ in range(repeat):
                for name, code_dir in codes:
                    if variant == "cold":
                        for p in snapshots:
                            p.unlink(missing_ok=True)
                    elif not all(p.exists() for p in snapshots):
                        raise RuntimeError("a resume with the snapshot did not leave it in place")
                    times.add(name, *_child(RESUME_CHILD, data_dir, eid, str(n), TEXT, code_dir=code_dir))
            rows += [times.row(name, log, repeat, steps=n, variant=variant) for name, _ in codes]
        shutil.rmtree(data_dir, ignore_errors=True)
    return rows


def _settle_log(path: str) -> None:
    """``fsync`` a copied log, as a crashed run's log is: its first append after the crash then syncs one record.

    Left dirty, the recovering process's first ``fsync`` would write the whole copy out (a millisecond per 0.5 MB
    here), which no real recovery pays: in ``full`` every record of the dead run was synced before it went on.
    """
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def bench_recover(sizes: list[int], repeat: int, workdir: str, against: str | None = None) -> list[dict[str, Any]]:
    """Recover an unfinished execution of N steps (killed inside step N's tool) with ``agent.resume``.

    One row per N and code: ``this`` (the checkout the script runs from) and, with ``against``, ``base`` (that
    checkout), their fresh processes interleaved. Each process recovers a fresh copy of the crashed directory.
    """
    codes = _codes(against)
    rows = []
    for n in sizes:
        eid = f"bench-{n}"
        crashed: dict[str, str] = {}
        for name, code_dir in codes:
            # Each code crashes its own run: the derived files a crash leaves (a fold checkpoint) are its own format.
            crashed[name] = tempfile.mkdtemp(prefix=f"crashed-{n}-{name}-", dir=workdir)
            env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [code_dir, os.environ.get("PYTHONPATH")])))
            args = [sys.executable, "-c", CRASH_CHILD, crashed[name], eid, str(n), TEXT]
            done = subprocess.run(args, check=False, env=env, cwd=code_dir)
            if done.returncode != 3:
                raise RuntimeError(f"the crashing run of {n} steps exited with {done.returncode}, not 3")
        times = _Timings(codes)
        for _ in range(repeat):
            for name, code_dir in codes:
                data_dir = tempfile.mkdtemp(prefix=f"recover-{n}-", dir=workdir)
                shutil.copytree(crashed[name], data_dir, dirs_exist_ok=True)
                _settle_log(os.path.join(data_dir, "executions", eid + ".log"))
                out, wall = _child(RECOVER_CHILD, data_dir, eid, str(n), code_dir=code_dir)
                shutil.rmtree(data_dir, ignore_errors=True)
                times.add(name, out, wall)
        log = os.path.join(crashed["this"], "executions", eid + ".log")
        rows += [times.row(name, log, repeat, steps=n) for name, _ in codes]
        for path in crashed.values():
            shutil.rmtree(path, ignore_errors=True)
    return rows


def bench_runtime_recover(
    sizes: list[int], finished: int, repeat: int, workdir: str, against: str | None = None
) -> list[dict[str, Any]]:
    """Recover an unfinished execution of N steps through a Runtime, beside ``finished`` unindexed completed ones.

    One row per N and code, as :func:`bench_recover`; each code crashes its own run and writes its own
    completed executions.
    """
    codes = _codes(against)
    rows = []
    for n in sizes:
        eid = f"bench-{n}"
        crashed: dict[str, str] = {}
        for name, code_dir in codes:
            crashed[name] = tempfile.mkdtemp(prefix=f"rt-crashed-{n}-{name}-", dir=workdir)
            env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [code_dir, os.environ.get("PYTHONPATH")])))
            for args, expected in (
                ([FINISHED_CHILD, crashed[name], str(n), str(finished)], 0),
                ([CRASH_CHILD, crashed[name], eid, str(n), TEXT], 3),
            ):
                done = subprocess.run([sys.executable, "-c", *args], check=False, env=env, cwd=code_dir)
                if done.returncode != expected:
                    raise RuntimeError(f"a child writing the {n}-step executions exited with {done.returncode}")
        times = _Timings(codes)
        for _ in range(repeat):
            for name, code_dir in codes:
                data_dir = tempfile.mkdtemp(prefix=f"rt-recover-{n}-", dir=workdir)
                shutil.copytree(crashed[name], data_dir, dirs_exist_ok=True)
                _settle_log(os.path.join(data_dir, "executions", eid + ".log"))
                out, wall = _child(RUNTIME_RECOVER_CHILD, data_dir, eid, str(n), code_dir=code_dir)
                shutil.rmtree(data_dir, ignore_errors=True)
                times.add(name, out, wall)
        log = os.path.join(crashed["this"], "executions", eid + ".log")
        rows += [times.row(name, log, repeat, steps=n, finished=finished) for name, _ in codes]
        for path in crashed.values():
            shutil.rmtree(path, ignore_errors=True)
    return rows


def bench_import(repeat: int) -> dict[str, Any]:
    rows = []
    for statement in IMPORTS:
        inside, whole = [], []
        for _ in range(repeat):
            out, wall = _child(IMPORT_CHILD, statement)
            inside.append(float(out))
            whole.append(wall)
        rows.append(
            {"statement": statement, "import_ms": statistics.median(inside), "process_ms": statistics.median(whole)}
        )
    bare = statistics.median(_child("pass")[1] for _ in range(repeat))
    return {"imports": rows, "bare_python_ms": bare, "repeat": repeat}


def fsync_floor(workdir: str, count: int = 300) -> float:
    """Median ms of one small append + fsync in ``workdir``: the disk's floor for one durable record."""
    path = os.path.join(workdir, "fsync-probe")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    samples = []
    try:
        for _ in range(count):
            start = time.perf_counter()
            os.write(fd, b"x" * 200)
            os.fsync(fd)
            samples.append(time.perf_counter() - start)
    finally:
        os.close(fd)
        os.unlink(path)
    return statistics.median(samples) * 1e3


def machine(workdir: str, probes: int = 300) -> dict[str, Any]:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    fs = "unknown"
    try:
        with open("/proc/mounts") as f:
            mounts = [line.split() for line in f]
        real = os.path.realpath(workdir)
        best = max((m for m in mounts if real.startswith(m[1])), key=lambda m: len(m[1]))
        fs = f"{best[2]} on {best[0]} (mounted at {best[1]})"
    except (OSError, ValueError):
        pass
    return {
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "filesystem": fs,
        "delite": delite.__version__,
        "fsync_ms": fsync_floor(workdir, probes),
    }


def _table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    line = lambda cells: "| " + " | ".join(c.rjust(w) for c, w in zip(cells, widths, strict=True)) + " |"  # noqa: E731
    sep = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([line(headers), sep, *(line(r) for r in rows)])


def render(result: dict[str, Any]) -> str:
    m = result["machine"]
    head = f"machine: {m['nproc']} cores, {m['cpu']}, Python {m['python']}, {m['filesystem']}; "
    after = f", {m['fsync_ms_after']:.3f} ms after" if "fsync_ms_after" in m else ""
    out = [head + f"one append+fsync {m['fsync_ms']:.3f} ms before the run (median){after}"]
    out += [m["bytecode"], ""] if "bytecode" in m else [""]
    if result.get("steps"):
        rows = [
            [
                r["mode"],
                str(r["steps"]),
                f"{r['ms_per_step']:.3f}",
                f"{r['delite_ms_per_step']:.3f}",
                f"{r['cpu_ms_per_step']:.3f}",
                f"{r['p50_step_ms']:.3f}",
                f"{r['fsyncs_per_step']:.2f}",
                f"{r['fsync_ms_per_step']:.3f}",
                f"{r['beyond_fsync_ms_per_step']:.3f}",
                f"{r['bytes_per_step']:.0f}",
                f"{r['payload_per_step']:.0f}",
                f"{r['overhead_per_step']:.0f}",
                f"{r['marginal_bytes_per_step']:.0f}" if "marginal_bytes_per_step" in r else "",
            ]
            for r in result["steps"]
        ]
        headers = ["mode", "N", "ms/step", "excl. model", "CPU ms/step", "p50 step", "fsync/step", "in fsync ms"]
        headers += ["beyond fsync ms"]
        headers += ["B/step", "payload B", "overhead B"]
        out += [_table([*headers, "marginal B/step"], rows), ""]
    if result.get("fixed"):
        parts = [f"{r['mode']} {r['ms_per_execution']:.2f} ms" for r in result["fixed"]]
        out += ["fixed cost of one execution (create, one model call, complete): " + ", ".join(parts), ""]
    if result.get("check"):
        c = result["check"]
        line = (
            f"write check ({c['records']} records of a {c['steps']}-step log): encode {c['plain_us_per_record']:.2f} us"
            f"/record, encode + read-back check {c['checked_us_per_record']:.2f} us/record: the check adds "
            f"{c['check_us_per_record']:.2f} us/record, {c['check_us_per_step']:.2f} us/step"
        )
        out += [line, ""]
    if result.get("resume"):
        rows = [
            [
                str(r["steps"]),
                r["variant"],
                r["code"],
                str(r["records"]),
                f"{r['log_bytes'] / 1e6:.2f}",
                f"{r['call_ms']:.1f} ({r['call_ms_min']:.1f})",
                f"{r['open_ms']:.1f}",
                f"{r['resume_ms']:.1f}",
                f"{r['import_ms']:.1f}",
                f"{r['process_ms']:.1f}",
            ]
            for r in result["resume"]
        ]
        headers = [
            "N",
            "resume",
            "code",
            "records",
            "log MB",
            "call ms, median (min)",
            "open ms",
            "after import ms",
            "import ms",
            "whole process ms",
        ]
        out += [_table(headers, rows), ""]
    if result.get("recover"):
        rows = [
            [
                str(r["steps"]),
                r["code"],
                str(r["records"]),
                f"{r['log_bytes'] / 1e6:.2f}",
                f"{r['call_ms']:.1f} ({r['call_ms_min']:.1f}-{r['call_ms_max']:.1f})",
                f"{r['open_ms']:.1f}",
                f"{r['resume_ms']:.1f}",
                f"{r['import_ms']:.1f}",
                f"{r['process_ms']:.1f}",
                f"{r['call_faults']:.0f}",
            ]
            for r in result["recover"]
        ]
        headers = [
            "N",
            "code",
            "records",
            "log MB",
            "call ms, median (min-max)",
            "open ms",
            "after import ms",
            "import ms",
            "whole process ms",
            "page faults in the call",
        ]
        out += ["unfinished executions (killed inside step N's tool), recovered with agent.resume:"]
        out += [_table(headers, rows), ""]
    if result.get("runtime_recover"):
        rows = [
            [
                str(r["steps"]),
                str(r["finished"]),
                r["code"],
                f"{r['call_ms']:.1f} ({r['call_ms_min']:.1f}-{r['call_ms_max']:.1f})",
                f"{r['open_ms']:.1f}",
                f"{r['process_ms']:.1f}",
            ]
            for r in result["runtime_recover"]
        ]
        headers = [
            "N",
            "finished beside it",
            "code",
            "start + wait ms, median (min-max)",
            "open ms",
            "whole process ms",
        ]
        out += ["the same, found and recovered by a Runtime starting beside completed executions not yet indexed:"]
        out += [_table(headers, rows), ""]
    if result.get("import"):
        i = result["import"]
        rows = [[r["statement"], f"{r['import_ms']:.1f}", f"{r['process_ms']:.1f}"] for r in i["imports"]]
        rows.append(["(bare python -c pass)", "", f"{i['bare_python_ms']:.1f}"])
        out += [_table(["fresh process, median of " + str(i["repeat"]), "import ms", "whole process ms"], rows)]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--json", action="store_true", help="print JSON instead of tables")
    parser.add_argument("--steps", default="10,100,1000", help="comma-separated step counts (default 10,100,1000)")
    parser.add_argument("--modes", default="full,normal,off", help="durability modes (default full,normal,off)")
    parser.add_argument("--resume", default="1000,10000", help="sizes of the resumed executions (default 1000,10000)")
    parser.add_argument(
        "--finished",
        type=int,
        default=50,
        help="runtime recover: completed executions beside the unfinished one (default 50, of the smallest N)",
    )
    parser.add_argument("--repeat", type=int, default=3, help="repetitions of each step run (median)")
    parser.add_argument("--processes", type=int, default=7, help="fresh processes per resume/import figure")
    parser.add_argument("--dir", default=None, help="where to put the data directories (default: a temp dir)")
    parser.add_argument(
        "--skip", default="", help="comma-separated sections to skip: steps,resume,recover,runtime-recover,import"
    )
    parser.add_argument(
        "--against",
        metavar="DIR",
        default=None,
        help="resume and recover: also run a checkout of other code (e.g. main), interleaved",
    )
    parser.add_argument(
        "--smoke",
        "--quick",
        action="store_true",
        help="CI smoke mode (also --quick): tiny sizes, a few seconds, no real numbers",
    )
    parser.add_argument("--json-out", metavar="PATH", help="also write the JSON to PATH (the tables are still printed)")
    args = parser.parse_args(argv)
    probes = 300
    if args.smoke:
        # 200 steps make a log over the snapshot threshold (64 KiB): both resume variants run.
        args.steps, args.repeat, args.processes, args.resume, probes = "2,10", 1, 1, "200", 10
        args.finished = 2
    skip = set(filter(None, args.skip.split(",")))
    sizes = [int(x) for x in args.steps.split(",") if x]
    modes = [x for x in args.modes.split(",") if x]
    resume = [int(x) for x in args.resume.split(",") if x]

    workdir = tempfile.mkdtemp(prefix="delite-bench-", dir=args.dir)
    try:
        result: dict[str, Any] = {"machine": machine(workdir, probes), "smoke": args.smoke}
        if {
            "resume",
            "recover",
            "runtime-recover",
            "import",
        } - skip:  # fresh processes: time them as an installed package runs
            result["machine"]["bytecode"] = precompile(*(d for _, d in _codes(args.against) if d is not None))
        if "steps" not in skip:
            result["steps"] = bench_steps(sizes, modes, args.repeat, workdir)
            result["fixed"] = bench_fixed(modes, 1 if args.smoke else 10 * args.repeat, workdir)
            result["check"] = bench_write_check(1 if args.smoke else args.repeat, workdir)
        if "resume" not in skip:
            result["resume"] = bench_resume(resume, args.processes, workdir, args.against)
        if "recover" not in skip:
            result["recover"] = bench_recover(resume, args.processes, workdir, args.against)
        if "runtime-recover" not in skip:
            sizes = [min(resume)] if resume else []
            result["runtime_recover"] = bench_runtime_recover(
                sizes, args.finished, args.processes, workdir, args.against
            )
        if "import" not in skip:
            result["import"] = bench_import(args.processes)
        # The disk is shared: a second probe shows whether the fsync floor moved while the benchmark ran.
        result["machine"]["fsync_ms_after"] = fsync_floor(workdir, probes)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2) if args.json else render(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
