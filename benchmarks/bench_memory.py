"""Memory: peak resident memory of one execution, of many at once in a Runtime, and of resuming a long one.

Standalone; sets baselines and gates nothing.

    python benchmarks/bench_memory.py                  # the tables (about a minute and a half)
    python benchmarks/bench_memory.py --json           # the same numbers as JSON
    python benchmarks/bench_memory.py --resume-steps 10000   # resume 10,000 steps only (no 100,000-step log)
    python benchmarks/bench_memory.py --smoke          # or --quick; CI: a few seconds, checks it still runs

Every measurement is a fresh process (this script run with ``--child``), whose peak resident set (``VmHWM``
in ``/proc/self/status``) is read at its end, next to its resident set just before the measured work
(``VmRSS``), so the growth the work caused is the difference. Every run checks what it measured (every
execution answered, the resumed one completed with every step's tool run once) and exits 1 if it did not.

* **floor**: ``import delite``, an :class:`~delite.Agent` and a :class:`~delite.Runtime` built, nothing run.
* **one execution**: ``agent.run`` of N steps (a scripted model, a trivial tool, ``full`` durability).
* **many at once**: K executions started with ``rt.go`` in one Runtime and waited for; each is 3 steps with
  a model that awaits 2 s per call, so all K are in flight at the same time (a sampler records the most in
  flight at once, ``rt.running``). Per execution is the peak minus the same process's resident set before the
  first ``go``, divided by K.
* **resume a long execution**: an unfinished execution of N steps (N - 1 done, the last tool call in
  flight, as a crash leaves it) is written straight through the log API, then ``agent.resume(id)`` completes
  it in a fresh process. The peak is set against the log's size on disk: delite reads the log a chunk at a
  time (1 MiB; the file's bytes are never all held at once), but it keeps every record decoded and folds
  them into the conversation the model is sent, so the growth is a multiple of the log's size, not a
  constant; the table says by how much.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
EID = "bench"


def memory_kb(field: str) -> int:
    """A field of /proc/self/status in KiB (VmRSS now, VmHWM the peak so far); 0 where there is no /proc."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


class LazyScript(Sequence[Any]):
    """The script of ``ScriptedProvider.tool_loop(n, "append")`` without holding n entries in memory."""

    def __init__(self, n: int) -> None:
        self.n = n

    def __len__(self) -> int:
        return self.n + 1

    def __getitem__(self, i: Any) -> Any:
        if not isinstance(i, int) or not 0 <= i <= self.n:
            raise IndexError(i)
        return {"tool_calls": [{"name": "append", "arguments": {"i": i}}]} if i < self.n else "done"


# -- the children: one measurement each, in a fresh process --------------------------------------------------------


def child_floor(data_dir: str) -> dict[str, Any]:
    from delite import Agent, Runtime, ScriptedProvider, tool  # noqa: PLC0415

    @tool
    def append(i: int) -> str:
        """A trivial tool."""
        return "ok"

    rt = Runtime(data_dir)
    Agent(data_dir, runtime=rt, provider=ScriptedProvider.tool_loop(1, "append"), tools=[append])
    return {"ok": True}


def child_one(data_dir: str, steps: int) -> dict[str, Any]:
    from delite import Agent, ScriptedProvider, tool  # noqa: PLC0415

    @tool
    def append(i: int) -> str:
        """A trivial tool."""
        return "ok"

    provider = ScriptedProvider(())
    provider.script = LazyScript(steps)  # type: ignore[assignment]
    agent = Agent(data_dir, provider=provider, tools=[append])
    before = memory_kb("VmRSS")
    started = time.perf_counter()
    response = agent.run("go", execution_id=EID)
    return {
        "ok": response.answer == "done" and response.status == "completed",
        "before_kb": before,
        "seconds": time.perf_counter() - started,
    }


