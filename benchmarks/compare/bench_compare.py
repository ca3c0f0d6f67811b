"""delite side by side with its peers on one workload: per-step time, disk, resume, import, duplicates.

A standalone script; it gates nothing. The peers are not test dependencies: install them with the ``bench``
extra (``pip install -e ".[bench]"``), or into a separate virtualenv and pass its interpreter::

    python benchmarks/compare/bench_compare.py                       # a table of numbers and ratios
    python benchmarks/compare/bench_compare.py --json                # the same as JSON
    python benchmarks/compare/bench_compare.py --python venv/bin/python --sizes 10,100 --reps 1 --kills 4
    python benchmarks/compare/bench_compare.py --smoke               # or --quick; CI: N=10, one of each

A peer that is not installed for ``--python`` is left out, and the script says so (on stderr, and under
``missing_peers`` in the JSON); with none installed it measures delite alone and still exits 0.

The workload (``workloads.py``): an agent loop of N steps, each one scripted model call plus one trivial tool
that appends a line to a side file, for delite, DBOS (SQLite), LangGraph (``langgraph-checkpoint-sqlite``, the
usual message-history state, ``durability="sync"``) and dendrux (SQLite). Every run is a fresh process and a
fresh data directory; implementations alternate within each repetition and medians are reported:

* ms/step at N = 10, 100, 1000: the time inside the run call (after import and setup) divided by N;
* bytes on disk per step at N = 1000 (all files the store wrote, the side file excluded), and the marginal
  bytes per extra step between N = 100 and N = 1000 (linear in N means the two agree);
* resume: continuing a finished 1,000-step execution in a fresh process, inside the call and the whole process;
* import: the library's import in a fresh process;
* duplicates: ``--kills`` runs of 40 steps each SIGKILLed at a random instant, then resumed in a new process;
  a duplicate is a tool that ran twice for one step (a repeated line in the side file).

``delite-core`` is left out: its Python SDK (``durable``) is not on PyPI, only the engine binary is.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
WORKLOADS = str(HERE / "workloads.py")
IMPLS = ["delite", "dbos", "langgraph", "dendrux"]
IMPORTS = {
    "delite": "import sys; sys.path.insert(0, {root!r}); from delite import Agent, ScriptedProvider, tool",
    "dbos": "from dbos import DBOS, SetWorkflowID",
    "langgraph": "from langgraph.graph import StateGraph; from langgraph.checkpoint.sqlite import SqliteSaver",
    "dendrux": "from dendrux import Agent, tool",
}
DISTS = {"delite": "delite-agents", "dbos": "dbos", "langgraph": "langgraph", "dendrux": "dendrux"}
CRASH_STEPS = 40


def child(python: str, impl: str, command: str, data_dir: str, n: int, timeout: float = 1800) -> dict[str, Any]:
    """Run one workload process to the end; its JSON result plus the whole process's wall time."""
    started = time.perf_counter()
    out = subprocess.run(
        [python, WORKLOADS, impl, command, data_dir, str(n)],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    wall = time.perf_counter() - started
    lines = [line for line in out.stdout.splitlines() if line.startswith("{")]
    if out.returncode != 0 or not lines:
        return {"error": (out.stderr or out.stdout)[-500:], "wall": wall}
    result: dict[str, Any] = json.loads(lines[-1])
    result["wall"] = wall
    return result


def disk_bytes(data_dir: str) -> int:
    """Bytes of every file the store wrote (the side file excluded)."""
    total = 0
    for dirpath, _, files in os.walk(data_dir):
        for name in files:
            if name != "side.txt":
                total += os.path.getsize(os.path.join(dirpath, name))
    return total


def side_runs(data_dir: str) -> list[tuple[str, str]]:
    """One ``(step, idempotency key or "")`` per tool run."""
    try:
        text = Path(data_dir, "side.txt").read_text()
    except FileNotFoundError:
        return []
    return [(line.split(" ")[0], line.partition(" ")[2]) for line in text.splitlines() if line]


def side_lines(data_dir: str) -> list[str]:
    return [step for step, _ in side_runs(data_dir)]


def median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def measure_steps(python: str, impls: list[str], sizes: list[int], reps: dict[int, int], root: str) -> dict[str, Any]:
    per_step: dict[str, dict[int, list[float]]] = {i: {n: [] for n in sizes} for i in impls}
    disk: dict[str, dict[int, list[int]]] = {i: {n: [] for n in sizes} for i in impls}
    errors: dict[str, str] = {}
    finished: dict[str, str] = {}
    for n in sizes:
        for rep in range(reps[n]):
            order = impls[rep % len(impls) :] + impls[: rep % len(impls)]  # alternate who goes first
            for impl in order:
                if impl in errors:
                    continue
                data_dir = os.path.join(root, f"{impl}-{n}-{rep}")
                result = child(python, impl, "run", data_dir, n)
                if "error" in result or result.get("answer") != "done" or len(side_lines(data_dir)) != n:
                    errors[impl] = f"N={n}: {result.get('error', result)}"
                    continue
                per_step[impl][n].append(result["seconds"] * 1000 / n)
                disk[impl][n].append(disk_bytes(data_dir))
                if n == max(sizes):
                    finished.setdefault(impl, data_dir)
                else:
                    shutil.rmtree(data_dir, ignore_errors=True)
                print(f"  {impl} N={n} rep {rep}: {result['seconds'] * 1000 / n:.2f} ms/step", file=sys.stderr)
    return {"per_step": per_step, "disk": disk, "errors": errors, "finished": finished}


def measure_resume(python: str, finished: dict[str, str], n: int, reps: int) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    impls = list(finished)
    inner: dict[str, list[float]] = {i: [] for i in impls}
    wall: dict[str, list[float]] = {i: [] for i in impls}
    for rep in range(reps):
        for impl in impls[rep % len(impls) :] + impls[: rep % len(impls)]:
            before = len(side_lines(finished[impl]))
            result = child(python, impl, "resume", finished[impl], n)
            if "error" in result:
                out[impl] = {"error": result["error"].strip().splitlines()[-1][:200]}
                continue
            assert result["answer"] == "done", result
            assert len(side_lines(finished[impl])) == before, f"{impl}: resuming a finished run ran a tool"
            inner[impl].append(result["seconds"] * 1000)
            wall[impl].append(result["wall"] * 1000)
    for impl in impls:
        if impl not in out:
            out[impl] = {"ms": median(inner[impl]), "process_ms": median(wall[impl])}
    return out


def measure_imports(python: str, impls: list[str], reps: int) -> dict[str, float | None]:
    times: dict[str, list[float]] = {i: [] for i in impls}
    root = str(HERE.parents[1])
    for rep in range(reps):
        for impl in impls[rep % len(impls) :] + impls[: rep % len(impls)]:
            code = (
                "import time; t = time.perf_counter(); "
                + IMPORTS[impl].format(root=root)
                + "; print(time.perf_counter() - t)"
            )
            out = subprocess.run([python, "-c", code], capture_output=True, text=True, check=False, timeout=120)
            if out.returncode == 0:
                times[impl].append(float(out.stdout.strip().splitlines()[-1]) * 1000)
    return {i: median(t) for i, t in times.items()}


def measure_crashes(
    python: str, impls: list[str], kills: int, ms_per_step: dict[str, float], root: str, seed: int
) -> dict[str, dict[str, Any]]:
    rng = random.Random(seed)
    out: dict[str, dict[str, Any]] = {
        i: {"trials": 0, "killed": 0, "with_duplicates": 0, "extra_runs": 0, "keyed": False} for i in impls
    }
    for trial in range(kills):
        for impl in impls[trial % len(impls) :] + impls[: trial % len(impls)]:
            stats = out[impl]
            if impl == "dendrux":
                stats["note"] = "cannot resume a crashed run"
                continue
            if impl not in ms_per_step:
                continue
            data_dir = os.path.join(root, f"crash-{impl}-{trial}")
            os.makedirs(data_dir)
            expected = ms_per_step.get(impl, 10.0) * CRASH_STEPS / 1000
            proc = subprocess.Popen(
                [python, WORKLOADS, impl, "run", data_dir, str(CRASH_STEPS)],
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                text=True,
            )
            assert proc.stdout is not None
            proc.stdout.readline()  # "ready": imported and set up
            time.sleep(rng.uniform(0, expected))
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGKILL)
            proc.communicate(timeout=600)
            stats["trials"] += 1
            stats["killed"] += proc.returncode == -signal.SIGKILL
            result = child(python, impl, "resume", data_dir, CRASH_STEPS, timeout=600)
            stats["in_doubt"] = stats.get("in_doubt", 0) + int(result.get("in_doubt", 0))
            runs = side_runs(data_dir)
            lines = [step for step, _ in runs]
            keys = {step: {key for s, key in runs if s == step} for step in lines}
            if any(len(k) > 1 for k in keys.values()):
                stats["new_key_on_rerun"] = stats.get("new_key_on_rerun", 0) + 1
            if "error" in result or result.get("answer") != "done":
                stats["resume_failures"] = stats.get("resume_failures", 0) + 1
                stats["last_error"] = str(result.get("error", result)).strip().splitlines()[-1][:200]
            stats["keyed"] = any(key for _, key in runs)
            extra = len(lines) - len(set(lines))
            stats["extra_runs"] += extra
            stats["with_duplicates"] += extra > 0
            if "error" not in result and sorted(set(lines), key=int) != [str(i) for i in range(CRASH_STEPS)]:
                stats["missing_steps"] = stats.get("missing_steps", 0) + 1
            shutil.rmtree(data_dir, ignore_errors=True)
    return out


