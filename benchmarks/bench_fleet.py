"""A fleet of ``delite worker`` processes on PostgreSQL: throughput, and failover after a worker dies.

Standalone; gates nothing. Needs the PostgreSQL server binaries and psycopg (``pip install -e ".[postgres]"``):
the server is a throwaway one started by the tests' own code (``tests/_pg.py``) with ``fsync`` turned back on.
The partition measurement needs root and network namespaces (``tests/_netns.py``); elsewhere it is left out
and the script says why.

    python benchmarks/bench_fleet.py                  # the tables (a few minutes)
    python benchmarks/bench_fleet.py --json           # the same numbers as JSON
    python benchmarks/bench_fleet.py --smoke          # or --quick; CI: small, checks it still runs

Every worker is a real ``delite worker --data-dir postgresql://... --agent hosts_agent:build`` process (the
agent of the several-hosts tests, ``tests/hosts/hosts_agent.py``); every tool call appends a line to a ledger,
and every measurement checks it: every execution completed, no call's side effect repeated (except, after a
partition, the fenced worker's own late effects, counted apart).

**Throughput.** ``--executions`` executions (``job N``: three tool calls, four model calls) are enqueued, then
1, 2 and 4 worker processes (``--workers``) each with ``--concurrency`` runs at once serve them, with a model
that takes ``--model-ms`` per call. The wall time is from the first take to the last completion (the workers'
own event times); the ideal is the model time alone spread over every slot: executions x 4 x model time /
(workers x concurrency).

**Failover.** ``--failover-executions`` executions are parked inside a tool on one worker; two other workers
(on two other hosts, when namespaces are available) stand by, polling every ``--poll`` seconds (and woken by
``LISTEN``). Then the first worker dies: SIGKILL (its connections close, PostgreSQL ends its session and its
advisory locks at once) or a partition of its host (nothing closes: the server's TCP keepalives must find the
dead peer; the store's defaults, 5 s idle, 2 s interval, 3 probes). The delay of each execution is from the
death to the first record another worker appends to it (the log's head moving); p50 and p99 over every
execution of ``--kill-trials`` (``--cut-trials``) trials. Targets: p99 under 15 s after a SIGKILL, under 60 s
after a partition.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
TESTS = ROOT / "tests"
AGENT_DIR = TESTS / "hosts"
sys.path[:0] = [str(ROOT), str(TESTS), str(AGENT_DIR)]

import hosts_agent  # noqa: E402 - the agent of the several-hosts tests, beside them
from _pg import PgServer, unavailable  # noqa: E402 - the tests' throwaway server

MODEL_CALLS = 4  # a ``job`` execution: three tool calls and the answer
TARGET_KILL_P99_S = 15.0
TARGET_CUT_P99_S = 60.0


class Worker:
    """One ``delite worker --json`` process (inside a namespace host when ``hosts`` is given)."""

    def __init__(
        self,
        url: str,
        work_dir: Path,
        *,
        concurrency: int,
        poll: float,
        env: dict[str, str] | None = None,
        hosts: Any = None,
        host: int = 0,
    ) -> None:
        argv = [sys.executable, "-m", "delite_cli", "worker", "--data-dir", url, "--json"]
        argv += ["--concurrency", str(concurrency), "--poll", str(poll), "--agent", "hosts_agent:build"]
        full_env = {k: v for k, v in os.environ.items() if k not in ("DELITE_AGENT", "DELITE_DATA_DIR")}
        full_env["PYTHONPATH"] = os.pathsep.join([str(AGENT_DIR), str(ROOT), os.environ.get("PYTHONPATH", "")])
        full_env["HOSTS_DIR"] = str(work_dir)
        full_env["HOSTS_NAME"] = f"h{host}" if hosts is not None else "root"
        full_env.update(env or {})
        if hosts is not None:
            argv = hosts.command(host, argv)
        self.proc = subprocess.Popen(
            argv,
            cwd=AGENT_DIR,
            env=full_env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.events: list[dict[str, Any]] = []
        self.err: list[str] = []
        self._lock = threading.Lock()
        self._threads = [
            threading.Thread(target=self._read, args=(self.proc.stdout, True), daemon=True),
            threading.Thread(target=self._read, args=(self.proc.stderr, False), daemon=True),
        ]
        for t in self._threads:
            t.start()

    def _read(self, stream: Any, events: bool) -> None:
        for line in stream:
            with self._lock:
                if events and line.startswith("{"):
                    self.events.append(json.loads(line))
                elif not events:
                    self.err.append(line)

    def of(self, kind: str) -> list[dict[str, Any]]:
        with self._lock:
            return [e for e in self.events if e.get("event") == kind]

    def wait_started(self, timeout: float = 60) -> None:
        wait(lambda: bool(self.of("started")) or self.proc.poll() is not None, timeout, "a worker to start")
        if not self.of("started"):
            raise RuntimeError("a worker did not start: " + "".join(self.err)[-2000:])

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        for t in self._threads:
            t.join(timeout=10)
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()
        return self.proc.returncode


def wait(check: Any, timeout: float, what: str, every: float = 0.05) -> float:
    started = time.monotonic()
    while not check():
        if time.monotonic() - started > timeout:
            raise RuntimeError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(every)
    return time.monotonic() - started


def ledger(work_dir: Path) -> list[tuple[str, int, str]]:
    path = work_dir / "ledger.txt"
    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        key, attempt, _, host = line.split()
        out.append((key, int(attempt), host))
    return out


def percentile(values: list[float], q: float) -> float | None:
    """The q-th percentile (0-100), linear between the closest ranks; None without values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    lo = int(rank)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (rank - lo)


