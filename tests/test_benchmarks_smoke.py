"""Every benchmark runs in CI, in its smoke mode, so none can rot unnoticed.

Each script in ``benchmarks/`` takes ``--smoke`` or ``--quick`` (the same: the smallest workload, a few
seconds), ``--json`` (the JSON on stdout instead of the tables) and ``--json-out PATH`` (the JSON written there
while the tables are printed). Here each one runs as a real process, all of them at
once (they are mostly waiting on processes and fsyncs), and must exit 0, print its tables, and write JSON
with the keys its readers use. The numbers of a smoke run mean nothing and are not checked; what each run
measured must have gone right (every execution answered, every log healthy, no invariant breached).
``benchmarks/compare/bench_compare.py`` compares delite with optional peers: the ones that are not
installed are left out and named, and delite is measured alone.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
BENCHMARKS = ROOT / "benchmarks"
TIMEOUT = 240  # seconds for one smoke run on a loaded machine: a guard against a hang, not a speed check


def check_steps(d: dict[str, Any], out: str) -> None:
    assert set(d) >= {"machine", "smoke", "steps", "fixed", "resume", "import"}
    assert d["smoke"] is True
    assert {r["mode"] for r in d["steps"]} == {"full", "normal", "off"}
    for row in d["steps"]:
        assert set(row) >= {"mode", "steps", "ms_per_step", "delite_ms_per_step", "p50_step_ms", "fsyncs_per_step"}
        assert isinstance(row["cpu_ms_per_step"], float)  # what a step costs a core (a smoke run's means nothing)
        assert row["log_bytes"] > 0
    assert {r["mode"] for r in d["fixed"]} == {"full", "normal", "off"}
    assert [r["variant"] for r in d["resume"]] == ["snapshot", "cold"]  # the smoke log is large enough for one
    assert [r["statement"] for r in d["import"]["imports"]] == [
        "import delite",
        "from delite import Agent, ScriptedProvider, tool",
    ]
    assert "ms/step" in out and "whole process ms" in out


def check_runtime(d: dict[str, Any], out: str) -> None:
    assert set(d) >= {"machine", "smoke", "throughput", "stall"}
    assert d["throughput"], d
    for row in d["throughput"]:
        assert row["all_answered"] is True and row["logs_healthy"] is True, row
        assert set(row) >= {"executions", "wall_s", "ideal_s", "ratio_to_ideal", "steps_per_s"}
        assert row["create_ms_p50"] > 0, row  # a file created where the data directories go, timed before the row
    assert d["machine"]["cpus_used"] >= 1
    assert [r["writes_on"] for r in d["stall"]] == ["threads (delite)", "loop"]
    assert all(r["appends"] > 0 and r["all_answered"] for r in d["stall"])
    assert "Throughput:" in out and "Event loop while" in out
    # What a step costs by driver and tool, the durable start's floor, and what the targets leave per turn.
    drivers = {(r["driver"], r["tool"], r["durability"]) for r in d["per_step"]}
    assert drivers == {(a, b, c) for a in ("run", "arun") for b in ("sync", "async") for c in ("off", "full")}
    for row in d["per_step"]:
        assert row["answered"] is True, row
        assert isinstance(row["cpu_ms_per_step"], float) and row["wall_ms_per_step"] > 0, row
        if row["driver"] == "run":
            assert row["hops_per_step"] == 0, row  # the sync API hands nothing to threads
    assert d["start"]["starts"] > 0 and d["start"]["go_ms_p50"] > 0 and d["start"]["floor_ms_p50"] > 0
    assert [(r["executions"], r["target"]) for r in d["budget"]] == [(200, 1.3), (1000, 1.5)]
    assert "what a step costs by driver and tool" in out and "What the issue-14 targets leave" in out


def check_cli(d: dict[str, Any], out: str) -> None:
    keys = {"executions", "status_cold_s", "status", "status_json", "status_filtered", "inspect", "inspect_prefix"}
    assert set(d) >= keys | {"steps_cmd", "health", "smoke"}
    assert d["executions"] == 20 and d["smoke"] is True
    assert d["health"]["healthy"] is True and d["health"]["records"] > 0
    assert set(d["status"]) == {"median_s", "min_s", "runs"}
    assert "delite status, warm index" in out and "delite health" in out


def check_submit(d: list[dict[str, Any]], out: str) -> None:
    assert [r["submission"] for r in d] == ["approval", "client", "input"]
    for row in d:
        assert set(row) == {
            "submission",
            "submit_to_done_ms_median",
            "submit_to_done_ms_p90",
            "whole_process_ms_median",
            "trials",
        }
        assert row["trials"] == 1
    assert "submit->done median ms" in out


def check_provider(d: dict[str, Any], out: str) -> None:
    assert set(d) >= {"machine", "smoke", "runs", "provider"}
    pairs = [(r["api"], r["stream"]) for r in d["runs"]]
    assert pairs == [(api, s) for api in ("chat", "responses", "messages") for s in (False, True)]
    for row in d["runs"]:
        assert set(row) >= {"raw_ms", "agent_off_ms", "agent_full_ms", "overhead_off_ms", "fsyncs_per_call"}
        assert row["fsyncs_per_call"] > 0  # full durability did sync
    assert [(r["api"], r["stream"]) for r in d["provider"]] == pairs
    assert "per model call" in out and "the provider alone" in out


def check_memory(d: dict[str, Any], out: str) -> None:
    assert set(d) >= {"machine", "smoke", "floor_mb", "one", "many", "resume", "failures"}
    assert d["smoke"] is True and d["failures"] == []
    assert [r["executions"] for r in d["many"]] == [1, 10]
    if sys.platform.startswith("linux"):  # resident memory is read from /proc
        assert all(r["peak_mb"] >= r["before_mb"] > 0 for r in [*d["one"], *d["many"], *d["resume"]])
    assert [(r["steps"], r["checkpoint"]) for r in d["resume"]] == [(1000, "none"), (1000, "fold checkpoint")]
    assert all(r["log_mb"] > 0 for r in d["resume"])
    assert "Many executions at once" in out and "Resume an unfinished execution" in out


def check_torture(d: dict[str, Any], out: str) -> None:
    assert d["violations"] == [], d["violations"][:5]
    assert d["seed"] == 7 and d["kills"] >= 3
    assert d["completed"] == d["executions"] == d["answers_matched"] >= 1
    assert d["reran_completed"] == 0
    assert d["torn_tails"] == d["torn_repaired"]
    assert "SIGKILLs" in out and "invariant breaches" in out


def check_compare(d: dict[str, Any], out: str) -> None:
    peers = {"dbos", "langgraph", "langgraph-min", "dendrux"}
    assert set(d) >= {"impls", "missing_peers", "ms_per_step", "resume", "import_ms", "crashes", "errors", "versions"}
    assert set(d) >= {"recovery", "peak_rss_mb", "versus_best_peer"}
    assert d["smoke"] is True and d["sizes"] == [10]
    assert d["impls"][0] == "delite" and set(d["impls"]) | set(d["missing_peers"]) == {"delite"} | peers
    assert "delite" not in d["errors"], d["errors"]  # a peer's own failure is its business, not a test failure
    assert d["ms_per_step"]["delite"]["10"] is not None
    assert d["resume"]["delite"]["ms"] is not None
    for way in ("delite", "delite-rt"):  # an unfinished run recovered, every step's tool run exactly once
        assert d["recovery"][way]["ms"] is not None and d["recovery"][way]["duplicates"] == 0, d["recovery"][way]
    if sys.platform.startswith("linux"):  # peak RSS is read from /proc
        assert d["peak_rss_mb"]["delite"]["10"] > 0
    for row in d["versus_best_peer"]:  # delite's lead on the best peer of each row, where a peer was measured
        assert row["best_peer"] in peers and row["lead"] > 0, row
    assert d["crashes"]["delite"]["trials"] == 1 and d["crashes"]["delite"]["with_duplicates"] == 0
    assert "| measure | delite" in out
    pg = d["postgres"]  # delite (and DBOS, when installed) on one throwaway PostgreSQL server, or why not
    assert "On PostgreSQL" in out
    if "skipped" not in pg:
        assert "delite" not in pg["errors"], pg["errors"]
        assert pg["ms_per_step"]["delite"]["10"] > 0 and pg["execution_s"]["delite"]["10"] > 0
        assert pg["impls"] == ["delite"] + (["dbos"] if "dbos" in d["impls"] else [])
    if d["missing_peers"]:  # it says so, and names them
        assert "not installed, left out: " + ", ".join(d["missing_peers"]) in out


def check_fleet(d: dict[str, Any], out: str) -> None:
    assert d["smoke"] is True
    if "skipped" in d:  # no PostgreSQL server binaries or psycopg here: it says so
        assert "left out" in out
        return
    assert [r["workers"] for r in d["throughput"]] == [1, 2]
    for row in d["throughput"]:
        assert row["all_completed"] is True and row["duplicates"] == 0, row
        assert row["side_effects"] == 3 * row["executions"] and row["wall_s"] > 0
    kill, cut = d["failover"]
    assert kill["how"] == "sigkill" and kill["samples"] == 2 and kill["p99_s"] >= kill["p50_s"] > 0
    assert all(c["duplicates"] == 0 for c in kill["checks"])
    assert cut["how"] == "partition"
    if "skipped" not in cut:  # namespaces need root
        assert cut["samples"] == 2 and all(c["fenced"] == 2 for c in cut["checks"]), cut
    assert "Fleet throughput on PostgreSQL" in out and "Failover" in out


def check_torture_pg(d: dict[str, Any], out: str) -> None:
    assert d["mode"] == "postgres" and d["seed"] == 7
    assert d["violations"] == [], d["violations"][:5]
    if "skipped" in d:  # no PostgreSQL server binaries or psycopg here: it says so
        assert "left out" in out
        return
    assert d["kills"] == 3 and d["workers_started"] == 3 + 3
    assert d["completed"] == d["executions"] == d["answers_matched"] >= 6
    assert d["reran_completed"] == 0 and d["approvals"] >= d["executions"]
    assert "invariant breaches | 0" in out


@dataclass(frozen=True)
class Bench:
    script: str
    check: Callable[[Any, str], None]
    options: tuple[str, ...] = ()  # more options than --smoke and --json-out


def check_otel(d: dict[str, Any], out: str) -> None:
    assert set(d) >= {"machine", "smoke", "rows"}
    assert [(r["durability"], r["model_latency_ms"]) for r in d["rows"]] == [("off", 0), ("full", 0), ("full", 20)]
    for row in d["rows"]:
        assert set(row) >= {"off_ms_per_step", "on_ms_per_step", "overhead_pct"}
        assert row["spans_exported"] == row["spans_expected"] > 0, row  # tracing on really traced
    assert "Tracing cost per step" in out


def check_serve(d: dict[str, Any], out: str) -> None:
    assert set(d) >= {"machine", "smoke", "executions", "pages", "cold_list_server_ms", "list_within_target"}
    assert d["smoke"] is True and d["executions"] == 200
    assert set(d["pages"]) == {"list", "list_filtered", "list_deep", "api_list", "execution", "usage"}
    for row in d["pages"].values():
        assert row["server_ms_median"] > 0 and row["bytes"] > 0 and row["runs"] == 3, row
    assert "| page | server ms (median)" in out and "list page:" in out


def check_encryption(d: dict[str, Any], out: str) -> None:
    assert set(d) >= {"machine", "smoke", "steps", "records"}
    assert [r["store"] for r in d["steps"]] == ["file-full", "file-off", "memory"]
    for row in d["steps"]:
        assert set(row) >= {"plain_ms_per_step", "sealed_ms_per_step", "overhead_pct"}
        assert row["plain_ms_per_step"] > 0 and row["sealed_ms_per_step"] > 0
    assert d["records"]["seal_us"] > 0 and d["records"]["open_us"] > 0
    assert "Encryption at rest, per step" in out


def check_gc(d: dict[str, Any], out: str) -> None:
    assert set(d) >= {"machine", "smoke", "executions", "deleted", "kept_running", "bytes_freed", "gc_s", "checks"}
    assert d["smoke"] is True
    assert d["deleted"] + d["kept_running"] == d["executions"] > 0
    assert d["bytes_freed"] > 0
    assert all(d["checks"].values()), d["checks"]  # healthy, only the running ones left, no key or marker left
    assert "delite gc (whole process)" in out


def check_step_profile(d: dict[str, Any], out: str) -> None:
    assert set(d) >= {"machine", "smoke", "syscalls", "memory"}
    assert d["smoke"] is True
    if "skipped" in d["syscalls"]:  # no strace here: it says so
        assert "left out" in out
    else:
        rows = {r["mode"]: r["per_step"] for r in d["syscalls"]["rows"]}
        assert list(rows) == ["full", "normal", "off"]
        # The syncs per step the durability modes promise: two in full, one in normal, none in off.
        assert [round(rows[m].get("fsync", 0) + rows[m].get("fdatasync", 0)) for m in rows] == [2, 1, 0], rows
        assert all(r.get("write", 0) >= 1 for r in rows.values()), rows
    memory = d["memory"]
    assert set(memory) >= {"retained_bytes_per_step", "transient_peak_bytes_per_step_median"}
    assert memory["retained_bytes_per_step"] > 0
    assert "System calls per step" in out and "Memory per step" in out


def check_any(d: Any, out: str) -> None:
    """A benchmark without checks of its own here: it ran, printed something and wrote some JSON."""
    assert d, d
    assert out.strip()


KNOWN = {
    "bench_steps": Bench("bench_steps.py", check_steps),
    "bench_runtime": Bench("bench_runtime.py", check_runtime, ("--dir", "runtime-data")),
    "bench_cli": Bench("bench_cli.py", check_cli),
    "bench_submit": Bench("bench_submit.py", check_submit),
    "bench_provider": Bench("bench_provider.py", check_provider),
    "torture": Bench("torture.py", check_torture),
    "bench_compare": Bench("compare/bench_compare.py", check_compare),
    "bench_otel": Bench("bench_otel.py", check_otel),
    "bench_memory": Bench("bench_memory.py", check_memory),
    "bench_fleet": Bench("bench_fleet.py", check_fleet),
    "torture_pg": Bench("torture.py", check_torture_pg, ("--postgres",)),
    "bench_serve": Bench("bench_serve.py", check_serve),
    "bench_encryption": Bench("bench_encryption.py", check_encryption),
    "bench_gc": Bench("bench_gc.py", check_gc),
    "bench_step_profile": Bench("bench_step_profile.py", check_step_profile),
}
# Helpers, not benchmarks: workloads.py is run by bench_compare, one process per measurement; torture_more.py is
# the fork and cancellation workloads that torture.py runs (--forks, --cancels), torture_pg.py its --postgres mode.
HELPERS = {"compare/workloads.py", "torture_more.py", "torture_pg.py"}


def discover() -> dict[str, Bench]:
    """Every script in benchmarks/ is smoke-tested: a new one needs --smoke and --json-out from day one."""
    found = dict(KNOWN)
    for path in sorted(BENCHMARKS.rglob("*.py")):
        script = path.relative_to(BENCHMARKS).as_posix()
        if path.name.startswith("_") or script in HELPERS or script in {b.script for b in found.values()}:
            continue
        found[path.stem] = Bench(script, check_any)
    return found


BENCHES = discover()


def test_the_known_benchmarks_are_there() -> None:
    """A benchmark with its own checks here was not renamed or removed without this file knowing."""
    for bench in KNOWN.values():
        assert (BENCHMARKS / bench.script).is_file(), bench.script


QUICK = "bench_runtime --quick --json"
QUICK_TEST = "test_quick_is_the_smoke_mode_and_json_goes_to_stdout"
FOLDERS_TEST = "test_the_runtime_benchmark_leaves_no_folder_behind"


@dataclass
class Running:
    proc: subprocess.Popen[str]
    json_path: Path
    output: tuple[str, str] | None = None

    def wait(self) -> tuple[str, str]:
        """Its stdout and stderr once it has ended (killed after TIMEOUT seconds: a hang, not slowness)."""
        if self.output is None:
            try:
                self.output = self.proc.communicate(timeout=TIMEOUT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                out, err = self.proc.communicate()
                self.output = (out, err + f"\n(killed: no end after {TIMEOUT} s)")
        return self.output


@pytest.fixture(scope="module")
def runs(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Running]]:
    """Start every selected smoke run at once; each test waits for its own."""
    selected = {
        item.callspec.params["name"]
        for item in request.session.items
        if getattr(item, "originalname", "") == "test_benchmark_smoke_mode" and hasattr(item, "callspec")
    }
    names = {getattr(item, "originalname", "") for item in request.session.items}
    if QUICK_TEST in names:
        selected.add(QUICK)
    if FOLDERS_TEST in names:
        selected.add("bench_runtime")
    out = tmp_path_factory.mktemp("bench-smoke")
    env = {k: v for k, v in os.environ.items() if k not in ("DELITE_DATA_DIR", "DELITE_AGENT")}
    started: dict[str, Running] = {}
    try:
        for name, bench in [*BENCHES.items(), (QUICK, Bench("bench_runtime.py", check_runtime))]:
            if name not in selected:
                continue
            json_path = out / f"{name}.json"
            options = ["--quick", "--json"] if name == QUICK else ["--smoke", "--json-out", str(json_path)]
            options += bench.options
            proc = subprocess.Popen(
                [sys.executable, str(BENCHMARKS / bench.script), *options],
                cwd=out,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            started[name] = Running(proc, json_path)
        yield started
    finally:
        for running in started.values():
            if running.output is None:
                running.proc.kill()
                running.wait()


@pytest.mark.parametrize("name", list(BENCHES))
def test_benchmark_smoke_mode(runs: dict[str, Running], name: str) -> None:
    running = runs[name]
    out, err = running.wait()
    assert running.proc.returncode == 0, f"{name} --smoke failed ({running.proc.returncode}):\n{err[-3000:]}"
    data = json.loads(running.json_path.read_text())
    BENCHES[name].check(data, out)


def test_the_runtime_benchmark_leaves_no_folder_behind(runs: dict[str, Running]) -> None:
    """Its data directories (and the folders where file creation is timed) are removed when the run ends."""
    running = runs["bench_runtime"]
    running.wait()
    assert running.proc.returncode == 0
    where = running.json_path.parent / "runtime-data"
    assert where.is_dir() and not any(where.iterdir()), sorted(p.name for p in where.iterdir())


def test_quick_is_the_smoke_mode_and_json_goes_to_stdout(runs: dict[str, Running]) -> None:
    """``--quick --json``: the same smoke mode under its other name, the JSON on stdout instead of the tables."""
    running = runs[QUICK]
    out, err = running.wait()
    assert running.proc.returncode == 0, err[-3000:]
    data = json.loads(out)
    assert data["smoke"] is True
    # the tables are not printed with --json: check_runtime is given their titles
    check_runtime(
        data, "Throughput: Event loop while what a step costs by driver and tool What the issue-14 targets leave"
    )
    assert "Throughput:" not in out