def versions(python: str, impls: list[str]) -> dict[str, str]:
    code = (
        "import importlib.metadata as m, json, sys\n"
        "out = {}\n"
        f"for name in {[DISTS[i] for i in impls if i != 'delite'] + ['langgraph-checkpoint-sqlite']!r}:\n"
        "    try: out[name] = m.version(name)\n"
        "    except m.PackageNotFoundError: out[name] = None\n"
        "out['python'] = sys.version.split()[0]\n"
        "print(json.dumps(out))"
    )
    out = subprocess.run([python, "-c", code], capture_output=True, text=True, check=False)
    found: dict[str, str] = json.loads(out.stdout) if out.returncode == 0 else {}
    sys.path.insert(0, str(HERE.parents[1]))
    from delite import __version__  # noqa: PLC0415

    found["delite-agents"] = __version__
    return found


def machine() -> str:
    cpu = ""
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as f:
        cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), "")
    return f"{platform.system()} {platform.release()}, {platform.machine()}, {os.cpu_count()} CPUs {cpu}".strip()


def table(report: dict[str, Any]) -> str:
    impls = report["impls"]
    sizes = report["sizes"]
    ps = report["ms_per_step"]
    rows: list[tuple[str, list[str]]] = []

    def num(value: float | None, digits: int = 2) -> str:
        return "n/a" if value is None else f"{value:,.{digits}f}"

    def ratio(impl: str, value: float | None, base: float | None) -> str:
        if value is None or not base:
            return ""
        return "" if impl == "delite" else f" ({value / base:,.1f}x)"

    for n in sizes:
        base = ps["delite"].get(str(n))
        rows.append((f"ms/step, N={n}", [num(ps[i].get(str(n))) + ratio(i, ps[i].get(str(n)), base) for i in impls]))
    big = str(max(sizes))
    base_disk = report["bytes_per_step"]["delite"].get(big)
    rows.append(
        (
            f"bytes/step on disk, N={big}",
            [
                num(report["bytes_per_step"][i].get(big), 0) + ratio(i, report["bytes_per_step"][i].get(big), base_disk)
                for i in impls
            ],
        )
    )
    rows.append(
        ("marginal bytes/step (N=100 to 1000)", [num(report["marginal_bytes_per_step"].get(i), 0) for i in impls])
    )
    res = report["resume"]
    base_res = res.get("delite", {}).get("ms")
    rows.append(
        (
            f"resume a finished {big}-step run, ms",
            [
                (
                    res[i].get("error", "n/a")
                    if res.get(i, {}).get("ms") is None
                    else num(res[i]["ms"]) + ratio(i, res[i]["ms"], base_res)
                )
                if i in res
                else "n/a"
                for i in impls
            ],
        )
    )
    rows.append(("  the same, whole process, ms", [num(res.get(i, {}).get("process_ms"), 0) for i in impls]))
    base_imp = report["import_ms"].get("delite")
    rows.append(
        (
            "import, ms",
            [num(report["import_ms"].get(i), 0) + ratio(i, report["import_ms"].get(i), base_imp) for i in impls],
        )
    )
    cr = report["crashes"]
    rows.append(
        (
            "random SIGKILLs: trials with a duplicate tool run",
            [
                cr[i].get("note")
                or f"{cr[i]['with_duplicates']} of {cr[i]['trials']} ({cr[i]['extra_runs']} extra runs"
                + (", same key" if cr[i]["keyed"] and not cr[i].get("new_key_on_rerun") else "")
                + (f", {cr[i]['resume_failures']} resumes failed" if cr[i].get("resume_failures") else "")
                + ")"
                for i in impls
            ],
        )
    )
    once = cr.get("delite-once")
    if once:
        rows.append(
            (
                "  delite, tool declared retry_in_doubt=False",
                [
                    f"{once['with_duplicates']} of {once['trials']} ({once.get('in_doubt', 0)} settled by the operator)",
                    *["" for _ in impls[1:]],
                ],
            )
        )
    widths = [max(len(r[0]) for r in rows)] + [max(len(i), *(len(r[1][k]) for r in rows)) for k, i in enumerate(impls)]
    lines = ["| " + " | ".join(["measure", *impls]) + " |", "|" + "|".join("---" for _ in range(len(impls) + 1)) + "|"]
    lines += ["| " + " | ".join([name, *cells]) + " |" for name, cells in rows]
    del widths
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--python", default=sys.executable, help="the interpreter that has the peers installed")
    parser.add_argument("--impls", default=",".join(IMPLS), help="comma-separated subset of " + ",".join(IMPLS))
    parser.add_argument("--sizes", default="10,100,1000")
    parser.add_argument("--reps", type=int, default=3, help="repetitions per size (N=1000: --reps-big)")
    parser.add_argument("--reps-big", type=int, default=2)
    parser.add_argument("--kills", type=int, default=20, help="random-SIGKILL trials per implementation")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--json", action="store_true")
    parser.add_argument(
        "--smoke", "--quick", action="store_true", help="CI smoke mode (also --quick): N=10, one kill each"
    )
    parser.add_argument("--json-out", metavar="PATH", help="also write the JSON to PATH (the table is still printed)")
    args = parser.parse_args(argv)
    impls = [i for i in args.impls.split(",") if i]
    if "delite" not in impls:
        parser.error("delite must be one of the implementations (ratios are to delite)")
    unknown = [i for i in impls if i not in IMPLS]
    if unknown:
        parser.error(f"unknown implementations: {', '.join(unknown)} (choose from {', '.join(IMPLS)})")
    installed = versions(args.python, impls)
    missing = [i for i in impls if i != "delite" and not installed.get(DISTS[i])]
    if "langgraph" in impls and "langgraph" not in missing and not installed.get("langgraph-checkpoint-sqlite"):
        missing.append("langgraph")
    if missing:
        print(
            f"peers not installed for {args.python}: {', '.join(missing)} (pip install -e '.[bench]');"
            " they are left out" + (", delite is measured alone" if len(missing) == len(impls) - 1 else ""),
            file=sys.stderr,
        )
        impls = [i for i in impls if i not in missing]
    sizes = [int(s) for s in args.sizes.split(",")]
    reps = {n: (args.reps_big if n >= 1000 else args.reps) for n in sizes}
    kills = args.kills
    resume_reps, import_reps = 3, 5
    if args.smoke:
        sizes, reps, kills, resume_reps, import_reps = [10], {10: 1}, 1, 1, 1
    root = tempfile.mkdtemp(prefix="delite-compare-")
    try:
        steps = measure_steps(args.python, impls, sizes, reps, root)
        ms = {i: {str(n): median(steps["per_step"][i][n]) for n in sizes} for i in impls}
        disk = {
            i: {
                str(n): (median([float(b) for b in steps["disk"][i][n]]) or 0) / n if steps["disk"][i][n] else None
                for n in sizes
            }
            for i in impls
        }
        marginal: dict[str, float | None] = {}
        for i in impls:
            lo, hi = steps["disk"][i].get(100), steps["disk"][i].get(max(sizes))
            marginal[i] = (
                (statistics.median(hi) - statistics.median(lo)) / (max(sizes) - 100)
                if lo and hi and max(sizes) > 100
                else None
            )
        print("resume...", file=sys.stderr)
        resume = measure_resume(args.python, steps["finished"], max(sizes), resume_reps)
        print("imports...", file=sys.stderr)
        imports = measure_imports(args.python, impls, import_reps)
        print("crashes...", file=sys.stderr)
        per_step_100 = {i: ms[i].get("100") or ms[i].get(str(max(sizes))) or 10.0 for i in impls}
        per_step_100["delite-once"] = per_step_100["delite"]
        crashes = measure_crashes(args.python, [*impls, "delite-once"], kills, per_step_100, root, args.seed)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    report = {
        "machine": machine(),
        "smoke": args.smoke,
        "versions": installed,
        "impls": impls,
        "missing_peers": missing,
        "sizes": sizes,
        "ms_per_step": ms,
        "bytes_per_step": disk,
        "marginal_bytes_per_step": marginal,
        "resume": resume,
        "import_ms": imports,
        "crashes": crashes,
        "errors": steps["errors"],
        "crash_steps": CRASH_STEPS,
    }
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(report, indent=2))
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(f"machine: {report['machine']}")
        print("versions: " + ", ".join(f"{k} {v}" for k, v in report["versions"].items()))
        print(table(report))
        for impl, error in report["errors"].items():
            print(f"{impl}: {error}")
        if missing:
            print(f"not installed, left out: {', '.join(missing)} (pip install -e '.[bench]')")
    # A peer may fail on its own; delite failing its own workload is a bug, never a number.
    broken = [
        why
        for why in (
            report["errors"].get("delite"),
            report["resume"].get("delite", {}).get("error"),
            *(report["crashes"].get(i, {}).get("last_error") for i in ("delite", "delite-once")),
        )
        if why
    ]
    for why in broken:
        print(f"delite failed: {why}", file=sys.stderr)
    return 1 if broken else 0


if __name__ == "__main__":
    raise SystemExit(main())
