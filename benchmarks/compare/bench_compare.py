"""delite side by side with its peers on one workload: per-step time, disk, resume, recovery, memory, duplicates.

A standalone script; it gates nothing. The peers are not test dependencies: install them with the ``bench``
extra (``pip install -e ".[bench]"``), or into a separate virtualenv and pass its interpreter::

    python benchmarks/compare/bench_compare.py                       # a table of numbers and ratios
    python benchmarks/compare/bench_compare.py --json                # the same as JSON
    python benchmarks/compare/bench_compare.py --python venv/bin/python --sizes 10,100 --reps 1 --kills 4
    python benchmarks/compare/bench_compare.py --smoke               # or --quick; CI: N=10, one of each

A peer that is not installed for ``--python`` is left out, and the script says so (on stderr, and under
``missing_peers`` in the JSON); with none installed it measures delite alone and still exits 0.

The workload (``workloads.py``): an agent loop of N steps, each one scripted model call plus one trivial tool
that appends a line to a side file, for delite, DBOS (SQLite), LangGraph (``langgraph-checkpoint-sqlite``,
``durability="sync"``) with the usual message-history state (``langgraph``) and with only the last message in
its state (``langgraph-min``), and dendrux (SQLite). Every run is a fresh process and a fresh data directory;
implementations alternate within each repetition and medians are reported:

* ms/step at N = 10, 100, 1000: the time inside the run call (after import and setup) divided by N; and the
  fastest repetition of each (the least disturbed one, on a shared machine); every repetition is in the JSON;
* bytes on disk per step at N = 1000 (all files the store wrote, the side file excluded), and the marginal
  bytes per extra step between N = 100 and N = 1000 (linear in N means the two agree);
* resume: continuing a finished 1,000-step execution in a fresh process, inside the call and the whole process;
* recovery: a ``--recover-steps`` run (1,000) SIGKILLs itself inside its last tool, before the tool acts; a new
  process recovers it the library's own way (delite ``agent.resume``, and a ``Runtime`` that finds it; DBOS
  ``DBOS.launch()``; LangGraph ``invoke(None)`` with its checkpointer) and runs it to its answer; checked every
  time: every step's tool ran exactly once;
* peak RSS (``VmHWM``) of the process of each run and of each recovery;
* import: the library's import in a fresh process;
* duplicates: ``--kills`` runs of 40 steps each SIGKILLed at a random instant, then resumed in a new process;
  a duplicate is a tool that ran twice for one step (a repeated line in the side file).

On PostgreSQL (``--postgres auto``, the default, where the server binaries and psycopg are): delite and DBOS
on one throwaway server started by the tests' own code (``tests/_pg.py``, with ``fsync`` turned back on), a fresh
database per run: ms/step per size and the whole largest execution, with delite's time over DBOS's (the target:
at most a third). A separate table and the ``postgres`` key of the JSON.

Every row also names the best peer on it (the lowest number) and delite's lead on it: that number divided by
delite's, below 1 when the peer wins the row (``versus_best_peer`` in the JSON). The load average and an
``fsync`` probe before and after the run are under ``conditions``.

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
if str(HERE.parent) not in sys.path:
    sys.path.insert(0, str(HERE.parent))

from _bytecode import precompile  # noqa: E402

WORKLOADS = str(HERE / "workloads.py")
IMPLS = ["delite", "dbos", "langgraph", "langgraph-min", "dendrux"]
IMPORTS = {
    "delite": "import sys; sys.path.insert(0, {root!r}); from delite import Agent, ScriptedProvider, tool",
    "dbos": "from dbos import DBOS, SetWorkflowID",
    "langgraph": "from langgraph.graph import StateGraph; from langgraph.checkpoint.sqlite import SqliteSaver",
    "langgraph-min": "from langgraph.graph import StateGraph; from langgraph.checkpoint.sqlite import SqliteSaver",
    "dendrux": "from dendrux import Agent, tool",
}
DISTS = {
    "delite": "delite-agents",
    "dbos": "dbos",
    "langgraph": "langgraph",
    "langgraph-min": "langgraph",
    "dendrux": "dendrux",
}
CRASH_STEPS = 40
RECOVER_STEPS = 1000
# How each one recovers an unfinished run in a new process (workloads.py, ``recover``); dendrux cannot.
RECOVERY = {
    "delite": "agent.resume(id)",
    "delite-rt": "Runtime(...).start() finds it, rt.wait(id)",
    "dbos": "DBOS.launch() recovers pending workflows; handle.get_result()",
    "langgraph": "graph.invoke(None, config) on the thread",
    "langgraph-min": "graph.invoke(None, config) on the thread",
}


def child(
    python: str,
    impl: str,
    command: str,
    data_dir: str,
    n: int,
    timeout: float = 1800,
    env: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Run one workload process to the end; its JSON result plus the whole process's wall time."""
    started = time.perf_counter()
    out = subprocess.run(
        [python, WORKLOADS, impl, command, data_dir, str(n)],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        env={**os.environ, **env} if env else None,
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
    rss: dict[str, dict[int, list[float]]] = {i: {n: [] for n in sizes} for i in impls}
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
                if result.get("peak_rss_kb"):
                    rss[impl][n].append(result["peak_rss_kb"] / 1024)
                if n == max(sizes):
                    finished.setdefault(impl, data_dir)
                else:
                    shutil.rmtree(data_dir, ignore_errors=True)
                print(f"  {impl} N={n} rep {rep}: {result['seconds'] * 1000 / n:.2f} ms/step", file=sys.stderr)
    return {"per_step": per_step, "disk": disk, "rss": rss, "errors": errors, "finished": finished}


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


def measure_recovery(python: str, impls: list[str], n: int, reps: int, root: str) -> dict[str, dict[str, Any]]:
    """Recover an unfinished run: ``crash`` (SIGKILL inside step n's tool), then ``recover`` in a new process.

    Checked every time: the crash left exactly steps 0 to n - 2 done, and after the recovery every step ran
    exactly once (the side file) and the run answered.
    """
    out: dict[str, dict[str, Any]] = {}
    inner: dict[str, list[float]] = {i: [] for i in impls}
    wall: dict[str, list[float]] = {i: [] for i in impls}
    crash_wall: dict[str, list[float]] = {i: [] for i in impls}
    rss: dict[str, list[float]] = {i: [] for i in impls}
    for rep in range(reps):
        for impl in impls[rep % len(impls) :] + impls[: rep % len(impls)]:
            if impl in out:
                continue
            data_dir = os.path.join(root, f"recover-{impl}-{rep}")
            os.makedirs(data_dir)
            started = time.perf_counter()
            crashed = subprocess.run(
                [python, WORKLOADS, impl, "crash", data_dir, str(n)],
                capture_output=True,
                text=True,
                timeout=1800,
                check=False,
            )
            crash_wall[impl].append(time.perf_counter() - started)
            before = side_lines(data_dir)
            if crashed.returncode != -signal.SIGKILL or before != [str(i) for i in range(n - 1)]:
                why = crashed.stderr.strip().splitlines()[-1:] or [f"exit {crashed.returncode}"]
                out[impl] = {"error": f"the crash run did not stop at step {n - 1}: {why[0][:200]}"}
                continue
            result = child(python, impl, "recover", data_dir, n, timeout=1800)
            after = side_lines(data_dir)
            if "error" in result or result.get("answer") != "done":
                out[impl] = {"error": str(result.get("error", result)).strip().splitlines()[-1][:200]}
            elif sorted(after, key=int) != [str(i) for i in range(n)]:
                extra = len(after) - len(set(after))
                out[impl] = {"error": f"after recovery: {extra} tool runs repeated, {n - len(set(after))} missing"}
            else:
                inner[impl].append(result["seconds"] * 1000)
                wall[impl].append(result["wall"] * 1000)
                rss[impl].append(result.get("peak_rss_kb", 0) / 1024)
                print(f"  recover {impl} rep {rep}: {result['seconds'] * 1000:.1f} ms", file=sys.stderr)
            shutil.rmtree(data_dir, ignore_errors=True)
    for impl in impls:
        if impl not in out:
            out[impl] = {
                "ms": median(inner[impl]),
                "process_ms": median(wall[impl]),
                "ms_all": [round(v, 2) for v in inner[impl]],
                "peak_rss_mb": median(rss[impl]),
                "how": RECOVERY[impl],
                "duplicates": 0,
            }
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


PG_IMPLS = {"delite": "delite-pg", "dbos": "dbos-pg"}
PG_TARGET = 1 / 3  # the target: delite's time per step on PostgreSQL at most a third of DBOS's


def start_postgres() -> tuple[Any, str]:
    """A throwaway PostgreSQL server started by the tests' own fixture code (``tests/_pg.py``), made durable.

    The fixture runs the server with ``fsync=off`` (tests do not test power losses); a benchmark of durable
    writes turns ``fsync`` and ``full_page_writes`` back on (later lines of ``postgresql.conf`` win), so both
    libraries pay for real commits. Returns the server and its version line.
    """
    sys.path.insert(0, str(HERE.parents[1] / "tests"))
    from _pg import PgServer  # noqa: PLC0415 - the tests' helper, found beside the benchmarks

    server = PgServer()
    with (server.data / "postgresql.conf").open("a") as f:
        f.write("\n# delite benchmarks: durable commits, as in production\nfsync = on\nfull_page_writes = on\n")
    server.start()
    import psycopg  # noqa: PLC0415

    with psycopg.connect(server.url("postgres")) as conn:
        row = conn.execute("SELECT version()").fetchone()
    return server, (str(row[0]).split(",")[0] if row else "PostgreSQL") + ", fsync on"


def postgres_unavailable(python: str) -> str | None:
    """Why delite cannot be measured on PostgreSQL here (None: it can)."""
    sys.path.insert(0, str(HERE.parents[1] / "tests"))
    try:
        from _pg import unavailable  # noqa: PLC0415
    except ImportError as e:  # pragma: no cover - tests/_pg.py is in the repository
        return f"tests/_pg.py cannot be imported: {e}"
    why = unavailable()
    if why is not None:
        return why
    probe = subprocess.run([python, "-c", "import psycopg, psycopg_pool"], capture_output=True, check=False)
    if probe.returncode != 0:
        return f'psycopg is not installed for {python} (pip install "delite-agents[postgres]")'
    return None


def measure_postgres(python: str, with_dbos: bool, sizes: list[int], reps: dict[int, int], root: str) -> dict[str, Any]:
    """delite and DBOS on one throwaway PostgreSQL server: ms/step per size, and the whole largest execution.

    Each run gets a fresh database on the same server; the two alternate within each repetition.
    """
    why = postgres_unavailable(python)
    if why is not None:
        print(f"PostgreSQL: left out ({why})", file=sys.stderr)
        return {"skipped": why}
    impls = ["delite"] + (["dbos"] if with_dbos else [])
    per_step: dict[str, dict[int, list[float]]] = {i: {n: [] for n in sizes} for i in impls}
    seconds: dict[str, dict[int, list[float]]] = {i: {n: [] for n in sizes} for i in impls}
    errors: dict[str, str] = {}
    server, version = start_postgres()
    try:
        for n in sizes:
            for rep in range(reps[n]):
                for impl in impls[rep % len(impls) :] + impls[: rep % len(impls)]:
                    if impl in errors:
                        continue
                    url = server.create_database()
                    data_dir = os.path.join(root, f"pg-{impl}-{n}-{rep}")
                    os.makedirs(data_dir)
                    result = child(python, PG_IMPLS[impl], "run", data_dir, n, env={"BENCH_PG_URL": url})
                    server.drop_database(url)
                    if "error" in result or result.get("answer") != "done" or len(side_lines(data_dir)) != n:
                        errors[impl] = f"N={n}: {str(result.get('error', result))[-300:]}"
                        continue
                    shutil.rmtree(data_dir, ignore_errors=True)
                    per_step[impl][n].append(result["seconds"] * 1000 / n)
                    seconds[impl][n].append(result["seconds"])
                    print(
                        f"  {impl} on PostgreSQL N={n} rep {rep}: {result['seconds'] * 1000 / n:.2f} ms/step",
                        file=sys.stderr,
                    )
    finally:
        server.destroy()
    ms = {i: {str(n): median(per_step[i][n]) for n in sizes} for i in impls}
    ratio: dict[str, float | None] = {}
    for n in sizes:
        d, b = ms["delite"][str(n)], ms.get("dbos", {}).get(str(n))
        ratio[str(n)] = d / b if d is not None and b else None
    known = [r for r in ratio.values() if r is not None]
    return {
        "server": version,
        "impls": impls,
        "sizes": sizes,
        "ms_per_step": ms,
        "ms_per_step_min": {i: {str(n): min(per_step[i][n], default=None) for n in sizes} for i in impls},
        "ms_per_step_all": {i: {str(n): [round(v, 3) for v in per_step[i][n]] for n in sizes} for i in impls},
        "execution_s": {i: {str(n): median(seconds[i][n]) for n in sizes} for i in impls},
        "delite_to_dbos": ratio,
        "target": PG_TARGET,
        "target_met": bool(known) and all(r <= PG_TARGET for r in known),
        "errors": errors,
    }


def pg_table(pg: dict[str, Any]) -> str:
    """The PostgreSQL comparison as a Markdown table, in the format of the main one."""
    impls = pg["impls"]
    names = {"delite": "delite (PostgreSQL)", "dbos": "DBOS (PostgreSQL)"}
    head = ["measure", *(names[i] for i in impls), "delite / DBOS (target <= 0.33)"]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]

    def fmt(value: Any, digits: int) -> str:
        return "n/a" if value is None else f"{value:,.{digits}f}"

    for n in pg["sizes"]:
        ratio = pg["delite_to_dbos"].get(str(n))
        cells = [fmt(pg["ms_per_step"][i][str(n)], 2) for i in impls]
        lines.append("| " + " | ".join([f"ms/step, N={n}", *cells, fmt(ratio, 2)]) + " |")
    for n in pg["sizes"]:
        cells = [fmt(pg["ms_per_step_min"][i][str(n)], 2) for i in impls]
        lines.append("| " + " | ".join([f"  ms/step, N={n}, fastest repetition", *cells, ""]) + " |")
    big = str(max(pg["sizes"]))
    d, b = pg["execution_s"]["delite"][big], pg["execution_s"].get("dbos", {}).get(big)
    cells = [fmt(pg["execution_s"][i][big], 3) for i in impls]
    lines.append(
        "| " + " | ".join([f"one {int(big):,}-step execution, s", *cells, fmt(d / b if d and b else None, 2)]) + " |"
    )
    return "\n".join(lines)


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


