"""Many executions at once: Runtime throughput with a slow model, and how long a log write holds the event loop.

Standalone; sets baselines and gates nothing.

    python benchmarks/bench_runtime.py                 # the tables (about a minute)
    python benchmarks/bench_runtime.py --json          # the same numbers as JSON
    python benchmarks/bench_runtime.py --concurrency 1 10 100   # smaller: 1, 10, 100 executions
    python benchmarks/bench_runtime.py --smoke         # or --quick; CI: a few seconds, checks it still runs

Every run checks what it measured (every execution answered, every log healthy) and exits 1 if it did not.

**Throughput.** N executions are started at once in one :class:`~delite.Runtime` (``rt.go``) and waited
for. Each is S steps of one model call and one call of a trivial sync tool, then the answer (S + 1 model
calls), with a model that takes ``--delay`` seconds per call. On its own, an execution takes at least
(S + 1) x delay; that is the ideal wall time of N of them running at once. The model is, by ``--providers``:

* ``scripted``: ``ScriptedProvider.tool_loop(S)``, its delay awaited on the runtime's loop (no HTTP);
* ``openai``: the real ``OpenAI`` provider (the ``openai`` SDK, Chat Completions, JSON) against the fake LLM
  server of ``tests/fakellm`` in a process of its own on 127.0.0.1, where every request waits ``--delay``
  before its answer (the server's stall fault, one per request). Under the Runtime the provider's ``acall``
  is awaited on the loop with the SDK's async client: no thread per model call;
* ``openai-threads``: the same provider behind a plain sync function, which the engine runs in a worker
  thread per model call (what every vendor provider did before it had ``acall``), for comparison.

The table gives the wall time, its ratio to the ideal, the steps per second (N x S / wall) and per second of
this process's CPU time (``steps_per_cpu_s``: what one core sustains; the fake server's CPU is not counted
but shown, ``server_cpu_s``: on a 2-core machine the two share the cores),
the thread hops per step (calls handed to delite's I/O threads and to the runtime's worker threads, per model
call + tool call step), and checks every log afterwards (``DataDir.health``: checksums, no torn tail, every
execution completed). ``go_ms`` is the latency of one ``rt.go()`` call: it returns once the execution's start
is on disk (its log created and, in ``full`` and ``normal``, synced with its directory); ``start_s`` is the
time until the last ``go()`` returned, part of the wall time, and ``after_last_start_s`` the rest of it: the
last execution started needs the ideal time on its own, so the closer this is to ``ideal_s``, the better the
runtime kept up with the executions already started while ``go()`` was being called. ``--starters K`` calls ``go()`` from K threads at
once instead of one after another. ``create_ms_p50`` is the time to create an empty file in the run's data
directory, measured just before: a start creates two, and that cost depends on where the data directory is
(see :func:`creation_cost`; ``--dir`` chooses the folder). ``ctx_switches_per_step`` counts the context switches of every thread of
this process (``/proc/self/task/*/status``) per step.

**Event-loop stall.** ``agent.arun`` hands every log append (``write`` + ``fsync``) to delite's I/O
threads. The stall per write is the time the loop itself spends on one: submitting it and taking its result
back. It is compared with the append's own duration, which is what the loop would be blocked for if the
write were done on it. A heartbeat task (a 1 ms sleep in a loop) measures the lateness of the loop while 50
executions run (a 5 ms model), with the writes in threads (delite) and, for comparison, done on the loop; the
lateness also holds the engine's own work between two awaits, which runs on the loop by design.

**What a step costs, and what the targets leave.** One execution of 300 steps whose model answers at once,
through ``agent.run`` and ``agent.arun``, with a sync and an async tool, in ``off`` and ``full``: CPU and wall
time per step and the thread hops per step. ``rt.go()`` on an idle runtime next to the disk's floor for a
durable start (create a file, write a record, ``fsync`` it and its directory). From those, for issue 14's
targets (200 executions within 1.3x of the ideal, 1,000 within 1.5x): the ratio that starting them one after
another at the floor gives on its own, and the serial work each model turn may take (see :func:`budget`).
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Self

ROOT = Path(__file__).resolve().parent.parent
for _path in (ROOT, ROOT / "tests"):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

from fakellm import Call, FakeLLMProcess, Fault, Script, Turn  # noqa: E402

import delite  # noqa: E402
from delite import Agent, DataDir, Runtime, ScriptedProvider, tool  # noqa: E402
from delite.engine import _aio  # noqa: E402
from delite.providers import OpenAI  # noqa: E402

PROVIDERS = ("scripted", "openai", "openai-threads")


@tool
def step(i: int) -> str:
    """A trivial tool."""
    return f"s{i}"


def pct(values: list[float], p: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def vendor_script(n: int, steps: int, delay: float) -> Script:
    """S tool-call turns and an answer, each request of each turn held ``delay`` seconds (n executions)."""
    wait = [Fault(kind="stall", seconds=delay)] * n  # one per request: a fault is used up by the request it delays
    turns = [Turn(calls=[Call(name="step", arguments={"i": i})], faults=wait) for i in range(steps)]
    return Script(turns=[*turns, Turn(text="done", faults=wait)])


def model(kind: str, server: FakeLLMProcess | None, steps: int, delay: float) -> Any:
    if kind == "scripted":
        return ScriptedProvider.tool_loop(steps, "step", delay=delay)
    assert server is not None
    vendor = OpenAI("gpt-4o-mini", base_url=server.url + "/v1", api_key="bench")
    if kind == "openai":
        return vendor

    def in_a_thread(messages: list[dict[str, Any]], tools: list[dict[str, Any]], model: str | None) -> Any:
        return vendor(messages, tools, model)  # a plain sync callable: the engine runs it in a worker thread

    in_a_thread.name = vendor.name  # type: ignore[attr-defined]
    return in_a_thread


def server_cpu(server: FakeLLMProcess | None) -> float:
    """CPU seconds the fake server's process has used (0 without one, or where /proc cannot tell)."""
    if server is None:
        return 0.0
    try:
        fields = Path(f"/proc/{server.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def context_switches() -> int:
    """Voluntary and involuntary context switches of every thread of this process so far (0 without /proc)."""
    total = 0
    try:
        tasks = os.listdir("/proc/self/task")
    except OSError:
        return 0
    for task in tasks:
        try:
            lines = Path(f"/proc/self/task/{task}/status").read_text().splitlines()
        except OSError:
            continue  # the thread ended meanwhile
        total += sum(int(line.split(":")[1]) for line in lines if "ctxt_switches" in line)
    return total


def start_all(rt: Runtime, agent: Agent, n: int, starters: int) -> tuple[list[str], list[float]]:
    """``rt.go`` n times, from one thread or from ``starters`` threads at once; the ids and each call's ms."""

    def one(_: int) -> tuple[str, float]:
        t = time.perf_counter()
        eid = rt.go(agent, "go")  # returns once the start is on disk (a log created, synced per mode)
        return eid, (time.perf_counter() - t) * 1000

    if starters <= 1:
        done = [one(i) for i in range(n)]
    else:
        with concurrent.futures.ThreadPoolExecutor(starters, thread_name_prefix="bench-go") as pool:
            done = list(pool.map(one, range(n)))
    return [eid for eid, _ in done], [ms for _, ms in done]


class Hops:
    """Counts the calls handed to thread pools (``submit``) while installed."""

    def __init__(self, *pools: Any) -> None:
        self.pools = pools
        self.count = 0
        self.real = [pool.submit for pool in pools]

    def __enter__(self) -> Self:
        for pool, real in zip(self.pools, self.real, strict=True):

            def submit(fn: Any, *args: Any, _real: Any = real) -> None:
                self.count += 1  # from the event loop thread only: no lock needed
                _real(fn, *args)

            pool.submit = submit
        return self

    def __exit__(self, *exc: object) -> None:
        for pool, real in zip(self.pools, self.real, strict=True):
            pool.submit = real


def throughput(
    n: int,
    steps: int,
    delay: float,
    durability: str,
    workers: int,
    kind: str = "scripted",
    server: FakeLLMProcess | None = None,
    starters: int = 1,
) -> dict[str, Any]:
    data = tempfile.mkdtemp(prefix="delite-bench-rt-")
    try:
        create_ms = creation_cost()
        if server is not None:
            server.load(vendor_script(n, steps, delay))
        rt = Runtime(data, workers=workers, durability=durability)
        provider = model(kind, server, steps, delay)
        agent = Agent(data, runtime=rt, agent_id="bench", provider=provider, tools=[step], durability=durability)
        rt.start()
        cpu = time.process_time()
        served = server_cpu(server)
        switches = context_switches()
        started = time.perf_counter()
        with Hops(_aio.io_pool(), rt._pool) as hops:  # noqa: SLF001 - the runtime's worker threads
            ids, go_ms = start_all(rt, agent, n, starters)
            start_s = time.perf_counter() - started
            answers = [rt.wait(eid, timeout=600).answer for eid in ids]
        wall = time.perf_counter() - started
        switches = context_switches() - switches
        cpu = time.process_time() - cpu
        served = server_cpu(server) - served
        rt.shutdown()
        report = DataDir(data).health()
        page = DataDir(data).list(status="completed", limit=0)
        ideal = (steps + 1) * delay
        return {
            "provider": kind,
            "executions": n,
            "steps_each": steps,
            "model_delay_s": delay,
            "durability": durability,
            "starters": starters,
            "wall_s": round(wall, 3),
            "start_s": round(start_s, 3),
            "after_last_start_s": round(wall - start_s, 3),
            "ideal_s": round(ideal, 3),
            "ratio_to_ideal": round(wall / ideal, 2),
            "steps_per_s": round(n * steps / wall, 1),
            "cpu_s": round(cpu, 3),
            "steps_per_cpu_s": round(n * steps / cpu, 1) if cpu > 0 else None,
            "server_cpu_s": round(served, 2),
            "hops_per_step": round(hops.count / (n * steps), 2),
            "ctx_switches_per_step": round(switches / (n * steps), 1),
            "go_ms_p50": round(statistics.median(go_ms), 3),
            "go_ms_p99": round(pct(go_ms, 99), 3),
            "create_ms_p50": create_ms,
            "model_calls_per_s": round(n * (steps + 1) / wall, 1),
            "logs_healthy": report.healthy and report.logs == n and page.total == n,
            "all_answered": answers == ["done"] * n,
        }
    finally:
        SPENT.append(data)


SPENT: list[str] = []
"""Folders a measurement is done with, removed when the whole run ends (:func:`remove_spent`), not at once.

Removing thousands of files right before the next measurement can make its file creations slower (on ext4
without a journal, for a minute or more, the inodes just freed are passed over one by one), so one row would
measure what the row before it deleted.
"""


def remove_spent() -> None:
    """Remove the folders of :data:`SPENT`."""
    while SPENT:
        shutil.rmtree(SPENT.pop(), ignore_errors=True)


def creation_cost(n: int = 100) -> float:
    """The median time to create (and close) an empty file in a new folder where the data directories go, in ms.

    A start creates two files (its claim lock and its log), so this is part of every ``go()``. It depends on
    the file system's state, not only on the disk: on the machine of ``docs/benchmarks.md`` (ext4 without a
    journal) it took 0.015 ms, and 0.15 to 0.76 ms while many files deleted in the last minutes were near
    (the allocator passes over recently deleted inodes one by one). See :data:`SPENT`.
    """
    probe = tempfile.mkdtemp(prefix="delite-bench-create-")
    SPENT.append(probe)
    times = []
    for i in range(n):
        t = time.perf_counter()
        os.close(os.open(os.path.join(probe, f"p{i}"), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        times.append((time.perf_counter() - t) * 1e3)
    return round(statistics.median(times), 4)


async def _heartbeat(lags: list[float], stop: asyncio.Event) -> None:
    while not stop.is_set():
        t = time.perf_counter()
        await asyncio.sleep(0.001)
        lags.append((time.perf_counter() - t - 0.001) * 1000)


@tool("step", description="A trivial tool.")
async def astep(i: int) -> str:
    """A trivial async tool (run on the loop, no thread hop)."""
    return f"s{i}"


def per_step(steps: int, durability: str, driver: str, kind: str) -> dict[str, Any]:
    """One execution of ``steps`` tool steps, its model answering at once: CPU and wall time per step.

    ``driver``: ``run`` (the sync API: appends, tools and the model in the calling thread) or ``arun`` (on an
    event loop: ``fsync``ing appends and sync tools handed to threads). ``kind``: a ``sync`` or an ``async``
    tool. CPU is the process's (every thread, user and system), so a thread hop's wake-ups count. A first
    execution warms the code up; the second is timed.
    """
    data = tempfile.mkdtemp(prefix="delite-bench-step-")
    try:
        tools = [step] if kind == "sync" else [astep]
        agent = Agent(data, provider=ScriptedProvider.tool_loop(steps, "step"), tools=tools, durability=durability)
        with agent:

            def once(text: str) -> Any:
                return agent.run(text) if driver == "run" else asyncio.run(agent.arun(text))

            once("warm")
            with Hops(_aio.io_pool(), _aio.work_pool()) as hops:
                cpu, wall = time.process_time(), time.perf_counter()
                response = once("go")
                wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        return {
            "driver": driver,
            "tool": kind,
            "durability": durability,
            "steps": steps,
            "cpu_ms_per_step": round(cpu / (steps + 1) * 1e3, 4),
            "wall_ms_per_step": round(wall / (steps + 1) * 1e3, 4),
            "hops_per_step": round(hops.count / (steps + 1), 2),
            "answered": response.answer == "done",
        }
    finally:
        SPENT.append(data)


def durable_start_floor(n: int) -> dict[str, Any]:
    """``rt.go()`` on an idle runtime (its runs all waiting on their first model call) next to its floor.

    The floor is what a durable start needs of the disk whatever the code: create a file, write a record,
    ``fsync`` it and ``fsync`` its directory (``go()`` returns once the start is on disk, see its docs).
    """
    data = tempfile.mkdtemp(prefix="delite-bench-go-")
    try:
        floor = []
        probe = os.path.join(data, "probe")
        os.mkdir(probe)
        for i in range(n):
            t = time.perf_counter()
            fd = os.open(os.path.join(probe, f"p{i}"), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            os.write(fd, b"x" * 300)
            os.fsync(fd)
            os.close(fd)
            dfd = os.open(probe, os.O_RDONLY)
            os.fsync(dfd)
            os.close(dfd)
            floor.append((time.perf_counter() - t) * 1e3)
        rt = Runtime(data, durability="full")
        # A model slow enough that no run gets past its first call while go() is timed; shutdown waits it out.
        agent = Agent(data, runtime=rt, provider=ScriptedProvider.tool_loop(1, "step", delay=2.0), tools=[step])
        rt.start()
        for _ in range(3):
            rt.go(agent, "warm")
        time.sleep(0.2)  # the warm-up runs reach their model call
        go_ms = []
        cpu = time.thread_time()
        for _ in range(n):
            t = time.perf_counter()
            rt.go(agent, "go")
            go_ms.append((time.perf_counter() - t) * 1e3)
        cpu = time.thread_time() - cpu
        rt.shutdown()
        return {
            "starts": n,
            "go_ms_p50": round(statistics.median(go_ms), 3),
            "go_thread_cpu_ms": round(cpu / n * 1e3, 3),
            "floor_ms_p50": round(statistics.median(floor), 3),
        }
    finally:
        SPENT.append(data)


def budget(steps: int, delay: float, start: dict[str, Any], rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """What issue 14's targets leave for each model turn, against what a turn and a start cost here.

    Two bounds for N executions of S steps (S + 1 model turns each, ideal time (S + 1) x delay):

    * started one after another (``--starters 1``), the last ``go()`` returns after N durable starts, and its
      execution then needs the ideal time: at the disk's floor per start, the ratio is at least
      (N x floor + ideal) / ideal, whatever the code;
    * the engine's own work holds the GIL, so it runs one piece at a time: the N starts' and the N x (S + 1)
      turns' work must fit in the target time. The budget per turn is (target x ideal - N x go CPU) /
      (N x (S + 1)), with the calling thread's CPU per ``go()``; it is compared with the CPU per step of one
      execution under ``arun`` (``full``, a sync tool), an upper bound of a turn's serial part (it counts the
      kernel's work in every thread too, which runs beside the GIL).
    """
    ideal = (steps + 1) * delay
    arun = next(r for r in rows if r["driver"] == "arun" and r["tool"] == "sync" and r["durability"] == "full")
    out = []
    for n, target in ((200, 1.3), (1000, 1.5)):
        starts_s = n * start["floor_ms_p50"] / 1e3
        left = target * ideal - n * start["go_thread_cpu_ms"] / 1e3
        out.append(
            {
                "executions": n,
                "target": target,
                "sequential_starts_at_floor_s": round(starts_s, 3),
                "ratio_from_sequential_starts": round((starts_s + ideal) / ideal, 2),
                "budget_ms_per_turn": round(left / (n * (steps + 1)) * 1e3, 4),
                "arun_cpu_ms_per_step": arun["cpu_ms_per_step"],
            }
        )
    return out


def stall(n: int, steps: int, durability: str, *, on_loop: bool) -> dict[str, Any]:
    """Run n executions with arun on one loop; time the loop's share of each append and the heartbeat's lag.

    The loop's share of an append handed to a thread is what it does itself: queue it (``_Commits.add``),
    hand the appends of one turn of the loop to the I/O threads (``_Commits.flush``, shared by the appends it
    hands over) and, when the results are back, resolve the awaiting futures (``_Bridge.drain``, shared by the
    results it takes). ``on_loop`` instead does the append on the loop, as an async wrapper that calls the sync
    API would.
    """
    data = tempfile.mkdtemp(prefix="delite-bench-stall-")
    real_append = _aio._append  # noqa: SLF001 - the append the driver hands to the I/O threads
    real_commit = _aio._commit  # noqa: SLF001 - the seam where it does so
    real_add = _aio._Commits.add  # noqa: SLF001
    real_flush = _aio._Commits.flush  # noqa: SLF001
    real_drain = _aio._Bridge.drain  # noqa: SLF001
    loop_ms: list[float] = []
    write_ms: list[float] = []
    shared = {"ms": 0.0, "appends": 0}
    drained = {"ms": 0.0, "calls": 0}

    def timed_append(effect: Any) -> None:
        t = time.perf_counter()
        real_append(effect)
        write_ms.append((time.perf_counter() - t) * 1000)

    def add(commits: Any, job: Any) -> None:
        t = time.perf_counter()
        real_add(commits, job)
        loop_ms.append((time.perf_counter() - t) * 1000)

    def flush(commits: Any) -> None:
        appends = len(commits.queued)
        t = time.perf_counter()
        real_flush(commits)
        shared["ms"] += (time.perf_counter() - t) * 1000
        shared["appends"] += appends

    def drain(bridge: Any) -> None:
        calls = len(bridge.ready)
        t = time.perf_counter()
        real_drain(bridge)
        drained["ms"] += (time.perf_counter() - t) * 1000
        drained["calls"] += calls

    async def commit_on_loop(effect: Any) -> None:
        t = time.perf_counter()
        timed_append(effect)
        loop_ms.append((time.perf_counter() - t) * 1000)

    answered: list[str | None] = []

    async def main() -> list[float]:
        lags: list[float] = []
        stop = asyncio.Event()
        beat = asyncio.create_task(_heartbeat(lags, stop))
        provider = ScriptedProvider.tool_loop(steps, "step", delay=0.005)
        agent = Agent(data, provider=provider, tools=[step], durability=durability)
        responses = await asyncio.gather(*(agent.arun("go") for _ in range(n)))
        stop.set()
        answered.extend(r.answer for r in responses)
        await beat
        return lags

    if on_loop:
        _aio._commit = commit_on_loop  # type: ignore[assignment]  # noqa: SLF001
    else:
        _aio._append = timed_append  # noqa: SLF001
        _aio._Commits.add = add  # type: ignore[method-assign]  # noqa: SLF001
        _aio._Commits.flush = flush  # type: ignore[method-assign]  # noqa: SLF001
        _aio._Bridge.drain = drain  # type: ignore[method-assign]  # noqa: SLF001
    try:
        lags = asyncio.run(main())
    finally:
        _aio._append = real_append  # noqa: SLF001
        _aio._commit = real_commit  # noqa: SLF001
        _aio._Commits.add = real_add  # type: ignore[method-assign]  # noqa: SLF001
        _aio._Commits.flush = real_flush  # type: ignore[method-assign]  # noqa: SLF001
        _aio._Bridge.drain = real_drain  # type: ignore[method-assign]  # noqa: SLF001
        SPENT.append(data)
    per_append = shared["ms"] / shared["appends"] if shared["appends"] else 0.0
    per_result = drained["ms"] / drained["calls"] if drained["calls"] else 0.0
    # queueing the append, plus its share of the hand-over and of taking the results back
    on_loop_ms = [x + per_append + per_result for x in loop_ms] if not on_loop else loop_ms
    if answered != ["done"] * n or not write_ms or not on_loop_ms:
        raise SystemExit(f"stall run went wrong: {len(write_ms)} appends timed, answers {answered[:5]}...")
    return {
        "writes_on": "loop" if on_loop else "threads (delite)",
        "durability": durability,
        "executions": n,
        "appends": len(write_ms),
        "loop_ms_per_append_p50": round(statistics.median(on_loop_ms), 4),
        "loop_ms_per_append_p99": round(pct(on_loop_ms, 99), 4),
        "append_ms_p50": round(statistics.median(write_ms), 4),
        "append_ms_p99": round(pct(write_ms, 99), 4),
        "heartbeat_lag_ms_p50": round(statistics.median(lags), 3),
        "heartbeat_lag_ms_p99": round(pct(lags, 99), 3),
        "heartbeat_lag_ms_max": round(max(lags), 3) if lags else 0.0,
        "all_answered": True,
    }


def machine() -> dict[str, Any]:
    return {
        "python": platform.python_version(),
        "delite": delite.__version__,
        "system": f"{platform.system()} {platform.release()}",
        "cores": os.cpu_count(),
        "cpus_used": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "io_threads": _aio.IO_THREADS,
    }


def table(rows: list[dict[str, Any]], columns: list[str]) -> str:
    head = "| " + " | ".join(columns) + " |"
    rule = "|" + "|".join("---" for _ in columns) + "|"
    body = ["| " + " | ".join(str(r[c]) for c in columns) + " |" for r in rows]
    return "\n".join([head, rule, *body])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", action="store_true", help="print JSON instead of tables")
    parser.add_argument("--concurrency", type=int, nargs="*", help="numbers of executions at once")
    parser.add_argument("--steps", type=int, default=5, help="tool steps per execution (default 5)")
    parser.add_argument("--delay", type=float, default=0.05, help="seconds per model call (default 0.05)")
    parser.add_argument("--durability", default="full", choices=["full", "normal", "off"])
    parser.add_argument("--workers", type=int, default=32, help="the runtime's worker threads")
    parser.add_argument(
        "--starters",
        type=int,
        default=1,
        help="threads calling rt.go() at once (default 1: the N executions are started one after another)",
    )
    parser.add_argument(
        "--providers", nargs="*", choices=PROVIDERS, default=list(PROVIDERS), help="models to measure (default all)"
    )
    parser.add_argument(
        "--smoke",
        "--quick",
        action="store_true",
        help="CI smoke mode (also --quick): tiny sizes, a few seconds, no real numbers",
    )
    parser.add_argument("--json-out", metavar="PATH", help="also write the JSON to PATH (the tables are still printed)")
    parser.add_argument(
        "--dir",
        metavar="PATH",
        help="where the data directories are made (created if missing; default: the system's temporary folder);"
        " see create_ms_p50",
    )
    parser.add_argument(
        "--cpus",
        type=int,
        metavar="N",
        help="run on N of the CPUs this process may use (Linux); the interpreter's threads hand the GIL to each"
        " other on every hop, which costs more between CPUs",
    )
    args = parser.parse_args(argv)
    if args.cpus and hasattr(os, "sched_setaffinity"):
        allowed = sorted(os.sched_getaffinity(0))
        os.sched_setaffinity(0, allowed[: max(1, args.cpus)])
    if args.dir:
        Path(args.dir).mkdir(parents=True, exist_ok=True)
        tempfile.tempdir = str(Path(args.dir).resolve())
    try:
        return _measure(args)
    finally:
        remove_spent()


def _measure(args: argparse.Namespace) -> int:
    """Measure what ``args`` ask, print it and return the exit status (1: a run did not do what it should)."""
    stall_runs, stall_steps, cost_steps, starts = 50, 10, 300, 200
    if args.smoke:
        args.concurrency = args.concurrency or [1, 4]
        args.steps, args.delay = 2, 0.01
        stall_runs, stall_steps, cost_steps, starts = 4, 2, 3, 3
    levels = args.concurrency or [1, 10, 100, 200, 1000]
    server = FakeLLMProcess() if set(args.providers) - {"scripted"} else None
    try:
        rows = [
            throughput(n, args.steps, args.delay, args.durability, args.workers, kind, server, args.starters)
            for kind in args.providers
            for n in levels
        ]
    finally:
        if server is not None:
            server.stop()
    stalls = [
        stall(stall_runs, stall_steps, "full", on_loop=False),
        stall(stall_runs, stall_steps, "full", on_loop=True),
    ]
    costs = [
        per_step(cost_steps, durability, driver, kind)
        for durability in ("off", "full")
        for driver in ("run", "arun")
        for kind in ("sync", "async")
    ]
    start = durable_start_floor(starts)
    budgets = budget(args.steps, args.delay, start, costs)
    wrong = [r for r in rows if not (r["logs_healthy"] and r["all_answered"])]
    result = {
        "machine": machine(),
        "smoke": args.smoke,
        "throughput": rows,
        "stall": stalls,
        "per_step": costs,
        "start": start,
        "budget": budgets,
    }
    wrong += [r for r in costs if not r["answered"]]
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(result, indent=2))
    if args.json:
        print(json.dumps(result, indent=2))
        return 1 if wrong else 0
    m = result["machine"]
    print(f"Python {m['python']}, delite {m['delite']}, {m['system']}, {m['cores']} cores ({m['cpus_used']} used)")
    print(
        f"\nThroughput: {args.steps} steps per execution, model {args.delay * 1000:.0f} ms per call, {args.durability}"
    )
    print(
        table(
            rows,
            [
                "provider",
                "executions",
                "starters",
                "wall_s",
                "start_s",
                "after_last_start_s",
                "ideal_s",
                "ratio_to_ideal",
                "steps_per_s",
                "cpu_s",
                "steps_per_cpu_s",
                "server_cpu_s",
                "hops_per_step",
                "ctx_switches_per_step",
                "model_calls_per_s",
                "go_ms_p50",
                "go_ms_p99",
                "create_ms_p50",
                "logs_healthy",
            ],
        )
    )
    print(
        f"\nEvent loop while {stall_runs} executions of {stall_steps} steps run with arun"
        " (model 5 ms per call, full durability)"
    )
    print(
        table(
            stalls,
            [
                "writes_on",
                "appends",
                "loop_ms_per_append_p50",
                "loop_ms_per_append_p99",
                "append_ms_p50",
                "append_ms_p99",
                "heartbeat_lag_ms_p50",
                "heartbeat_lag_ms_p99",
                "heartbeat_lag_ms_max",
            ],
        )
    )
    print(f"\nOne execution of {cost_steps} steps, its model answering at once: what a step costs by driver and tool")
    print(table(costs, ["driver", "tool", "durability", "cpu_ms_per_step", "wall_ms_per_step", "hops_per_step"]))
    print(
        f"\nrt.go() on an idle runtime ({starts} starts, full): p50 {start['go_ms_p50']} ms, the calling thread's CPU"
        f" {start['go_thread_cpu_ms']} ms; the disk's floor for a durable start (create, write, fsync the file and"
        f" its directory) {start['floor_ms_p50']} ms"
    )
    print(f"\nWhat the issue-14 targets leave per model turn ({args.steps} steps, model {args.delay * 1000:.0f} ms)")
    print(
        table(
            budgets,
            [
                "executions",
                "target",
                "sequential_starts_at_floor_s",
                "ratio_from_sequential_starts",
                "budget_ms_per_turn",
                "arun_cpu_ms_per_step",
            ],
        )
    )
    for r in wrong:
        print(f"WRONG: {r}")
    return 1 if wrong else 0


if __name__ == "__main__":
    raise SystemExit(main())