def child_many(data_dir: str, executions: int, steps: int, delay: float) -> dict[str, Any]:
    from delite import Agent, Runtime, ScriptedProvider, tool  # noqa: PLC0415

    @tool
    def append(i: int) -> str:
        """A trivial tool."""
        return "ok"

    rt = Runtime(data_dir)
    provider = ScriptedProvider.tool_loop(steps, "append", delay=delay)
    agent = Agent(data_dir, runtime=rt, provider=provider, tools=[append])
    rt.start()
    most = [0]
    done = threading.Event()

    def sample() -> None:  # the most executions in flight at once, looked at every 10 ms
        while not done.wait(0.01):
            most[0] = max(most[0], rt.running)

    sampler = threading.Thread(target=sample, daemon=True)
    before = memory_kb("VmRSS")
    sampler.start()
    started = time.perf_counter()
    ids = [rt.go(agent, "go") for _ in range(executions)]
    answers = [rt.wait(eid, timeout=600).answer for eid in ids]
    seconds = time.perf_counter() - started
    done.set()
    sampler.join()
    rt.shutdown()
    return {
        "ok": answers == ["done"] * executions,
        "before_kb": before,
        "seconds": seconds,
        "most_in_flight": most[0],
    }


def child_build(data_dir: str, steps: int) -> dict[str, Any]:
    """An unfinished execution of ``steps`` steps, the last tool call in flight, written through the log API.

    Its first record comes from a real execution killed in its first tool call (so the configuration matches
    the resuming agent's); the steps repeat the records delite writes for one step, with their numbers and ids.
    """
    import msgspec  # noqa: PLC0415

    from delite import Agent, ScriptedProvider, tool  # noqa: PLC0415
    from delite.log import Durability, LogWriter, read_log  # noqa: PLC0415
    from delite.log.records import ModelResponded, ToolFinished, ToolStarted  # noqa: PLC0415
    from delite.store import Layout  # noqa: PLC0415

    class Stop(BaseException):
        """Ends the first run inside its tool, as a crash would (nothing more is written)."""

    @tool
    def append(i: int) -> str:
        """A trivial tool."""
        raise Stop

    agent = Agent(data_dir, provider=ScriptedProvider.tool_loop(1, "append"), tools=[append])
    with contextlib.suppress(Stop):
        agent.run("go", execution_id=EID)
    agent.close()
    path = Layout(data_dir).log(EID)
    first = read_log(path).records
    started, model, tool_started = first[0], first[1], first[2]
    assert isinstance(model, ModelResponded), first
    assert isinstance(tool_started, ToolStarted), first
    call = model.tool_calls[0]
    records: list[Any] = [started]
    at = started.at
    for i in range(steps):
        cid = f"c{i + 1}.0"
        records.append(
            msgspec.structs.replace(
                model,
                at=at + i * 0.001,
                step=i + 1,
                tool_calls=[msgspec.structs.replace(call, id=cid, arguments={"i": i}, provider_id=f"call_{i}_0")],
            )
        )
        records.append(
            msgspec.structs.replace(tool_started, at=at + i * 0.001, call_id=cid, idempotency_key=f"{EID}:{cid}")
        )
        if i < steps - 1:
            records.append(ToolFinished(at=at + i * 0.001, call_id=cid, result="ok", duration_ms=0.05, source="tool"))
    os.unlink(path)
    LogWriter.create(path, Durability.FULL, records).close()
    return {"ok": True, "records": len(records), "log_bytes": os.path.getsize(path)}


def child_checkpoint(data_dir: str, steps: int) -> dict[str, Any]:
    """Save the fold checkpoint a running engine keeps for the unfinished execution (the store's own code).

    The state is the fold of the whole log, offered once as a run offers its state after an append; the resume
    measured next then reads the conversation from the checkpoint and only the history it needs.
    """
    from delite.store import FileStore  # noqa: PLC0415

    store = FileStore(data_dir)
    with store.claim(EID) as log:
        log.offer_state(log.state())
    path = store.layout.checkpoint(EID)
    return {"ok": os.path.exists(path), "steps": steps, "checkpoint_bytes": os.path.getsize(path)}


