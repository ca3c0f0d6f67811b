"""Benchmark ``delite serve``: the server time of its pages and API on a large data directory (a baseline, not a gate).

Builds a data directory of N executions (as ``bench_cli.py`` does: straight through the log API), starts the
app under uvicorn on a loopback port in this process, and requests each page many times. The server time is
the app's own ``Server-Timing`` header (from the request's arrival in the app to its response's start: the
listing query, the rendering and the escaping); the round trip over loopback is reported beside it.

* the list page (``/``, 50 executions) with a cold index (the first listing indexes every log) and warm
  (target: under 300 ms at 10,000 executions),
* the list page filtered by status and metadata, and a page deep in the listing,
* the JSON listing (``/api/executions``), an execution's page, and the usage page (every execution summed).

Usage::

    python benchmarks/bench_serve.py                 # 10,000 executions of 5 steps
    python benchmarks/bench_serve.py --executions 2000 --json
    python benchmarks/bench_serve.py --smoke         # or --quick; CI: 200 executions, 3 runs each

Every request must answer 200 or the script exits 1: a benchmark never times an error.
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import socket
import statistics
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import uvicorn
from bench_cli import build

from delite_cli._serve import ServeConfig, build_app
from delite_cli._target import Target

TOKEN = "bench-token-0123456789abcdef"  # noqa: S105 - a token for this run
TARGET_MS = 300.0


class Running:
    """The app under uvicorn in a thread, on a loopback port."""

    def __init__(self, data_dir: Path) -> None:
        self.target = Target(data_dir=str(data_dir))
        self.config = ServeConfig(self.target, TOKEN, where=str(data_dir))
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.base = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        config = uvicorn.Config(build_app(self.config), log_level="warning", lifespan="off")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)
        self.thread.start()
        while not self.server.started:
            time.sleep(0.01)

    def get(self, path: str) -> tuple[float, float, bytes]:
        """One request: the server's time and the round trip, in milliseconds, and the body."""
        req = urllib.request.Request(self.base + path, headers={"authorization": f"Bearer {TOKEN}"})  # noqa: S310
        start = time.perf_counter()
        with urllib.request.urlopen(req, timeout=120) as r:  # noqa: S310 - a loopback URL
            body = r.read()
            status, timing = r.status, r.headers.get("server-timing", "")
        wall = (time.perf_counter() - start) * 1000
        if status != 200:
            raise SystemExit(f"GET {path} answered {status}")
        return float(timing.split("dur=")[1]), wall, body

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
        self.config.operator.close()
        self.target.close()
        self.sock.close()


def measure(server: Running, path: str, runs: int) -> dict[str, Any]:
    server_ms, wall_ms = [], []
    size = 0
    for _ in range(runs):
        s, w, body = server.get(path)
        server_ms.append(s)
        wall_ms.append(w)
        size = len(body)
    ordered = sorted(server_ms)
    return {
        "path": path,
        "runs": runs,
        "server_ms_median": statistics.median(server_ms),
        "server_ms_p90": ordered[min(len(ordered) - 1, int(len(ordered) * 0.9))],
        "round_trip_ms_median": statistics.median(wall_ms),
        "bytes": size,
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    tmp = tempfile.mkdtemp(prefix="delite-bench-serve-")
    data_dir = Path(tmp) / "data"
    try:
        built = build(data_dir, args.executions, args.steps)
        server = Running(data_dir)
        try:
            cold_ms, cold_wall, _ = server.get("/")
            ids = built["ids"]
            paths = {
                "list": "/",
                "list_filtered": "/?status=completed&meta=thread_id=t-7",
                "list_deep": f"/?offset={max(len(ids) // 2, 0)}",
                "api_list": "/api/executions?limit=50",
                "execution": f"/executions/{ids[len(ids) // 2]}",
                "usage": "/usage",
            }
            rows = {name: measure(server, path, args.runs) for name, path in paths.items()}
            listed = json.loads(server.get("/api/executions?limit=1")[2])["total"]
        finally:
            server.stop()
        if listed != args.executions:
            raise SystemExit(f"the listing counts {listed} executions, not {args.executions}")
        return {
            "machine": f"{platform.system()} {platform.release()}, {platform.machine()}, Python {platform.python_version()}",
            "smoke": args.smoke,
            "executions": args.executions,
            "steps": args.steps,
            "cold_list_server_ms": cold_ms,
            "cold_list_round_trip_ms": cold_wall,
            "pages": rows,
            "target_ms": TARGET_MS,
            "list_within_target": rows["list"]["server_ms_median"] < TARGET_MS,
        }
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def table(r: dict[str, Any]) -> str:
    lines = [
        f"delite serve on {r['executions']:,} executions of {r['steps']} steps ({r['machine']})",
        f"cold list page (indexes every log): {r['cold_list_server_ms']:.0f} ms server time",
        "",
        "| page | server ms (median) | server ms (p90) | round trip ms (median) | bytes |",
        "|---|---|---|---|---|",
    ]
    for name, row in r["pages"].items():
        lines.append(
            f"| {name} `{row['path'][:48]}` | {row['server_ms_median']:.1f} | {row['server_ms_p90']:.1f} | "
            f"{row['round_trip_ms_median']:.1f} | {row['bytes']:,} |"
        )
    verdict = "within" if r["list_within_target"] else "OVER"
    lines.append("")
    lines.append(f"list page: {verdict} the {r['target_ms']:.0f} ms target (median server time)")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--executions", type=int, default=10_000, help="executions to write (default 10000)")
    parser.add_argument("--steps", type=int, default=5, help="steps per execution (default 5)")
    parser.add_argument("--runs", type=int, default=20, help="requests per page (default 20)")
    parser.add_argument("--smoke", "--quick", action="store_true", help="200 executions, 3 requests each (CI)")
    parser.add_argument("--json", action="store_true", help="print the results as JSON instead of the table")
    parser.add_argument("--json-out", metavar="PATH", help="also write the JSON to PATH (the table is still printed)")
    args = parser.parse_args()
    if args.smoke:
        args.executions, args.steps, args.runs = 200, 3, 3
    results = run(args)
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(results, indent=2))
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        print(table(results))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
