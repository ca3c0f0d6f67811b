"""What one step costs the operating system and the memory allocator (issue 14, item 3); a baseline, not a gate.

One step is one scripted model call and one call of a trivial tool, as in ``bench_steps.py``.

* **System calls per step**, by call, in each durability mode: a fresh interpreter runs one execution of N
  steps under ``strace -f -c`` and another of 3N; the difference divided by 2N is what each step adds, so the
  interpreter's start, the imports and the execution's creation and completion cancel out. What is amortised
  over steps stays in (a fold checkpoint written every 16 KiB or so of log). Needs ``strace``; without it (or
  where it may not trace, as in some containers) the section says so and is left out. ``strace`` slows the
  process down: only the counts are reported.
* **Memory per step**, in this process with ``tracemalloc`` on (the same in every mode): what a step leaves
  allocated (bytes, memory blocks and objects the garbage collector tracks, measured between the middle and
  the end of a run: the conversation and the history held in memory grow with the run), and the peak of what
  a step allocates and frees again on top of that (``tracemalloc``'s peak, reset at every tool call). The
  model here counts its calls instead of reading the conversation (``ScriptedProvider`` keeps a copy of the
  message list to find its place, which a step would otherwise be charged for).

Usage::

    python benchmarks/bench_step_profile.py             # N = 500 (about half a minute)
    python benchmarks/bench_step_profile.py --steps 2000 --json
    python benchmarks/bench_step_profile.py --smoke     # or --quick; CI: N = 20, a few seconds

The runs must complete (every execution answered) or the script exits 1.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import tracemalloc
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from delite import Agent, tool  # noqa: E402
from delite.providers import ModelTurn, ProviderCall  # noqa: E402

MODES = ("full", "normal", "off")

# One execution of N steps in a fresh interpreter; exits 3 unless it completed with N + 1 steps.
RUN_CHILD = r"""
import sys
from delite import Agent, ScriptedProvider, tool
n, mode, data_dir = int(sys.argv[1]), sys.argv[2], sys.argv[3]

@tool
def noop(i: int) -> dict:
    "A trivial tool."
    return {"ok": i}

with Agent(data_dir, provider=ScriptedProvider.tool_loop(n, "noop"), tools=[noop], durability=mode) as agent:
    response = agent.run("run the loop", execution_id=f"profile-{n}")
sys.exit(0 if response.status == "completed" and response.steps == n + 1 else 3)
"""


def strace_counts(n: int, mode: str, workdir: str) -> dict[str, int]:
    """Calls by system call of one child running an execution of ``n`` steps (``strace -f -c``)."""
    data_dir = tempfile.mkdtemp(prefix=f"profile-{mode}-{n}-", dir=workdir)
    out = os.path.join(data_dir, "strace.txt")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    args = ["strace", "-f", "-c", "-o", out, sys.executable, "-c", RUN_CHILD, str(n), mode, data_dir]
    try:
        done = subprocess.run(args, check=False, env=env, capture_output=True, text=True)
        if done.returncode != 0:
            raise SystemExit(f"the traced run of {n} steps ({mode}) failed ({done.returncode}): {done.stderr[-2000:]}")
        with open(out) as f:
            return parse_strace_summary(f.read())
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)


def strace_unusable(workdir: str) -> str:
    """Why ``strace`` cannot count here ("" if it can): not installed, or not allowed to trace (a container)."""
    strace = shutil.which("strace")
    if strace is None:
        return "strace is not installed"
    probe = subprocess.run(
        [strace, "-f", "-o", os.path.join(workdir, "probe.txt"), "true"], capture_output=True, text=True, check=False
    )
    if probe.returncode != 0:
        return f"strace cannot trace here: {probe.stderr.strip()[:200]}"
    return ""


def parse_strace_summary(text: str) -> dict[str, int]:
    """``strace -c``'s table as ``{syscall: calls}`` (its total line left out)."""
    counts: dict[str, int] = {}
    for line in text.splitlines():
        fields = line.split()
        if len(fields) < 5 or fields[-1] == "total" or not fields[0][0].isdigit():
            continue
        # "% time seconds usecs/call calls [errors] syscall": calls is the fourth column.
        try:
            counts[fields[-1]] = int(fields[3])
        except ValueError:
            continue
    return counts


def syscalls_per_step(n: int, workdir: str) -> list[dict[str, Any]]:
    """Per mode, what each step adds: (calls of a 3n-step run - calls of an n-step run) / 2n, by call."""
    rows = []
    for mode in MODES:
        small = strace_counts(n, mode, workdir)
        large = strace_counts(3 * n, mode, workdir)
        per_step = {
            name: (large.get(name, 0) - small.get(name, 0)) / (2 * n) for name in sorted(set(small) | set(large))
        }
        kept = {name: round(v, 3) for name, v in sorted(per_step.items(), key=lambda kv: -kv[1]) if v >= 0.005}
        rows.append({"mode": mode, "steps": n, "total_per_step": round(sum(kept.values()), 2), "per_step": kept})
    return rows