def child_resume(data_dir: str, steps: int) -> dict[str, Any]:
    from delite import Agent, ScriptedProvider, tool  # noqa: PLC0415

    runs: list[int] = []

    @tool
    def append(i: int) -> str:
        """A trivial tool."""
        runs.append(i)
        return "ok"

    from delite.store import _file  # noqa: PLC0415

    loaded: list[bool] = []
    real_load = _file.load_checkpoint

    def load(*args: Any, **kwargs: Any) -> Any:  # whether the claim's checkpoint was a hit, said in the result
        found = real_load(*args, **kwargs)
        loaded.append(found is not None)
        return found

    _file.load_checkpoint = load
    provider = ScriptedProvider(())
    provider.script = LazyScript(steps)  # type: ignore[assignment]
    agent = Agent(data_dir, provider=provider, tools=[append])
    before = memory_kb("VmRSS")
    started = time.perf_counter()
    response = agent.resume(EID)
    seconds = time.perf_counter() - started
    return {
        "ok": response.status == "completed" and response.answer == "done" and runs == [steps - 1],
        "before_kb": before,
        "seconds": seconds,
        "tool_runs": runs,
        "used_checkpoint": any(loaded),
    }


CHILDREN: dict[str, Callable[..., dict[str, Any]]] = {
    "floor": child_floor,
    "one": child_one,
    "many": child_many,
    "build": child_build,
    "checkpoint": child_checkpoint,
    "resume": child_resume,
}


def run_child(mode: str, *args: Any) -> dict[str, Any]:
    """Run one measurement in a fresh process; its result with its peak and the whole process's time."""
    started = time.perf_counter()
    out = subprocess.run(
        [sys.executable, __file__, "--child", mode, *map(str, args)],
        capture_output=True,
        text=True,
        timeout=1800,
        check=False,
    )
    lines = [line for line in out.stdout.splitlines() if line.startswith("{")]
    if out.returncode != 0 or not lines:
        return {"ok": False, "error": (out.stderr or out.stdout)[-800:]}
    result: dict[str, Any] = json.loads(lines[-1])
    result["process_s"] = time.perf_counter() - started
    return result


def mb(kb: float) -> float:
    return round(kb / 1024, 1)


def measure(args: argparse.Namespace, root: str) -> dict[str, Any]:
    report: dict[str, Any] = {"one": [], "many": [], "resume": [], "failures": []}

    def fresh(name: str) -> str:
        path = os.path.join(root, name)
        os.makedirs(path)
        return path

    def check(what: str, result: dict[str, Any]) -> bool:
        if not result.get("ok"):
            report["failures"].append(f"{what}: {result.get('error') or result}")
            return False
        return True

    floor = run_child("floor", fresh("floor"))
    check("floor", floor)
    report["floor_mb"] = mb(floor.get("peak_kb", 0))
    for steps in args.steps:
        r = run_child("one", fresh(f"one-{steps}"), steps)
        if check(f"one execution of {steps} steps", r):
            report["one"].append(
                {
                    "steps": steps,
                    "peak_mb": mb(r["peak_kb"]),
                    "before_mb": mb(r["before_kb"]),
                    "growth_mb": mb(r["peak_kb"] - r["before_kb"]),
                    "seconds": round(r["seconds"], 3),
                }
            )
    for k in args.concurrency:
        r = run_child("many", fresh(f"many-{k}"), k, args.many_steps, args.delay)
        if check(f"{k} executions at once", r):
            growth = r["peak_kb"] - r["before_kb"]
            report["many"].append(
                {
                    "executions": k,
                    "most_in_flight": r["most_in_flight"],
                    "peak_mb": mb(r["peak_kb"]),
                    "before_mb": mb(r["before_kb"]),
                    "growth_mb": mb(growth),
                    "kb_per_execution": round(growth / k, 1),
                    "seconds": round(r["seconds"], 2),
                }
            )
    for steps in args.resume_steps:
        for checkpoint in (False, True):
            data_dir = fresh(f"resume-{steps}{'-checkpoint' if checkpoint else ''}")
            built = run_child("build", data_dir, steps)
            if not check(f"building a {steps}-step log", built):
                continue
            if checkpoint:
                saved = run_child("checkpoint", data_dir, steps)
                if not check(f"saving the fold checkpoint of {steps} steps", saved):
                    continue
            r = run_child("resume", data_dir, steps)
            if not check(f"resuming {steps} steps", r):
                continue
            if r["used_checkpoint"] != checkpoint:
                report["failures"].append(f"resuming {steps} steps: the checkpoint was used: {r['used_checkpoint']}")
                continue
            growth = r["peak_kb"] - r["before_kb"]
            log_mb = built["log_bytes"] / 2**20
            report["resume"].append(
                {
                    "steps": steps,
                    "checkpoint": "fold checkpoint" if checkpoint else "none",
                    "records": built["records"],
                    "log_mb": round(log_mb, 2),
                    "peak_mb": mb(r["peak_kb"]),
                    "before_mb": mb(r["before_kb"]),
                    "growth_mb": mb(growth),
                    "growth_per_log_mb": round(growth / 1024 / log_mb, 1) if log_mb else None,
                    "seconds": round(r["seconds"], 3),
                    "process_s": round(r["process_s"], 2),
                }
            )
    return report


