"""Benchmark ``delite gc`` on a large data directory (a baseline, not a gate).

Builds a data directory of N executions written straight through delite's log API (no agent, no model): each
a 3-step run finished 40 days ago, every 4th with an idempotency key bound and every 10th with a leftover
cancel request; 1% are left running (gc must leave them). The listing index is built first (as any earlier
``delite status`` would have), then whole ``delite`` processes are timed, interpreter start included:

* ``delite gc --older-than 30d --dry-run --json`` (what would be freed),
* ``delite gc --older-than 30d --json`` (durability ``full``: one directory sync per batch of 256),
* ``delite health --json`` afterwards: the directory must be healthy and hold only the running executions, with
  no key file or cancel marker of a deleted execution left.

Usage::

    python benchmarks/bench_gc.py                       # 100,000 executions in a temporary directory
    python benchmarks/bench_gc.py --executions 10000 --json
    python benchmarks/bench_gc.py --smoke               # or --quick; CI: 300 executions, a few seconds

Every command must succeed and every check hold, or the script exits 1: a benchmark never times an error.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from delite.datadir import DataDir
from delite.log import Durability, LogWriter
from delite.log.records import (
    ExecutionCompleted,
    ExecutionStarted,
    ModelResponded,
    RecordedToolCall,
    ToolFinished,
    ToolStarted,
)
from delite.store import FileStore, Layout, new_execution_id

DELITE = [sys.executable, "-m", "delite_cli"]
DAY = 86400.0


def build(data_dir: Path, executions: int) -> dict[str, Any]:
    """Write the executions; return the ids of those gc must keep, and the build time and size."""
    layout = Layout(data_dir)
    layout.ensure()
    store = FileStore(data_dir, durability="off")
    base = time.time() - 40 * DAY - executions
    keep: list[str] = []
    started = time.perf_counter()
    for n in range(executions):
        at = base + n
        eid = new_execution_id(at)
        records: list[Any] = [
            ExecutionStarted(at=at, execution_id=eid, input=f"Where is order {n}? My address is {n} Main St.")
        ]
        running = n % 100 == 50
        if running:
            keep.append(eid)
        else:
            call = RecordedToolCall(id="c1.0", name="lookup", arguments={"order": n})
            records += [
                ModelResponded(at=at + 0.1, step=1, tool_calls=[call]),
                ToolStarted(at=at + 0.1, call_id="c1.0", idempotency_key=f"{eid}:c1.0"),
                ToolFinished(at=at + 0.2, call_id="c1.0", result={"order": n, "status": "in transit"}),
                ModelResponded(at=at + 0.3, step=2, content=f"Order {n} arrives in 3 days."),
                ExecutionCompleted(at=at + 0.3, answer=f"Order {n} arrives in 3 days."),
            ]
        LogWriter.create(layout.log(eid), Durability.OFF, records).close()
        if n % 4 == 0:
            store.bind_key(f"order-{n}", eid, "fingerprint")
        if n % 10 == 0:
            store.request_cancel(eid)
    seconds = time.perf_counter() - started
    size = sum(e.stat().st_size for e in os.scandir(layout.executions))
    return {"keep": keep, "build_s": round(seconds, 2), "log_bytes": size}


def timed(args: list[str], data_dir: Path) -> tuple[float, Any]:
    """Run ``delite ARGS --data-dir D`` in a fresh process; the wall time in seconds and its JSON output."""
    start = time.perf_counter()
    out = subprocess.run([*DELITE, *args, "--data-dir", str(data_dir)], capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - start
    if out.returncode != 0:
        raise SystemExit(f"delite {' '.join(args)} failed ({out.returncode}): {out.stderr}")
    return elapsed, json.loads(out.stdout)


def run(executions: int, data_dir: Path) -> dict[str, Any]:
    """Build, index, dry-run, gc and check; the measurements."""
    built = build(data_dir, executions)
    keep = set(built["keep"])
    started = time.perf_counter()
    assert DataDir(data_dir).list(limit=1).total == executions
    index_s = time.perf_counter() - started
    dry_s, dry = timed(["gc", "--older-than", "30d", "--dry-run", "--json"], data_dir)
    gc_s, report = timed(["gc", "--older-than", "30d", "--json"], data_dir)
    deleted = executions - len(keep)
    if dry["executions"] != deleted or report["executions"] != deleted or report["refused"]:
        raise SystemExit(f"gc deleted {report['executions']} of {deleted} (dry run: {dry['executions']})")
    health_s, health = timed(["health", "--json"], data_dir)
    layout = Layout(data_dir)
    left = {n[:-4] for n in os.listdir(layout.executions)}
    keys = len(os.listdir(layout.keys))
    markers = sum(1 for n in os.listdir(layout.signals) if n.endswith(".cancel"))
    checks = {
        "healthy": health["healthy"] is True,
        "only_running_left": left == keep,
        "keys_left": keys == sum(1 for n in range(executions) if n % 4 == 0 and n % 100 == 50),
        "markers_left": markers == sum(1 for n in range(executions) if n % 10 == 0 and n % 100 == 50),
        "listing": DataDir(data_dir).list(limit=1).total == len(keep),
    }
    if not all(checks.values()):
        raise SystemExit(f"after gc: {checks}")
    return {
        "executions": executions,
        "deleted": report["executions"],
        "kept_running": len(keep),
        "bytes_freed": report["bytes"],
        "log_bytes_before": built["log_bytes"],
        "build_s": built["build_s"],
        "index_build_s": round(index_s, 2),
        "dry_run_s": round(dry_s, 2),
        "gc_s": round(gc_s, 2),
        "gc_us_per_execution": round(gc_s / max(1, deleted) * 1e6, 1),
        "gc_executions_per_s": round(deleted / gc_s),
        "health_after_s": round(health_s, 2),
        "checks": checks,
    }


def machine() -> str:
    """The machine, for the docs."""
    return f"{platform.system()} {platform.release()}, {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}"


def table(r: dict[str, Any]) -> str:
    """The results as a text table."""
    rows = [
        ("executions (1% running, kept)", f"{r['executions']:,}"),
        ("deleted", f"{r['deleted']:,}"),
        ("bytes freed (logs, snapshots, keys)", f"{r['bytes_freed']:,}"),
        ("index build before gc (in process)", f"{r['index_build_s']} s"),
        ("delite gc --dry-run (whole process)", f"{r['dry_run_s']} s"),
        ("delite gc (whole process)", f"{r['gc_s']} s"),
        ("per deleted execution", f"{r['gc_us_per_execution']} us ({r['gc_executions_per_s']:,}/s)"),
        ("delite health afterwards", f"{r['health_after_s']} s, healthy"),
    ]
    width = max(len(a) for a, _ in rows)
    return "gc benchmark on " + r["machine"] + "\n" + "\n".join(f"{a:<{width}}  {b}" for a, b in rows)


def main() -> None:
    """Parse arguments, run, print."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--executions", type=int, default=100_000, help="executions to write (default 100000)")
    parser.add_argument("--dir", help="build in this (new) directory and keep it")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.add_argument("--smoke", "--quick", action="store_true", help="CI smoke mode (also --quick): 300 executions")
    parser.add_argument("--json-out", metavar="PATH", help="also write the JSON to PATH (the table is still printed)")
    args = parser.parse_args()
    if args.smoke:
        args.executions = 300
    if args.dir:
        results = run(args.executions, Path(args.dir))
    else:
        tmp = tempfile.mkdtemp(prefix="delite-bench-gc-")
        try:
            results = run(args.executions, Path(tmp) / "data")
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    results["machine"] = machine()
    results["smoke"] = args.smoke
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(results, indent=2))
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        print(table(results))


if __name__ == "__main__":
    main()
