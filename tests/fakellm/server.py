"""Run the fake server in a thread of the test process, or as a separate process."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import uvicorn

from fakellm.app import State, build_app
from fakellm.script import Script, encode

TESTS = Path(__file__).resolve().parent.parent


def _quiet() -> None:
    # A dropped connection is an exception in the ASGI app on purpose; uvicorn would log its traceback.
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).setLevel(logging.CRITICAL)


class FakeLLM:
    """The app served by uvicorn in a background thread, bound by uvicorn itself to 127.0.0.1, port 0.

    Letting uvicorn bind the socket matters: it sets TCP_NODELAY on accepted connections, without which every
    response waits about 40 ms for a delayed ACK.
    """

    def __init__(self) -> None:
        self.state = State()
        _quiet()
        config = uvicorn.Config(
            build_app(self.state),
            host="127.0.0.1",
            port=0,
            log_level="critical",
            access_log=False,
            lifespan="off",
            timeout_graceful_shutdown=1,
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, name="fakellm", daemon=True)
        self.port = 0

    def start(self) -> FakeLLM:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the fake LLM server did not start")
            time.sleep(0.005)
        self.port = self.server.servers[0].sockets[0].getsockname()[1]
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def load(self, script: Script) -> None:
        self.state.load(script)

    @property
    def requests(self) -> list[dict[str, Any]]:
        with self.state.lock:
            return list(self.state.requests)


class FakeLLMProcess:
    """The same server as a separate process (``python -m fakellm``), scripted over its control endpoint."""

    def __init__(self) -> None:
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")])}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "fakellm"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line.startswith("PORT "):
            self.proc.kill()
            raise RuntimeError(
                f"the fake LLM process did not start: {line!r} {self.proc.stderr.read() if self.proc.stderr else ''}"
            )
        self.port = int(line.split()[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def load(self, script: Script) -> None:
        req = urllib.request.Request(f"{self.url}/_control/script", data=encode(script), method="POST")  # noqa: S310
        with urllib.request.urlopen(req, timeout=10) as r:  # noqa: S310 - loopback only
            r.read()

    @property
    def requests(self) -> list[dict[str, Any]]:
        with urllib.request.urlopen(f"{self.url}/_control/requests", timeout=10) as r:  # noqa: S310
            data: list[dict[str, Any]] = json.loads(r.read())
            return data

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        for f in (self.proc.stdout, self.proc.stderr):
            if f is not None:
                f.close()


def main() -> None:
    server = FakeLLM().start()
    print(f"PORT {server.port}", flush=True)
    try:
        server.thread.join()
    except KeyboardInterrupt:
        server.stop()
