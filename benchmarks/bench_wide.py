"""A wide turn: one model response that asks for n tool calls, run to the end, sync and async.

A standalone script; it sets baselines and gates nothing. Run from the repository root:

    python benchmarks/bench_wide.py            # a table (1,000, 4,000 and 8,000 calls)
    python benchmarks/bench_wide.py --json     # the same numbers as JSON
    python benchmarks/bench_wide.py --quick    # a smoke run (100 and 400 calls)

What is measured: the wall time of ``agent.run`` / ``agent.arun`` for a new execution whose scripted model asks
for n calls of a trivial sync tool in its first turn and then answers (so two model calls, n intents written in
one append, n bodies, n results written as they come in, then the completion), in ``full`` durability. ``µs/call``
is that time divided by n: a turn that is linear in n keeps it flat as n grows. ``threads`` is the number of
distinct threads the bodies ran in (the sync API's bound is ``delite.engine._effects.TOOL_THREADS``, the async
API's the worker pool, ``delite.engine._aio.WORKERS``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from delite import Agent, ScriptedProvider, tool  # noqa: E402


def one(n: int, mode: str) -> dict[str, Any]:
    """Run one wide turn of ``n`` calls through the ``mode`` API in a fresh data directory."""
    threads: set[str] = set()
    lock = threading.Lock()

    @tool
    def work(i: int) -> int:
        """A trivial tool."""
        with lock:
            threads.add(threading.current_thread().name)
        return i

    script = ScriptedProvider([{"tool_calls": [{"name": "work", "arguments": {"i": i}} for i in range(n)]}, "done"])
    folder = tempfile.mkdtemp(prefix="delite-wide-")
    try:
        with Agent(folder, provider=script, tools=[work]) as agent:
            started = time.perf_counter()
            r = agent.run("go") if mode == "sync" else asyncio.run(agent.arun("go"))
            seconds = time.perf_counter() - started
        assert r.answer == "done", r
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return {"seconds": seconds, "threads": len(threads)}


def main() -> None:
    """Measure and print."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.add_argument("--smoke", "--quick", action="store_true", help="CI's smoke run: small turns, one repetition")
    parser.add_argument("--repeat", type=int, default=3, help="repetitions per size (the median is reported)")
    parser.add_argument("--json-out", metavar="PATH", help="also write the JSON to PATH (the table is still printed)")
    args = parser.parse_args()
    sizes = [100, 400] if args.smoke else [1000, 4000, 8000]
    repeat = 1 if args.smoke else max(1, args.repeat)
    rows = []
    for mode in ("sync", "async"):
        for n in sizes:
            runs = [one(n, mode) for _ in range(repeat)]
            seconds = statistics.median(r["seconds"] for r in runs)
            rows.append(
                {
                    "api": mode,
                    "calls": n,
                    "seconds": round(seconds, 4),
                    "us_per_call": round(seconds / n * 1e6, 1),
                    "threads": max(r["threads"] for r in runs),
                }
            )
    machine = {"python": platform.python_version(), "machine": platform.machine(), "system": platform.system()}
    result = {"machine": machine, "smoke": bool(args.smoke), "rows": rows}
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(result, indent=2))
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(f"{'api':<6} {'calls':>6} {'seconds':>8} {'µs/call':>8} {'threads':>8}")
    for r in rows:
        print(f"{r['api']:<6} {r['calls']:>6} {r['seconds']:>8.3f} {r['us_per_call']:>8.1f} {r['threads']:>8}")


if __name__ == "__main__":
    main()
