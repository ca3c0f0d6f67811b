"""``delite worker`` processes inside namespace hosts, their JSON events read as they come, and the ledger."""

from __future__ import annotations

import collections
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from _netns import Hosts

HERE = Path(__file__).resolve().parent


def env_for(work_dir: Path, host: str, extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of a process on a host: the agent module importable, the ledger's directory, its name."""
    env = {k: v for k, v in os.environ.items() if k not in ("DELITE_AGENT", "DELITE_DATA_DIR")}
    env["PYTHONPATH"] = os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")])
    env["HOSTS_DIR"] = str(work_dir)
    env["HOSTS_NAME"] = host
    env.update(extra or {})
    return env


class HostWorker:
    """One ``delite worker --json`` serving ``hosts_agent:build`` on host ``host``, over the bridge's URL."""

    def __init__(
        self,
        hosts: Hosts,
        host: int,
        url: str,
        work_dir: Path,
        *,
        concurrency: int = 4,
        poll: float = 0.2,
        env: dict[str, str] | None = None,
    ) -> None:
        """Start it; its stdout (JSON events) is read by a thread into :attr:`events`, its stderr kept."""
        argv = [sys.executable, "-m", "delite_cli", "worker", "--data-dir", url, "--json"]
        argv += ["--concurrency", str(concurrency), "--poll", str(poll), "--agent", "hosts_agent:build"]
        self.host = host
        self.proc = hosts.popen(
            host,
            argv,
            cwd=HERE,
            env=env_for(work_dir, f"h{host}", env),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        self.events: list[dict[str, Any]] = []
        self.err_lines: list[str] = []
        self._lock = threading.Lock()
        self._readers = [
            threading.Thread(target=self._read_out, daemon=True),
            threading.Thread(target=self._read_err, daemon=True),
        ]
        for reader in self._readers:
            reader.start()

    def _read_out(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            if line.startswith("{"):
                event = json.loads(line)
                event["seen_at"] = time.time()
                with self._lock:
                    self.events.append(event)

    def _read_err(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            with self._lock:
                self.err_lines.append(line)

    def wait_started(self, timeout: float = 60) -> None:
        """Wait for its ``started`` event (its signal handlers are in place: a SIGTERM now drains)."""
        wait_until(lambda: bool(self.took_any("started")), timeout=timeout, what=f"the worker on host {self.host}")

    def took_any(self, event: str) -> list[dict[str, Any]]:
        """Its events of one kind."""
        with self._lock:
            return [e for e in self.events if e.get("event") == event]

    @property
    def err(self) -> str:
        """What it wrote to stderr so far."""
        with self._lock:
            return "".join(self.err_lines)

    def took(self, event: str) -> list[str]:
        """The execution ids of its events of one kind, in order."""
        with self._lock:
            return [e["execution_id"] for e in self.events if e.get("event") == event]

    def errors(self) -> list[dict[str, Any]]:
        """Its ``error`` events."""
        with self._lock:
            return [e for e in self.events if e.get("event") == "error"]

    def kill(self) -> None:
        """SIGKILL it (no drain, no release: its claims die with its connections)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self._close()

    def finish(self, sig: int = signal.SIGTERM, timeout: float = 60) -> int:
        """Send ``sig`` (if still running) and wait for the exit; the exit code (SIGKILL after ``timeout``)."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._close()
        return self.proc.returncode

    def _close(self) -> None:
        self.proc.wait()
        for reader in self._readers:
            reader.join(timeout=10)
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()


def wait_until(check: Callable[[], bool], timeout: float = 60, what: str = "the condition") -> float:
    """Poll ``check`` until true; the seconds it took (an AssertionError after ``timeout``)."""
    started = time.monotonic()
    while not check():
        if time.monotonic() - started > timeout:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.05)
    return time.monotonic() - started


def lines(path: Path) -> list[str]:
    """The lines of a file (none if it does not exist)."""
    return path.read_text().splitlines() if path.exists() else []


def ledger(work_dir: Path) -> list[tuple[str, int, int, str]]:
    """The side effects: ``(idempotency key, attempt, pid, host)`` per tool body that got to its effect."""
    out = []
    for line in lines(work_dir / "ledger.txt"):
        key, attempt, pid, host = line.split()
        out.append((key, int(attempt), int(pid), host))
    return out


def ran_twice(work_dir: Path) -> list[str]:
    """Idempotency keys whose side effect happened more than once."""
    counts = collections.Counter(key for key, _, _, _ in ledger(work_dir))
    return sorted(k for k, n in counts.items() if n > 1)


def parked(work_dir: Path) -> list[tuple[str, str, int]]:
    """``(execution id, idempotency key, pid)`` of each call that blocked in a ``HOSTS_PARK=1`` worker."""
    out = []
    for line in lines(work_dir / "parked.txt"):
        eid, key, pid = line.split()
        out.append((eid, key, int(pid)))
    return out