class Setup:
    """The server (listening on the hosts' bridge too, when there are hosts), and the hosts themselves."""

    def __init__(self, with_hosts: bool) -> None:
        self.hosts: Any = None
        self.no_hosts = "--no-partition" if not with_hosts else None
        if with_hosts:
            from _netns import Hosts  # noqa: PLC0415 - only where namespaces are wanted
            from _netns import unavailable as no_namespaces  # noqa: PLC0415

            self.no_hosts = no_namespaces()
            if self.no_hosts is None:
                self.hosts = Hosts(3)
        extra = (self.hosts.bridge_ip,) if self.hosts is not None else ()
        self.server = PgServer(listen_addresses=extra)
        with (self.server.data / "postgresql.conf").open("a") as f:
            f.write("\n# delite benchmarks: durable commits\nfsync = on\nfull_page_writes = on\n")
        self.server.start()

    def database(self) -> tuple[str, str]:
        """A fresh database: its URL here and its URL for the hosts (the same without hosts)."""
        url: str = self.server.create_database()
        if self.hosts is None:
            return url, url
        return url, self.server.url(url.rsplit("/", 1)[-1], host=self.hosts.bridge_ip)

    def close(self) -> None:
        self.server.destroy()
        if self.hosts is not None:
            self.hosts.close()


def measure_throughput(
    setup: Setup, counts: list[int], executions: int, model_ms: float, concurrency: int, poll: float
) -> list[dict[str, Any]]:
    from delite.store._postgres import PostgresStore  # noqa: PLC0415 - psycopg is checked for first

    rows = []
    for workers_n in counts:
        url, _ = setup.database()
        work_dir = Path(tempfile.mkdtemp(prefix="delite-fleet-"))
        store = PostgresStore(url)
        try:
            agent = hosts_agent.build(store)
            ids = [agent.enqueue(f"job {i}") for i in range(executions)]
            env = {"HOSTS_MODEL_DELAY": str(model_ms / 1000)}
            workers = [Worker(url, work_dir, concurrency=concurrency, poll=poll, env=env) for _ in range(workers_n)]
            try:
                wait(
                    lambda s=store: s.list_executions(status="completed", limit=1).total == executions,
                    timeout=max(600, executions * 2),
                    what=f"{executions} executions on {workers_n} workers",
                    every=0.2,
                )
            finally:
                codes = [w.stop() for w in workers]
            taken = [e["at"] for w in workers for e in w.of("taken")]
            done = [e["at"] for w in workers for e in w.of("completed")]
            wall = max(done) - min(taken)
            effects = ledger(work_dir)
            keys = [k for k, _, _ in effects]
            ideal = executions * MODEL_CALLS * model_ms / 1000 / (workers_n * concurrency)
            per_worker = [len(w.of("completed")) for w in workers]
            rows.append(
                {
                    "workers": workers_n,
                    "concurrency": concurrency,
                    "executions": executions,
                    "model_ms": model_ms,
                    "wall_s": round(wall, 3),
                    "executions_per_s": round(executions / wall, 2),
                    "model_calls_per_s": round(executions * MODEL_CALLS / wall, 1),
                    "ideal_s": round(ideal, 3),
                    "ratio_to_ideal": round(wall / ideal, 2),
                    "completed_per_worker": per_worker,
                    "all_completed": sum(per_worker) == executions
                    and store.list_executions(status="completed", limit=1).total == executions,
                    "side_effects": len(effects),
                    "duplicates": len(keys) - len(set(keys)),
                    "exit_codes": codes,
                }
            )
            print(f"  {workers_n} worker(s): {wall:.2f} s for {executions} executions", file=sys.stderr)
            del ids
        finally:
            store.close()
            shutil.rmtree(work_dir, ignore_errors=True)
    return rows


