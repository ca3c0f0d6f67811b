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


class Place:
    """Where a test's executions live, as every process opens it: a data directory, or a PostgreSQL database.

    ``files`` is where the tools' ledger and markers go (``FLEET_FILES``); ``store`` is this process's handle.
    """

    def __init__(self, kind: str, where: str, files: Path) -> None:
        self.kind = kind
        self.where = where
        self.files = files
        files.mkdir(parents=True, exist_ok=True)
        self._store: Any = None

    @property
    def store(self) -> Any:
        if self._store is None:
            if self.kind == "pg":
                from delite.store._postgres import PostgresStore

                self._store = PostgresStore(self.where)
            else:
                from delite.store import FileStore

                self._store = FileStore(self.where)
        return self._store

    def agent(self, factory: Callable[[Any], Any]) -> Any:
        """An agent of ``fleet_agent`` on this place, in this process."""
        return factory(self.store if self.kind == "pg" else self.where)

    def command(self, *args: str) -> list[str]:
        """The ``delite`` command line running ``args`` on this place."""
        if self.kind == "pg":
            return [sys.executable, str(HERE / "pg_cli.py"), self.where, *args]
        return [sys.executable, "-m", "delite_cli", *args, "--data-dir", self.where]

    def env(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")])}
        env.pop("DELITE_AGENT", None)
        env.pop("DELITE_DATA_DIR", None)
        env["FLEET_FILES"] = str(self.files)
        env.update(extra or {})
        return env

    def status(self, eid: str) -> str:
        return str(self.store.state(eid).status.value)

    def statuses(self, ids: list[str]) -> dict[str, str]:
        return {eid: self.status(eid) for eid in ids}

    def all_completed(self, ids: list[str]) -> bool:
        return all(self.status(eid) == "completed" for eid in ids)

    def close(self) -> None:
        if self._store is not None:
            self._store.close()


class Worker:
    """One ``delite worker --json`` process serving ``fleet_agent`` agents on a place."""

    def __init__(
        self,
        place: Place,
        *agents: str,
        concurrency: int = 4,
        poll: float = 0.2,
        env: dict[str, str] | None = None,
    ) -> None:
        specs = agents or ("fleet_agent:build",)
        args = ["worker", "--json", "--concurrency", str(concurrency), "--poll", str(poll)]
        for spec in specs:
            args += ["--agent", spec]
        self.proc = subprocess.Popen(
            place.command(*args),
            cwd=HERE,
            env=place.env(env),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.out = ""
        self.err = ""

    @property
    def pid(self) -> int:
        return self.proc.pid

    def send(self, sig: int) -> None:
        self.proc.send_signal(sig)

    def finish(self, sig: int | None = signals.SIGTERM, timeout: float = 60) -> int:
        """Send ``sig`` (if still running; None: none), wait for the exit; the exit code."""
        if sig is not None and self.proc.poll() is None:
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
