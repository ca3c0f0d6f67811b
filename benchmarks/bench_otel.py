"""What does tracing cost per step? delite.telemetry on (SDK, BatchSpanProcessor, a no-op exporter) against off.

Each step is one model call (a scripted model, no latency) and one tool call, recorded in the log; with
tracing on, each step also makes a ``chat`` and an ``execute_tool`` span, the metrics and the log line (the
``delite`` logger left at its default level, as most applications do). Runs alternate off/on so that drift
hits both alike; the median of the repetitions is reported. The target (issue 15) is under 5% with an SDK and
a batch processor. ``durability=off`` with a model that answers at once is the harshest comparison; the last
row has a model that takes ``--latency-ms`` (20 ms, a fast model) with the default ``full`` durability.

    python benchmarks/bench_otel.py [--steps 200] [--repeat 7] [--latency-ms 20] [--json | --json-out PATH]
    python benchmarks/bench_otel.py --smoke          # or --quick: a few seconds
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

from delite import Agent, ScriptedProvider, telemetry, tool
from delite.providers import call


class CountingExporter(SpanExporter):
    """Exports nowhere; counts what it was given (so the run is known to have traced)."""

    def __init__(self) -> None:
        self.count = 0

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.count += len(spans)
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        pass


@tool(description="Add one")
def add_one(n: int) -> int:
    return n + 1


def one_run(data_dir: str, steps: int, durability: str, i: int, latency_ms: float = 0.0) -> float:
    script: list[Any] = [call("add_one", n=k) for k in range(steps)] + ["done"]
    model = ScriptedProvider(script, delay=latency_ms / 1000)
    agent = Agent(data_dir, provider=model, tools=[add_one], durability=durability)
    t0 = time.perf_counter()
    response = agent.run("count", execution_id=f"run-{i}")
    elapsed = time.perf_counter() - t0
    agent.close()
    assert response.answer == "done", response
    return elapsed * 1000 / steps


def measure(steps: int, repeat: int, durability: str, root: str, latency_ms: float = 0.0) -> dict[str, Any]:
    exporter = CountingExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(BatchSpanProcessor(exporter))
    meter_provider = MeterProvider()
    off: list[float] = []
    on: list[float] = []
    for r in range(repeat):
        with tempfile.TemporaryDirectory(dir=root) as d:
            telemetry.uninstrument()
            off.append(one_run(d, steps, durability, 2 * r, latency_ms))
            inst = telemetry.instrument(tracer_provider=tracer_provider, meter_provider=meter_provider)
            on.append(one_run(d, steps, durability, 2 * r + 1, latency_ms))
            telemetry.uninstrument()
            assert inst.errors == 0, inst.last_error
    tracer_provider.force_flush()
    tracer_provider.shutdown()
    meter_provider.shutdown()
    expected = repeat * (2 * steps + 2)  # per run: invoke_agent, a chat per step and the last one, a tool per step
    off_ms, on_ms = statistics.median(off), statistics.median(on)
    return {
        "durability": durability,
        "model_latency_ms": latency_ms,
        "steps": steps,
        "repeat": repeat,
        "off_ms_per_step": round(off_ms, 4),
        "on_ms_per_step": round(on_ms, 4),
        "overhead_ms_per_step": round(on_ms - off_ms, 4),
        "overhead_pct": round(100 * (on_ms - off_ms) / off_ms, 2),
        "spans_exported": exporter.count,
        "spans_expected": expected,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--steps", type=int, default=200, help="steps per run (default 200)")
    parser.add_argument("--repeat", type=int, default=7, help="runs of each variant (median; default 7)")
    parser.add_argument("--modes", default="off,full", help="durability modes (default off,full)")
    parser.add_argument(
        "--latency-ms", type=float, default=20.0, help="a last row with a model this slow, durability full (default 20)"
    )
    parser.add_argument("--smoke", "--quick", action="store_true", help="the smallest workload (a few seconds)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of the table")
    parser.add_argument("--json-out", metavar="PATH", help="also write the JSON there")
    args = parser.parse_args(argv)
    steps, repeat = (10, 2) if args.smoke else (args.steps, args.repeat)
    with tempfile.TemporaryDirectory() as root:
        rows = [measure(steps, repeat, mode, root) for mode in args.modes.split(",")]
        if args.latency_ms > 0:
            rows.append(measure(min(steps, 50), repeat, "full", root, args.latency_ms))
    result = {
        "machine": {"python": sys.version.split()[0], "platform": platform.platform(), "cpus": os.cpu_count()},
        "smoke": args.smoke,
        "rows": rows,
    }
    for row in rows:
        assert row["spans_exported"] == row["spans_expected"], row
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(result, indent=2) + "\n")
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(f"Tracing cost per step ({steps} steps per run, median of {repeat}):")
    print(
        f"{'durability':>10} {'model ms':>8} {'off ms/step':>12} {'on ms/step':>11} {'+ms/step':>9} {'overhead':>9} "
        f"{'spans':>6}"
    )
    for row in rows:
        print(
            f"{row['durability']:>10} {row['model_latency_ms']:>8.0f} {row['off_ms_per_step']:>12.3f} "
            f"{row['on_ms_per_step']:>11.3f} "
            f"{row['overhead_ms_per_step']:>9.3f} {row['overhead_pct']:>8.1f}% {row['spans_exported']:>6}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
