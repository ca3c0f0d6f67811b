"""What encryption at rest costs per step: the same runs with and without a key, on files and in memory.

A standalone script; it sets baselines and gates nothing (the target is under 10% per step). Run from the
repository root:

    python benchmarks/bench_encryption.py             # a table
    python benchmarks/bench_encryption.py --json      # the same numbers as JSON
    python benchmarks/bench_encryption.py --smoke     # or --quick; CI: tiny sizes, a few seconds

What is measured (docs/benchmarks.md explains the limits):

* steps: one new execution of N steps (``ScriptedProvider.tool_loop``, a trivial tool; one step is one model
  call and one tool call) in a store, plain and sealed (``SealedStore`` under a 32-byte AES-256-GCM key),
  the two interleaved so that drift of the machine hits both; ``ms/step`` is the median over repetitions of
  the wall time of ``agent.run`` divided by N. Stores: a data directory with ``durability="full"`` (an
  fsync per append: what delite does by default), the same with ``durability="off"`` (no fsync: the
  encryption's share as large as it gets on files) and the memory store (no disk at all: the upper bound).
* records: sealing and opening one record alone (a tool result of about 100 bytes), in microseconds.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from delite import Agent, MemoryStore, ScriptedProvider, tool  # noqa: E402
from delite.log.records import ToolFinished  # noqa: E402
from delite.store import FileStore, Keyring, SealedStore, Store  # noqa: E402

KEYS = Keyring([("bench", bytes(range(32)))])


@tool
def noop(i: int) -> dict[str, Any]:
    """A trivial tool."""
    return {"ok": i, "note": "a short result, as a small tool returns"}


def _store(kind: str, root: str, *, sealed: bool) -> Store:
    if kind == "memory":
        inner: Store = MemoryStore()
    else:
        inner = FileStore(root, durability="full" if kind == "file-full" else "off")
    return SealedStore(inner, KEYS) if sealed else inner


def _run(kind: str, root: str, steps: int, *, sealed: bool) -> float:
    """Seconds per step of one new execution of ``steps`` steps."""
    store = _store(kind, root, sealed=sealed)
    try:
        with Agent(store=store, provider=ScriptedProvider.tool_loop(steps, "noop"), tools=[noop]) as agent:
            started = time.perf_counter()
            response = agent.run("run the loop")
            elapsed = time.perf_counter() - started
        if response.status.value != "completed":
            raise RuntimeError(f"the run ended {response.status.value}")
    finally:
        store.close()
    return elapsed / steps


def measure_steps(kind: str, steps: int, repeat: int, workdir: str) -> dict[str, Any]:
    """Plain and sealed runs of one store kind, interleaved; medians in ms per step."""
    plain: list[float] = []
    sealed: list[float] = []
    for i in range(repeat + 1):  # the first pair warms caches and the data directories
        for is_sealed, out in ((False, plain), (True, sealed)) if i % 2 == 0 else ((True, sealed), (False, plain)):
            root = os.path.join(workdir, f"{kind}-{'sealed' if is_sealed else 'plain'}")
            per_step = _run(kind, root, steps, sealed=is_sealed)
            if i > 0:
                out.append(per_step * 1000)
    p, s = statistics.median(plain), statistics.median(sealed)
    pm, sm = min(plain), min(sealed)
    return {
        "store": kind,
        "steps": steps,
        "repeat": repeat,
        "plain_ms_per_step": round(p, 4),
        "sealed_ms_per_step": round(s, 4),
        "overhead_ms_per_step": round(s - p, 4),
        "overhead_pct": round((s - p) / p * 100, 1),
        # The fastest run of each: the one another process's disk traffic disturbed least.
        "plain_min_ms_per_step": round(pm, 4),
        "sealed_min_ms_per_step": round(sm, 4),
        "overhead_pct_min": round((sm - pm) / pm * 100, 1),
    }


def fsync_probe(workdir: str, n: int = 200) -> float:
    """The median ms of one 200-byte append + ``fsync``: the disk's floor at the moment of the run."""
    path = os.path.join(workdir, "probe")
    times = []
    with open(path, "ab") as fh:
        for _ in range(n):
            started = time.perf_counter()
            fh.write(b"x" * 200)
            fh.flush()
            os.fsync(fh.fileno())
            times.append(time.perf_counter() - started)
    os.unlink(path)
    return round(statistics.median(times) * 1000, 4)


def measure_records(n: int) -> dict[str, Any]:
    """Microseconds to seal and to open one tool result of about 100 bytes."""
    record = ToolFinished(call_id="c1.0", result={"ok": 1, "note": "x" * 80}, at=time.time())
    started = time.perf_counter()
    sealed = [KEYS.seal(record, "bench-execution", i) for i in range(1, n + 1)]
    seal_s = time.perf_counter() - started
    started = time.perf_counter()
    for i, r in enumerate(sealed, start=1):
        KEYS.open(r, "bench-execution", i)
    open_s = time.perf_counter() - started
    return {"records": n, "seal_us": round(seal_s / n * 1e6, 2), "open_us": round(open_s / n * 1e6, 2)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=200, help="steps per execution")
    parser.add_argument("--repeat", type=int, default=7, help="pairs of runs per store")
    parser.add_argument("--smoke", "--quick", action="store_true", help="the smallest workload (a few seconds)")
    parser.add_argument("--json", action="store_true", help="print the JSON instead of the tables")
    parser.add_argument("--json-out", metavar="PATH", help="also write the JSON there")
    args = parser.parse_args()
    steps, repeat, records = (10, 1, 200) if args.smoke else (args.steps, args.repeat, 5000)
    workdir = tempfile.mkdtemp(prefix="delite-bench-enc-")
    try:
        before = fsync_probe(workdir, 20 if args.smoke else 200)
        rows = [measure_steps(kind, steps, repeat, workdir) for kind in ("file-full", "file-off", "memory")]
        after = fsync_probe(workdir, 20 if args.smoke else 200)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    result = {
        "machine": {
            "python": platform.python_version(),
            "cpu": platform.processor() or platform.machine(),
            "load": list(os.getloadavg()),
        },
        "fsync_ms": {"before": before, "after": after},
        "smoke": args.smoke,
        "steps": rows,
        "records": measure_records(records),
    }
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(result, indent=2))
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(f"Encryption at rest, per step ({steps} steps; median and fastest of {repeat} interleaved pairs)")
    print(f"fsync probe: {before} ms before, {after} ms after; load {result['machine']['load'][0]:.1f}")
    print(
        f"{'store':<10} {'plain ms/step':>14} {'sealed ms/step':>15} {'overhead':>9} "
        f"{'plain min':>10} {'sealed min':>11} {'overhead':>9}"
    )
    for r in rows:
        print(
            f"{r['store']:<10} {r['plain_ms_per_step']:>14.3f} {r['sealed_ms_per_step']:>15.3f} "
            f"{r['overhead_pct']:>8.1f}% {r['plain_min_ms_per_step']:>10.3f} {r['sealed_min_ms_per_step']:>11.3f} "
            f"{r['overhead_pct_min']:>8.1f}%"
        )
    rec = result["records"]
    print(f"One record: seal {rec['seal_us']} us, open {rec['open_us']} us ({rec['records']} records)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