def measure_failover(
    setup: Setup, how: str, trials: int, executions: int, poll: float, standby_concurrency: int
) -> dict[str, Any]:
    """Park ``executions`` on a doomed worker, kill it (``sigkill``) or cut its host (``partition``), time takeovers."""
    from delite.store._postgres import PostgresStore  # noqa: PLC0415 - psycopg is checked for first

    hosts = setup.hosts  # in namespaces when there are hosts (a partition needs them)
    delays: list[float] = []
    checks: list[dict[str, Any]] = []
    for trial in range(trials):
        url, host_url = setup.database()
        work_dir = Path(tempfile.mkdtemp(prefix="delite-failover-"))
        store = PostgresStore(url)
        doomed: Worker | None = None
        standby: list[Worker] = []
        try:
            agent = hosts_agent.build(store)
            ids = [agent.enqueue(f"park {i}", execution_id=f"{how}-{trial}-{i}") for i in range(executions)]
            doomed = Worker(
                host_url, work_dir, concurrency=executions, poll=poll, env={"HOSTS_PARK": "1"}, hosts=hosts, host=0
            )
            parked = work_dir / "parked.txt"
            wait(lambda p=parked: p.exists() and len(p.read_text().splitlines()) == executions, 120, "parking")
            standby = [
                Worker(host_url, work_dir, concurrency=standby_concurrency, poll=poll, hosts=hosts, host=h)
                for h in (1, 2)
            ]
            for w in standby:
                w.wait_started()
            time.sleep(poll)  # both have looked for work at least once: nothing is theirs yet
            heads = {eid: store.head(eid) for eid in ids}
            advanced: dict[str, float] = {}
            died = time.monotonic()
            if how == "sigkill":
                doomed.proc.send_signal(signal.SIGKILL)
            else:
                hosts.partition(0)
            while len(advanced) < len(ids):
                if time.monotonic() - died > 180:
                    raise RuntimeError(f"{how}: only {len(advanced)} of {len(ids)} advanced elsewhere in 180 s")
                for eid in ids:
                    if eid not in advanced and store.head(eid) > heads[eid]:
                        advanced[eid] = time.monotonic() - died
                time.sleep(0.01)
            delays.extend(advanced.values())
            wait(
                lambda s=store: s.list_executions(status="completed", limit=1).total == executions,
                120,
                "the takeovers to complete",
            )
            fenced = 0
            if how == "partition":
                hosts.heal(0)
                (work_dir / "release").touch()  # the old worker's tools finish; its appends must be refused
                wait(lambda d=doomed: len(d.of("error")) == executions, 120, "the old worker to be fenced")
                fenced = sum(e["error"].startswith("ClaimLostError") for e in doomed.of("error"))
            keys = [k for k, _, host in ledger(work_dir) if not (how == "partition" and host == "h0")]
            checks.append(
                {
                    "all_completed": True,
                    "duplicates": len(keys) - len(set(keys)),
                    "fenced": fenced,
                    "max_s": round(max(advanced.values()), 3),
                }
            )
            print(f"  {how} trial {trial}: the last one advanced after {max(advanced.values()):.2f} s", file=sys.stderr)
        finally:
            if hosts is not None and hosts.is_partitioned(0):
                hosts.heal(0)
            if doomed is not None:
                doomed.stop(signal.SIGKILL if how == "sigkill" else signal.SIGTERM)
            for w in standby:
                w.stop()
            store.close()
            shutil.rmtree(work_dir, ignore_errors=True)
    p99 = percentile(delays, 99)
    target = TARGET_KILL_P99_S if how == "sigkill" else TARGET_CUT_P99_S
    return {
        "how": how,
        "trials": trials,
        "executions_per_trial": executions,
        "poll_s": poll,
        "samples": len(delays),
        "p50_s": round(percentile(delays, 50) or 0, 3),
        "p99_s": round(p99 or 0, 3),
        "max_s": round(max(delays), 3),
        "target_p99_s": target,
        "target_met": p99 is not None and p99 < target,
        "on_hosts": hosts is not None,
        "checks": checks,
        "delays_s": [round(d, 3) for d in sorted(delays)],
    }


def machine() -> str:
    return f"{platform.system()} {platform.release()}, {platform.machine()}, {os.cpu_count()} CPUs"


