"""Helpers of the fleet tests: ``delite worker`` processes on a shared store, and the ledger they leave."""

from __future__ import annotations

import collections
import json
import os
import signal as signals
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent


class Worker:
    """One ``delite worker --json`` process serving ``fleet_agent`` agents on a data directory (or URL)."""

    def __init__(
        self,
        where: str,
        *agents: str,
        concurrency: int = 4,
        poll: float = 0.2,
        env: dict[str, str] | None = None,
    ) -> None:
        specs = agents or ("fleet_agent:build",)
        args = [sys.executable, "-m", "delite_cli", "worker", "--data-dir", where, "--json"]
        args += ["--concurrency", str(concurrency), "--poll", str(poll)]
        for spec in specs:
            args += ["--agent", spec]
        full_env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")])}
        full_env.pop("DELITE_AGENT", None)
        full_env.update(env or {})
        self.proc = subprocess.Popen(
            args, cwd=HERE, env=full_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        self.out = ""
        self.err = ""

    @property
    def pid(self) -> int:
        return self.proc.pid

    def send(self, sig: int) -> None:
        self.proc.send_signal(sig)

    def finish(self, sig: int = signals.SIGTERM, timeout: float = 60) -> int:
        """Send ``sig`` (if still running), wait for the exit; the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            self.out, self.err = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.out, self.err = self.proc.communicate()
            raise
        return self.proc.returncode

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.out, self.err = self.proc.communicate()

    @property
    def events(self) -> list[dict[str, Any]]:
        """The JSON lines it printed (after :meth:`finish`)."""
        return [json.loads(line) for line in self.out.splitlines() if line.startswith("{")]

    def took(self, event: str) -> list[str]:
        return [e["execution_id"] for e in self.events if e["event"] == event]


def wait_until(check: Callable[[], bool], timeout: float = 60, what: str = "the condition") -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.05)


def lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def ledger(data: Path) -> list[tuple[str, int, int]]:
    """The side effects: (idempotency key, attempt, pid) per tool body that completed."""
    out = []
    for line in lines(data / "ledger.txt"):
        key, attempt, pid = line.split()
        out.append((key, int(attempt), int(pid)))
    return out


def ran_twice(data: Path) -> list[str]:
    """Idempotency keys whose side effect happened more than once."""
    counts = collections.Counter(key for key, _, _ in ledger(data))
    return sorted(k for k, n in counts.items() if n > 1)