def rows(report: dict[str, Any]) -> list[dict[str, Any]]:
    """The table's rows: per implementation a number (lower is better) or a note, and delite's lead on the best peer.

    ``best_peer`` is the peer with the lowest number on the row; ``lead`` is that number divided by delite's
    (above 1: delite is ahead by that factor; below 1: the peer wins the row).
    """
    impls = report["impls"]
    sizes = report["sizes"]
    big = str(max(sizes))
    out: list[dict[str, Any]] = []

    def add(measure: str, values: dict[str, Any], digits: int = 2, *, versus: bool = True) -> None:
        row: dict[str, Any] = {"measure": measure, "values": values, "digits": digits}
        numbers = {i: v for i, v in values.items() if i in impls and i != "delite" and isinstance(v, (int, float))}
        base = values.get("delite")
        if versus and numbers and isinstance(base, (int, float)) and base > 0:
            best = min(numbers, key=lambda i: numbers[i])
            row.update(best_peer=best, best_peer_value=numbers[best], lead=numbers[best] / base)
        out.append(row)

    ps = report["ms_per_step"]
    for n in sizes:
        add(f"ms/step, N={n}", {i: ps[i].get(str(n)) for i in impls})
    fastest = report.get("ms_per_step_min", {})
    for n in sizes if fastest else []:  # the least disturbed repetition of each: the machine is shared
        add(f"  ms/step, N={n}, fastest repetition", {i: fastest[i].get(str(n)) for i in impls})
    add(f"bytes/step on disk, N={big}", {i: report["bytes_per_step"][i].get(big) for i in impls}, 0)
    add(
        "marginal bytes/step (N=100 to 1000)",
        {i: report["marginal_bytes_per_step"].get(i) for i in impls},
        0,
    )
    res = report["resume"]

    def outcome(entry: dict[str, Any] | None, key: str) -> Any:
        if entry is None:
            return None
        return entry.get(key) if entry.get(key) is not None else entry.get("error") or entry.get("note")

    add(f"resume a finished {big}-step run, ms", {i: outcome(res.get(i), "ms") for i in impls})
    add("  the same, whole process, ms", {i: outcome(res.get(i), "process_ms") for i in impls}, 0)
    rec = report.get("recovery", {})
    if rec:
        steps = report["recover_steps"]
        add(
            f"recover an unfinished {steps}-step run (killed in step {steps}), ms",
            {i: outcome(rec.get(i), "ms") for i in impls},
        )
        add("  the same, whole process, ms", {i: outcome(rec.get(i), "process_ms") for i in impls}, 0)
        if "delite-rt" in rec:
            rt = dict.fromkeys(impls, "")
            rt.update({i: outcome(rec.get(i), "ms") for i in impls if i != "delite"})
            rt["delite"] = outcome(rec["delite-rt"], "ms")
            add("  delite recovering through a Runtime, ms", rt)
        add("  peak RSS of the recovering process, MB", {i: outcome(rec.get(i), "peak_rss_mb") for i in impls}, 1)
    rss = report.get("peak_rss_mb", {})
    for n in sizes:
        add(f"peak RSS, one N={n} run, MB", {i: rss.get(i, {}).get(str(n)) for i in impls}, 1)
    add("import, ms", {i: report["import_ms"].get(i) for i in impls}, 0)
    cr = report["crashes"]
    kills: dict[str, Any] = {}
    for i in impls:
        c = cr.get(i, {})
        kills[i] = c.get("note") or (
            f"{c['with_duplicates']} of {c['trials']} ({c['extra_runs']} extra runs"
            + (", same key" if c["keyed"] and not c.get("new_key_on_rerun") else "")
            + (f", {c['resume_failures']} resumes failed" if c.get("resume_failures") else "")
            + ")"
            if c
            else None
        )
    add("random SIGKILLs: trials with a duplicate tool run", kills, versus=False)
    once = cr.get("delite-once")
    if once:
        settled = f"{once['with_duplicates']} of {once['trials']} ({once.get('in_doubt', 0)} settled by the operator)"
        add("  delite, tool declared retry_in_doubt=False", {"delite": settled}, versus=False)
    return out