def tables(report: dict[str, Any]) -> str:
    out = [f"machine: {report['machine']}; server: {report['server']}", "", "Fleet throughput on PostgreSQL:"]
    out.append(
        "| workers | concurrency each | executions | model ms | wall s | executions/s | model calls/s "
        "| ideal s | x ideal | completed per worker | duplicates |"
    )
    out.append("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in report["throughput"]:
        out.append(
            f"| {r['workers']} | {r['concurrency']} | {r['executions']} | {r['model_ms']:g} | {r['wall_s']:.2f} "
            f"| {r['executions_per_s']:.1f} | {r['model_calls_per_s']:.0f} | {r['ideal_s']:.2f} "
            f"| {r['ratio_to_ideal']:.2f} | {r['completed_per_worker']} | {r['duplicates']} |"
        )
    out += ["", "Failover: from a worker's death to its executions advancing on another worker:"]
    out.append("| death | trials x executions | poll s | p50 s | p99 s | max s | target p99 | met | on hosts |")
    out.append("|---|---|---|---|---|---|---|---|---|")
    for f in report["failover"]:
        if "skipped" in f:
            out.append(f"| {f['how']} | left out: {f['skipped']} | | | | | | | |")
            continue
        out.append(
            f"| {f['how']} | {f['trials']} x {f['executions_per_trial']} | {f['poll_s']:g} | {f['p50_s']:.2f} "
            f"| {f['p99_s']:.2f} | {f['max_s']:.2f} | < {f['target_p99_s']:g} s | {'yes' if f['target_met'] else 'NO'} "
            f"| {'yes' if f['on_hosts'] else 'no'} |"
        )
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--executions", type=int, default=500)
    parser.add_argument("--workers", default="1,2,4", help="worker counts to measure throughput with")
    parser.add_argument("--concurrency", type=int, default=16, help="runs at once in each worker")
    parser.add_argument("--model-ms", type=float, default=50.0)
    parser.add_argument("--poll", type=float, default=1.0, help="the workers' polling interval, seconds")
    parser.add_argument("--failover-executions", type=int, default=10)
    parser.add_argument("--kill-trials", type=int, default=5)
    parser.add_argument("--cut-trials", type=int, default=3)
    parser.add_argument("--no-partition", action="store_true", help="leave out the partition measurement")
    parser.add_argument("--json", action="store_true", help="the JSON on stdout instead of the tables")
    parser.add_argument("--json-out", metavar="PATH", help="also write the JSON to PATH")
    parser.add_argument("--smoke", "--quick", action="store_true", help="CI smoke mode: small and quick")
    args = parser.parse_args(argv)
    counts = [int(c) for c in args.workers.split(",") if c]
    executions, fo_exec, kill_trials, cut_trials = (
        args.executions,
        args.failover_executions,
        args.kill_trials,
        args.cut_trials,
    )
    if args.smoke:
        counts, executions, fo_exec, kill_trials, cut_trials = [1, 2], 20, 2, 1, 1
    why = unavailable()
    if why is not None:
        report: dict[str, Any] = {"machine": machine(), "smoke": args.smoke, "skipped": why}
        print(f"bench_fleet: left out ({why})", file=sys.stderr)
        if args.json_out:
            Path(args.json_out).write_text(json.dumps(report, indent=2))
        print(json.dumps(report, indent=2) if args.json else f"PostgreSQL fleet benchmark left out: {why}")
        return 0
    setup = Setup(with_hosts=not args.no_partition)
    try:
        import psycopg  # noqa: PLC0415 - checked for by unavailable()

        with psycopg.connect(setup.server.url("postgres")) as conn:
            row = conn.execute("SHOW server_version").fetchone()
        server = f"PostgreSQL {row[0] if row else '?'}, fsync on"
        print("throughput...", file=sys.stderr)
        throughput = measure_throughput(setup, counts, executions, args.model_ms, args.concurrency, args.poll)
        print("failover after SIGKILL...", file=sys.stderr)
        failover = [measure_failover(setup, "sigkill", kill_trials, fo_exec, args.poll, fo_exec)]
        if setup.hosts is None:
            failover.append({"how": "partition", "skipped": setup.no_hosts})
        else:
            print("failover after a partition...", file=sys.stderr)
            failover.append(measure_failover(setup, "partition", cut_trials, fo_exec, args.poll, fo_exec))
    finally:
        setup.close()
    report = {
        "machine": machine(),
        "server": server,
        "smoke": args.smoke,
        "throughput": throughput,
        "failover": failover,
    }
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2) if args.json else tables(report))
    bad = [r for r in throughput if not r["all_completed"] or r["duplicates"]]
    bad += [f for f in failover if "checks" in f and any(c["duplicates"] for c in f["checks"])]
    bad += [
        f
        for f in failover
        if f.get("how") == "partition"
        and "checks" in f
        and any(c["fenced"] != f["executions_per_trial"] for c in f["checks"])
    ]
    for item in bad:
        print(f"bench_fleet: a check failed: {item}", file=sys.stderr)
    return 1 if bad else 0


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        raise SystemExit(main())
