"""How long does it take a fresh process to finish a suspended execution?

For each trial: one process starts an execution that suspends for approval; a *fresh* process imports delite,
builds an Agent and calls ``submit_approval``, which records the decision, runs the approved tool, calls the
(scripted) model and completes. We report, per kind of submission, the median time of the ``submit_*`` call
(after import) and of the whole child process (interpreter start included).

Peers for comparison (../shared/reference/peers.md): dendrux takes about 0.1 s per submit after a 0.5 s import.

    python benchmarks/bench_submit.py [--trials 15] [--json]
    python benchmarks/bench_submit.py --smoke          # or --quick; CI: one trial of each kind, a few seconds
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

SETUP = textwrap.dedent(
    """
    import sys
    from delite import Agent, ScriptedProvider, tool
    from delite.providers import call

    @tool(requires_confirmation=True)
    def refund(order_id: int) -> str:
        \"\"\"Refund.\"\"\"
        return "refunded"

    @tool(target="client")
    def read_cell(cell: str) -> str:
        \"\"\"Client side.\"\"\"

    def agent(kind):
        first = {"approval": call("refund", order_id=1), "client": call("read_cell", cell="A1"),
                 "input": call("ask_human", question="?")}[kind]
        return Agent(sys.argv[1], provider=ScriptedProvider([first, "done"]), tools=[refund, read_cell])
    """
)

START = SETUP + "\nprint(agent(sys.argv[2]).run('go').execution_id)\n"

SUBMIT = SETUP + textwrap.dedent(
    """
    import time
    t0 = time.perf_counter()
    kind, eid = sys.argv[2], sys.argv[3]
    a = agent(kind)
    if kind == "approval":
        r = a.submit_approval(eid, approved=True)
    elif kind == "client":
        r = a.submit_tool_results(eid, {"c1.0": "x"})
    else:
        r = a.submit_input(eid, "yes")
    assert r.answer == "done", r
    print((time.perf_counter() - t0) * 1000)
    """
)


def run(trials: int) -> list[dict[str, object]]:
    rows = []
    for kind in ("approval", "client", "input"):
        inner, whole = [], []
        with tempfile.TemporaryDirectory() as data_dir:
            for _ in range(trials):
                eid = subprocess.run(
                    [sys.executable, "-c", START, data_dir, kind], capture_output=True, text=True, check=True
                ).stdout.strip()
                t0 = time.perf_counter()
                out = subprocess.run(
                    [sys.executable, "-c", SUBMIT, data_dir, kind, eid], capture_output=True, text=True, check=True
                )
                whole.append((time.perf_counter() - t0) * 1000)
                inner.append(float(out.stdout.strip()))
        rows.append(
            {
                "submission": kind,
                "submit_to_done_ms_median": round(statistics.median(inner), 2),
                "submit_to_done_ms_p90": round(sorted(inner)[int(0.9 * (len(inner) - 1))], 2),
                "whole_process_ms_median": round(statistics.median(whole), 1),
                "trials": trials,
            }
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--trials", type=int, default=15)
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument("--smoke", "--quick", action="store_true", help="CI smoke mode (also --quick): one trial each")
    parser.add_argument("--json-out", metavar="PATH", help="also write the JSON to PATH (the table is still printed)")
    args = parser.parse_args()
    if args.smoke:
        args.trials = 1
    rows = run(args.trials)
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(rows, indent=2))
    if args.json:
        print(json.dumps(rows, indent=2))
        return
    print(f"{'submission':<10} {'submit->done median ms':>23} {'p90 ms':>8} {'whole process ms':>17}")
    for r in rows:
        print(
            f"{r['submission']:<10} {r['submit_to_done_ms_median']:>23} {r['submit_to_done_ms_p90']:>8} "
            f"{r['whole_process_ms_median']:>17}"
        )


if __name__ == "__main__":
    main()
