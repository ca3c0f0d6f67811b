from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("mcp", reason="the mcp extra is not installed (pip install 'delite-agents[mcp]')")

HERE = Path(__file__).resolve().parent
SERVER = str(HERE / "servers.py")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_port(port: int, proc: subprocess.Popen[Any], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the test server exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("the test server did not start listening")


class HttpServers:
    """Streamable HTTP test servers on loopback, each a subprocess; all stopped at teardown."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.procs: list[subprocess.Popen[Any]] = []

    def start(self, port: int | None = None, **env: str) -> tuple[str, subprocess.Popen[Any]]:
        port = port or free_port()
        log = open(self.tmp / f"http-{port}-{len(self.procs)}.log", "w")  # noqa: SIM115
        proc = subprocess.Popen(
            [sys.executable, SERVER, "http", str(port)],
            env={**os.environ, **env},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        self.procs.append(proc)
        wait_for_port(port, proc)
        return f"http://127.0.0.1:{port}/mcp", proc

    def stop(self, proc: subprocess.Popen[Any]) -> None:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)

    def close(self) -> None:
        for proc in self.procs:
            self.stop(proc)


@pytest.fixture
def http_servers(tmp_path: Path) -> Iterator[HttpServers]:
    servers = HttpServers(tmp_path)
    try:
        yield servers
    finally:
        servers.close()


class Recording:
    """A provider that remembers the tools it was offered, then answers from a ScriptedProvider."""

    def __init__(self, script: list[Any]) -> None:
        from delite.providers import ScriptedProvider

        self.inner = ScriptedProvider(script)
        self.offered: list[list[dict[str, Any]]] = []
        self.name = "scripted"

    def __call__(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]], model: str | None) -> Any:
        self.offered.append(tools)
        return self.inner(messages, tools, model)


@pytest.fixture
def recording() -> Callable[[list[Any]], Recording]:
    return Recording