class CountingModel:
    """Asks for the tool ``steps`` times, then answers; reads nothing of the conversation."""

    def __init__(self, steps: int) -> None:
        self.steps = steps
        self.calls = 0

    def __call__(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]], model: str | None) -> ModelTurn:
        i, self.calls = self.calls, self.calls + 1
        if i < self.steps:
            return ModelTurn(tool_calls=[ProviderCall(id=f"call_{i}", name="noop", arguments={"i": i})])
        return ModelTurn(content="done")


def memory_per_step(n: int, workdir: str) -> dict[str, Any]:
    """What a step leaves allocated and the peak it allocates on top, measured in this process."""
    marks: dict[int, tuple[int, int, int]] = {}
    peaks: list[int] = []
    half = n // 2

    @tool
    def noop(i: int) -> dict[str, int]:
        """A trivial tool that measures memory at its call."""
        current, peak = tracemalloc.get_traced_memory()
        if i > 0:
            peaks.append(peak - current)
        if i in (half, n - 1):
            gc.collect()
            current, _ = tracemalloc.get_traced_memory()
            marks[i] = (current, sys.getallocatedblocks(), len(gc.get_objects()))
        tracemalloc.reset_peak()
        return {"ok": i}

    data_dir = tempfile.mkdtemp(prefix="profile-memory-", dir=workdir)
    tracemalloc.start()
    try:
        with Agent(data_dir, provider=CountingModel(n), tools=[noop], durability="off") as agent:
            response = agent.run("run the loop", execution_id="profile-memory")
    finally:
        tracemalloc.stop()
        shutil.rmtree(data_dir, ignore_errors=True)
    if response.status != "completed" or response.steps != n + 1:
        raise SystemExit(f"the measured run did not complete: {response.status}, {response.steps} steps")
    span = (n - 1) - half
    (b0, k0, o0), (b1, k1, o1) = marks[half], marks[n - 1]
    return {
        "steps": n,
        "retained_bytes_per_step": round((b1 - b0) / span, 1),
        "retained_blocks_per_step": round((k1 - k0) / span, 2),
        "retained_gc_objects_per_step": round((o1 - o0) / span, 2),
        "transient_peak_bytes_per_step_median": int(statistics.median(peaks)),
        "transient_peak_bytes_per_step_p90": int(sorted(peaks)[int(len(peaks) * 0.9)]),
    }


def tables(result: dict[str, Any]) -> str:
    out = [f"machine: {result['machine']}", ""]
    calls = result["syscalls"]
    if "skipped" in calls:
        out.append(f"System calls per step: left out ({calls['skipped']})")
    else:
        out.append(
            f"System calls per step ({calls['rows'][0]['steps']} and {3 * calls['rows'][0]['steps']} steps, strace -f -c):"
        )
        names = sorted(
            {name for row in calls["rows"] for name in row["per_step"]},
            key=lambda s: -max(row["per_step"].get(s, 0) for row in calls["rows"]),
        )
        out.append("| mode | total | " + " | ".join(names) + " |")
        out.append("|---" * (len(names) + 2) + "|")
        for row in calls["rows"]:
            cells = [f"{row['per_step'].get(name, 0):.2f}" for name in names]
            out.append(f"| {row['mode']} | {row['total_per_step']:.2f} | " + " | ".join(cells) + " |")
    m = result["memory"]
    out += [
        "",
        f"Memory per step (tracemalloc, one run of {m['steps']} steps):",
        "| measure | per step |",
        "|---|---|",
        f"| retained bytes | {m['retained_bytes_per_step']:,.0f} |",
        f"| retained memory blocks | {m['retained_blocks_per_step']:.1f} |",
        f"| retained objects tracked by the garbage collector | {m['retained_gc_objects_per_step']:.1f} |",
        f"| transient peak bytes, median | {m['transient_peak_bytes_per_step_median']:,} |",
        f"| transient peak bytes, p90 | {m['transient_peak_bytes_per_step_p90']:,} |",
    ]
    return "\n".join(out)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=500, help="N (the traced runs are N and 3N steps)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of tables")
    parser.add_argument(
        "--smoke", "--quick", action="store_true", help="CI smoke mode: N = 20, numbers that mean nothing"
    )
    parser.add_argument("--json-out", help="also write the JSON to PATH (the tables are still printed)")
    args = parser.parse_args()
    n = 20 if args.smoke else args.steps
    if n < 4:
        parser.error("--steps must be at least 4")
    workdir = tempfile.mkdtemp(prefix="delite-step-profile-")
    try:
        why = strace_unusable(workdir)
        syscalls: dict[str, Any] = {"skipped": why} if why else {"rows": syscalls_per_step(n, workdir)}
        memory = memory_per_step(max(n, 20), workdir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    result = {
        "machine": f"{platform.system()} {platform.release()}, {os.cpu_count()} cores, Python {platform.python_version()}",
        "smoke": args.smoke,
        "syscalls": syscalls,
        "memory": memory,
    }
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(result, indent=2))
    print(json.dumps(result) if args.json else tables(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