def conditions(root: str) -> dict[str, Any]:
    """How busy the machine is now: the load average and the median of 200 small appends + ``fsync``."""
    probe = os.path.join(root, "fsync-probe")
    times = []
    fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        for _ in range(200):
            os.write(fd, b"x" * 200)
            started = time.perf_counter()
            os.fsync(fd)
            times.append(time.perf_counter() - started)
    finally:
        os.close(fd)
        os.unlink(probe)
    times.sort()
    return {
        "loadavg_1m": round(os.getloadavg()[0], 2),
        "fsync_ms_median": round(statistics.median(times) * 1000, 3),
        "fsync_ms_p90": round(times[int(len(times) * 0.9)] * 1000, 3),
    }


def table(report: dict[str, Any]) -> str:
    """A Markdown table: one column per implementation (ratios to delite), then the best peer and delite's lead."""
    impls = report["impls"]

    def cell(row: dict[str, Any], impl: str) -> str:
        value = row["values"].get(impl)
        if value is None:
            return "n/a" if impl in row["values"] else ""
        if not isinstance(value, (int, float)):
            return str(value)
        text = f"{value:,.{row['digits']}f}"
        base = row["values"].get("delite")
        if impl != "delite" and isinstance(base, (int, float)) and base > 0 and "lead" in row:
            text += f" ({value / base:,.1f}x)"
        return text

    def lead(row: dict[str, Any]) -> str:
        if "lead" not in row:
            return ""
        verdict = "delite ahead" if row["lead"] > 1 else "delite behind"
        return f"{row['best_peer']}: {row['lead']:,.2f}x, {verdict}"

    head = ["measure", *impls, "delite vs the best peer"]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    for row in rows(report):
        lines.append("| " + " | ".join([row["measure"], *(cell(row, i) for i in impls), lead(row)]) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--python", default=sys.executable, help="the interpreter that has the peers installed")
    parser.add_argument("--impls", default=",".join(IMPLS), help="comma-separated subset of " + ",".join(IMPLS))
    parser.add_argument("--sizes", default="10,100,1000")
    parser.add_argument("--reps", type=int, default=3, help="repetitions per size (N=1000: --reps-big)")
    parser.add_argument("--reps-big", type=int, default=2)
    parser.add_argument("--kills", type=int, default=20, help="random-SIGKILL trials per implementation")
    parser.add_argument("--recover-steps", type=int, default=RECOVER_STEPS, help="length of the run to recover")
    parser.add_argument("--recover-reps", type=int, default=3, help="crash-and-recover repetitions per implementation")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--postgres",
        choices=["auto", "off"],
        default="auto",
        help="delite and DBOS on one throwaway PostgreSQL server (auto: where its binaries and psycopg are)",
    )
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
    for lg in ("langgraph", "langgraph-min"):
        if lg in impls and lg not in missing and not installed.get("langgraph-checkpoint-sqlite"):
            missing.append(lg)
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
    recover_steps, recover_reps = args.recover_steps, args.recover_reps
    if args.smoke:
        sizes, reps, kills, resume_reps, import_reps = [10], {10: 1}, 1, 1, 1
        recover_steps, recover_reps = 10, 1
    root = tempfile.mkdtemp(prefix="delite-compare-")
    try:
        # The peers come installed with their bytecode; delite runs from this checkout: compile it the same way.
        bytecode = precompile(str(HERE.parents[1]))
        before = conditions(root) | {"bytecode": bytecode}
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
        print(f"recovery of an unfinished {recover_steps}-step run...", file=sys.stderr)
        recovery = measure_recovery(
            args.python,
            [i for i in ["delite", "delite-rt", *impls[1:]] if i in RECOVERY],
            recover_steps,
            recover_reps,
            root,
        )
        if "dendrux" in impls:
            recovery["dendrux"] = {"note": "cannot resume a crashed run"}
        print("imports...", file=sys.stderr)
        imports = measure_imports(args.python, impls, import_reps)
        print("crashes...", file=sys.stderr)
        per_step_100 = {i: ms[i].get("100") or ms[i].get(str(max(sizes))) or 10.0 for i in impls}
        per_step_100["delite-once"] = per_step_100["delite"]
        crashes = measure_crashes(args.python, [*impls, "delite-once"], kills, per_step_100, root, args.seed)
        if args.postgres == "off":
            postgres: dict[str, Any] = {"skipped": "--postgres off"}
        else:
            print("on PostgreSQL...", file=sys.stderr)
            postgres = measure_postgres(args.python, "dbos" in impls, sizes, reps, root)
        after = conditions(root)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    report = {
        "machine": machine(),
        "conditions": {"before": before, "after": after},
        "smoke": args.smoke,
        "versions": installed,
        "impls": impls,
        "missing_peers": missing,
        "sizes": sizes,
        "ms_per_step": ms,
        "bytes_per_step": disk,
        "marginal_bytes_per_step": marginal,
        "resume": resume,
        "recovery": recovery,
        "recover_steps": recover_steps,
        "peak_rss_mb": {i: {str(n): median(steps["rss"][i][n]) for n in sizes} for i in impls},
        "ms_per_step_min": {i: {str(n): min(steps["per_step"][i][n], default=None) for n in sizes} for i in impls},
        "ms_per_step_all": {i: {str(n): [round(v, 3) for v in steps["per_step"][i][n]] for n in sizes} for i in impls},
        "import_ms": imports,
        "crashes": crashes,
        "errors": steps["errors"],
        "crash_steps": CRASH_STEPS,
        "postgres": postgres,
    }
    report["versus_best_peer"] = [
        {k: row[k] for k in ("measure", "best_peer", "best_peer_value", "lead")} | {"delite": row["values"]["delite"]}
        for row in rows(report)
        if "lead" in row
    ]
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(report, indent=2))
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(f"machine: {report['machine']}")
        print(f"load and fsync (before, after): {before}, {after}")
        print("versions: " + ", ".join(f"{k} {v}" for k, v in report["versions"].items()))
        print(table(report))
        for impl, error in report["errors"].items():
            print(f"{impl}: {error}")
        if missing:
            print(f"not installed, left out: {', '.join(missing)} (pip install -e '.[bench]')")
        if "skipped" in postgres:
            print(f"On PostgreSQL: left out ({postgres['skipped']})")
        else:
            print(f"\nOn PostgreSQL (one throwaway server, {postgres['server']}; a fresh database per run):")
            print(pg_table(postgres))
            for impl, error in postgres["errors"].items():
                print(f"{impl} on PostgreSQL: {error}")
    # A peer may fail on its own; delite failing its own workload is a bug, never a number.
    broken = [
        why
        for why in (
            report["errors"].get("delite"),
            report["resume"].get("delite", {}).get("error"),
            report["recovery"].get("delite", {}).get("error"),
            report["recovery"].get("delite-rt", {}).get("error"),
            *(report["crashes"].get(i, {}).get("last_error") for i in ("delite", "delite-once")),
            report["postgres"].get("errors", {}).get("delite"),
        )
        if why
    ]
    for why in broken:
        print(f"delite failed: {why}", file=sys.stderr)
    return 1 if broken else 0


if __name__ == "__main__":
    raise SystemExit(main())
