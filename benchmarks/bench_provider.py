"""delite's own cost per model call, over the raw SDK call, against the fake LLM server on loopback.

A standalone script; it sets baselines and gates nothing. Run from the repository root:

    python benchmarks/bench_provider.py             # a table
    python benchmarks/bench_provider.py --json      # the same numbers as JSON
    python benchmarks/bench_provider.py --steps 10 --repeat 2 --calls 50   # fewer steps and repetitions
    python benchmarks/bench_provider.py --smoke     # or --quick; CI: one step, one repetition, a few seconds

The fake server (tests/fakellm) runs in a process of its own, bound by uvicorn to 127.0.0.1 (TCP_NODELAY),
so its CPU time is not charged to the process under test. For each API (Chat Completions, Responses,
Anthropic Messages), JSON and SSE:

* agent: one execution of N steps (a model call that asks for a trivial tool, then the tool), then a final
  answer: N+1 model calls, timed whole, with durability ``off`` and ``full``.
* raw: the very same N+1 request bodies (as the server received them) sent again through the same SDK
  client, with no delite code: ``create(**body)``, and for SSE every event read.
* overhead/call = (agent - raw) / (N+1): everything delite adds to one model call and its tool call -
  translating the conversation, normalising and pricing usage, the loop, encoding, checksumming and writing
  the records, the trivial tool. In ``full`` mode it includes the fsyncs; ``beyond fsync`` subtracts the
  measured fsync count times the median cost of one append+fsync on this disk.
* provider: the provider alone (translation, usage, pricing, no log) over the raw call, on a one-message
  conversation.

Timings are medians over repetitions on a shared machine: read them as orders of magnitude.
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
import warnings
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
for p in (ROOT, ROOT / "tests"):
    if str(p) not in sys.path:
        sys.path.insert(0, str(p))

from fakellm import Call, FakeLLMProcess, Script, Turn  # noqa: E402

import delite  # noqa: E402
from delite import Agent, tool  # noqa: E402
from delite.log import _os as log_os  # noqa: E402
from delite.providers import Anthropic, OpenAI, OpenAIResponses  # noqa: E402

APIS = {
    "chat": (OpenAI, "gpt-4o-mini", "/v1", lambda c: c.chat.completions.create),
    "responses": (OpenAIResponses, "gpt-4o-mini", "/v1", lambda c: c.responses.create),
    "messages": (Anthropic, "claude-haiku-4-5", "", lambda c: c.messages.create),
}


@tool(description="Do nothing, quickly.")
def noop(i: int) -> int:
    return i


ANSWER = "All steps done, nothing else to do here."


def script(steps: int) -> Script:
    turns = [Turn(text=f"Step {i}.", calls=[Call(name="noop", arguments={"i": i})]) for i in range(steps)]
    return Script(turns=[*turns, Turn(text=ANSWER)])


def raw_call(create: Any, body: dict[str, Any]) -> None:
    result = create(**body)
    if body.get("stream"):
        with result:
            for _ in result:
                pass


def fsync_floor(workdir: str, count: int = 300) -> float:
    """Median ms of one small append + fsync: the disk's price for one durable record."""
    path = os.path.join(workdir, "fsync-probe")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    samples = []
    try:
        for _ in range(count):
            os.write(fd, b"x" * 200)
            t = time.perf_counter()
            os.fsync(fd)
            samples.append(time.perf_counter() - t)
    finally:
        os.close(fd)
    return statistics.median(samples) * 1e3


def bench_api(
    server: FakeLLMProcess, api: str, stream: bool, *, steps: int, repeat: int, workdir: str
) -> dict[str, Any]:
    cls, model, path, method = APIS[api]
    provider = cls(model, api_key="bench", base_url=server.url + path, timeout=30)
    create = method(provider.client)
    samples: dict[str, list[float]] = {"off": [], "full": [], "raw": []}
    syncs = {"n": 0}
    real_fsync = log_os.fsync

    def counting_fsync(*args: Any, **options: Any) -> None:  # whatever the seam's signature becomes
        syncs["n"] += 1
        real_fsync(*args, **options)

    log_os.fsync = counting_fsync
    try:
        for rep in range(repeat + 1):  # the first round warms up connections and caches; not counted
            for mode in ("off", "full"):
                server.load(script(steps))
                data = os.path.join(workdir, f"{api}-{stream}-{mode}-{rep}")
                agent = Agent(data, provider=provider, tools=[noop], durability=mode, human_input_tool=None)
                syncs["n"] = 0
                t = time.perf_counter()
                if stream:
                    text = agent.stream("go")
                    for _ in text:
                        pass
                    response = text.response
                else:
                    response = agent.run("go")
                elapsed = time.perf_counter() - t
                if response is None or response.answer != ANSWER:  # never time a failed run
                    raise SystemExit(f"{api} {mode} stream={stream}: the run did not answer: {response}")
                fsyncs = syncs["n"]
                bodies = [r["body"] for r in server.requests]
                assert len(bodies) == steps + 1, len(bodies)
                if rep:
                    samples[mode].append(elapsed)
                if mode == "full" and rep:
                    full_fsyncs = fsyncs
                if mode == "off":
                    t = time.perf_counter()
                    for body in bodies:
                        raw_call(create, body)
                    if rep:
                        samples["raw"].append(time.perf_counter() - t)
    finally:
        log_os.fsync = real_fsync
    calls = steps + 1
    per = {k: statistics.median(v) / calls * 1e3 for k, v in samples.items()}
    return {
        "api": api,
        "stream": stream,
        "calls": calls,
        "raw_ms": per["raw"],
        "agent_off_ms": per["off"],
        "agent_full_ms": per["full"],
        "overhead_off_ms": per["off"] - per["raw"],
        "overhead_full_ms": per["full"] - per["raw"],
        "fsyncs_per_call": full_fsyncs / calls,
    }