def machine() -> dict[str, Any]:
    return {
        "system": f"{platform.system()} {platform.release()}",
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
    }


def table(rows: list[dict[str, Any]], columns: list[str]) -> str:
    lines = ["| " + " | ".join(columns) + " |", "|" + "|".join("---" for _ in columns) + "|"]
    lines += [
        "| " + " | ".join(f"{row[c]:,}" if isinstance(row[c], (int, float)) else str(row[c]) for c in columns) + " |"
        for row in rows
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    parser.add_argument("--json", action="store_true", help="print JSON instead of tables")
    parser.add_argument("--json-out", metavar="PATH", help="also write the JSON to PATH (the tables are still printed)")
    parser.add_argument("--steps", type=int, nargs="*", default=[1000], help="steps of the single executions")
    parser.add_argument("--concurrency", type=int, nargs="*", default=[1, 100, 1000], help="executions at once")
    parser.add_argument("--many-steps", type=int, default=3, help="steps of each of the executions at once")
    parser.add_argument("--delay", type=float, default=2.0, help="seconds per model call of those (default 2)")
    parser.add_argument("--resume-steps", type=int, nargs="*", default=[10_000, 100_000], help="steps to resume")
    parser.add_argument("--smoke", "--quick", action="store_true", help="CI smoke mode (also --quick): seconds")
    args = parser.parse_args(argv)
    if args.child:
        mode, *rest = args.child
        values: list[Any] = [rest[0], *(float(v) if "." in v else int(v) for v in rest[1:])]
        result = CHILDREN[mode](*values)
        result["peak_kb"] = memory_kb("VmHWM")
        print(json.dumps(result))
        return 0
    if args.smoke:
        args.steps, args.concurrency, args.resume_steps, args.delay = [10], [1, 10], [1000], 0.01
    root = tempfile.mkdtemp(prefix="delite-bench-mem-")
    try:
        report = measure(args, root)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    report.update(machine=machine(), smoke=args.smoke)
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(report, indent=2))
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(f"machine: {report['machine']}")
        print(f"floor (import, an Agent and a Runtime, nothing run): peak {report['floor_mb']} MB")
        print("\nOne execution, fresh process:")
        print(table(report["one"], ["steps", "peak_mb", "before_mb", "growth_mb", "seconds"]))
        print("\nMany executions at once in one Runtime, fresh process:")
        cols = ["executions", "most_in_flight", "peak_mb", "before_mb", "growth_mb", "kb_per_execution", "seconds"]
        print(table(report["many"], cols))
        print("\nResume an unfinished execution, fresh process (without a checkpoint the log is read whole):")
        cols = [
            *("steps", "checkpoint", "records", "log_mb", "peak_mb", "before_mb", "growth_mb", "growth_per_log_mb"),
            "seconds",
        ]
        print(table(report["resume"], cols))
    for failure in report["failures"]:
        print(f"failed: {failure}", file=sys.stderr)
    return 1 if report["failures"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