def bench_provider_only(server: FakeLLMProcess, api: str, stream: bool, count: int) -> dict[str, Any]:
    cls, model, path, method = APIS[api]
    provider = cls(model, api_key="bench", base_url=server.url + path, timeout=30)
    server.load(Script(turns=[Turn(text="Hello there, how can I help?")]))
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"}]
    tools = [{"name": "noop", "description": "Do nothing.", "parameters": {"type": "object", "properties": {}}}]
    if stream:
        provider.stream(messages, tools, None, on_text=lambda _t: None)
    else:
        provider(messages, tools, None)
    body = server.requests[-1]["body"]
    create = method(provider.client)
    raw, mine = [], []
    for _ in range(count):
        t = time.perf_counter()
        raw_call(create, body)
        raw.append(time.perf_counter() - t)
        t = time.perf_counter()
        if stream:
            provider.stream(messages, tools, None, on_text=lambda _t: None)
        else:
            provider(messages, tools, None)
        mine.append(time.perf_counter() - t)
    r, m = statistics.median(raw) * 1e3, statistics.median(mine) * 1e3
    return {"api": api, "stream": stream, "raw_ms": r, "provider_ms": m, "overhead_ms": m - r}


def machine(workdir: str, probes: int = 300) -> dict[str, Any]:
    return {
        "python": platform.python_version(),
        "nproc": os.cpu_count(),
        "platform": platform.platform(),
        "delite": delite.__version__,
        "fsync_ms": fsync_floor(workdir, probes),
    }


def _table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    line = lambda cells: "| " + " | ".join(c.rjust(w) for c, w in zip(cells, widths, strict=True)) + " |"  # noqa: E731
    sep = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([line(headers), sep, *(line(r) for r in rows)])


def render(result: dict[str, Any]) -> str:
    m = result["machine"]
    fsync = m["fsync_ms"]
    out = [f"machine: {m['nproc']} cores, Python {m['python']}; one append+fsync {fsync:.3f} ms (median)", ""]
    rows = [
        [
            r["api"],
            "sse" if r["stream"] else "json",
            str(r["calls"]),
            f"{r['raw_ms']:.3f}",
            f"{r['agent_off_ms']:.3f}",
            f"{r['overhead_off_ms']:.3f}",
            f"{r['agent_full_ms']:.3f}",
            f"{r['overhead_full_ms']:.3f}",
            f"{r['fsyncs_per_call']:.1f}",
            f"{r['overhead_full_ms'] - r['fsyncs_per_call'] * fsync:.3f}",
        ]
        for r in result["runs"]
    ]
    headers = [
        "api",
        "wire",
        "calls",
        "raw ms",
        "off ms",
        "overhead",
        "full ms",
        "overhead",
        "fsync/call",
        "beyond fsync",
    ]
    out += ["per model call (and its tool call), medians:", _table(headers, rows), ""]
    rows = [
        [
            r["api"],
            "sse" if r["stream"] else "json",
            f"{r['raw_ms']:.3f}",
            f"{r['provider_ms']:.3f}",
            f"{r['overhead_ms']:.3f}",
        ]
        for r in result["provider"]
    ]
    out += [
        "the provider alone, one-message conversation:",
        _table(["api", "wire", "raw ms", "provider ms", "overhead"], rows),
    ]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--json", action="store_true", help="print JSON instead of tables")
    parser.add_argument("--steps", type=int, default=30, help="tool steps per execution (default 30)")
    parser.add_argument("--repeat", type=int, default=5, help="repetitions (median; default 5)")
    parser.add_argument("--calls", type=int, default=200, help="calls for the provider-only figure (default 200)")
    parser.add_argument("--apis", default="chat,responses,messages", help="comma-separated APIs")
    parser.add_argument(
        "--smoke", "--quick", action="store_true", help="CI smoke mode (also --quick): one step, a few seconds"
    )
    parser.add_argument("--json-out", metavar="PATH", help="also write the JSON to PATH (the tables are still printed)")
    args = parser.parse_args(argv)
    probes = 300
    if args.smoke:
        args.steps, args.repeat, args.calls, probes = 1, 1, 2, 10
    apis = [a for a in args.apis.split(",") if a]
    warnings.simplefilter("ignore")  # an unpriced model would warn on every call; all here are priced
    workdir = tempfile.mkdtemp(prefix="delite-bench-provider-")
    server = FakeLLMProcess()
    try:
        result: dict[str, Any] = {"machine": machine(workdir, probes), "smoke": args.smoke, "runs": [], "provider": []}
        for api in apis:
            for stream in (False, True):
                result["runs"].append(
                    bench_api(server, api, stream, steps=args.steps, repeat=args.repeat, workdir=workdir)
                )
                result["provider"].append(bench_provider_only(server, api, stream, args.calls))
    finally:
        server.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2) if args.json else render(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
