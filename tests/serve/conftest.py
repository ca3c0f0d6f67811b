"""``delite serve`` under test: a real uvicorn server on a loopback port, over a file store, a MemoryStore and
the toy third store (``ListStore``), with the CLI's scenario agent (``tests/cli/scenario_agent.py``)."""

from __future__ import annotations

import json
import socket
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "cli"))  # scenario_agent, as ``--agent scenario_agent:build`` imports it

import scenario_agent  # noqa: E402
import uvicorn  # noqa: E402
from store_fixtures import ListStore  # noqa: E402

from delite.errors import ProviderError  # noqa: E402
from delite.store import MemoryStore, Store  # noqa: E402
from delite_cli._serve import ServeConfig, build_app  # noqa: E402
from delite_cli._target import Target  # noqa: E402

TOKEN = "test-token-0123456789abcdef"  # noqa: S105 - a test token


def populate(where: str | Store) -> None:
    """The scenarios: done, waiting for approval, a client tool, a human, an in-doubt call, failed, hostile."""
    agent = scenario_agent.build(where)
    try:
        _scenarios(agent)
    finally:
        if isinstance(where, str):  # the agent opened the store (a directory, a URL's pool): close it
            agent.close()


def _scenarios(agent: Any) -> None:
    agent.run("add 2 and 3", execution_id="done-1", metadata={"thread_id": "t-1", "user": 7})
    agent.run("pay the invoice", execution_id="approve-1", metadata={"thread_id": "t-2"})
    agent.run("pay twice", execution_id="approve-2")
    agent.run("where am I", execution_id="client-1")
    agent.run("book a trip", execution_id="input-1")
    scenario_agent.CRASH["transfer"] = True
    with pytest.raises(KeyboardInterrupt):
        agent.run("transfer funds", execution_id="doubt-1")
    agent.resume("doubt-1")
    with pytest.raises(ProviderError):
        agent.run("give up", execution_id="failed-1")
    agent.run("hostile " + scenario_agent.HOSTILE, execution_id="hostile-1")


def make_store(kind: str, tmp_path: Path) -> Target:
    if kind == "file":
        populate(str(tmp_path / "data"))
        return Target(data_dir=str(tmp_path / "data"))
    store: Store = MemoryStore() if kind == "memory" else ListStore()
    populate(store)
    return Target(store=store)


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def text(self) -> str:
        return self.body.decode()


class Server:
    """A running server and a small HTTP client for it (bearer token by default)."""

    def __init__(self, config: ServeConfig) -> None:
        self.config = config
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.base = f"http://127.0.0.1:{self.port}"
        self.server = uvicorn.Server(
            uvicorn.Config(build_app(config), log_level="warning", lifespan="off", timeout_graceful_shutdown=1)
        )
        config.stopping = lambda: self.server.should_exit
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            assert time.monotonic() < deadline, "the server did not start"
            time.sleep(0.02)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
        self.config.operator.close()
        self.sock.close()

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        auth: bool = True,
        headers: dict[str, str] | None = None,
        raw: bytes | None = None,
        timeout: float = 10,
    ) -> Reply:
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        sent = {"content-type": "application/json"} if data is not None else {}
        if auth:
            sent["authorization"] = f"Bearer {TOKEN}"
        sent.update(headers or {})
        req = urllib.request.Request(self.base + path, data=data, method=method, headers=sent)  # noqa: S310
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:  # noqa: S310 - a loopback URL
                return Reply(r.status, {k.lower(): v for k, v in r.headers.items()}, r.read())
        except urllib.error.HTTPError as e:
            return Reply(e.code, {k.lower(): v for k, v in e.headers.items()}, e.read())

    def get(self, path: str, **kwargs: Any) -> Reply:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, body: Any = None, **kwargs: Any) -> Reply:
        return self.request("POST", path, body if body is not None else {}, **kwargs)

    def wait_status(self, eid: str, status: str, timeout: float = 15) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            got = self.get(f"/api/executions/{eid}").json()
            if got["execution"]["status"] == status and not got["advancing"]:
                return got
            assert time.monotonic() < deadline, got["execution"]["status"]
            time.sleep(0.05)


@pytest.fixture(params=["file", "memory", "list"])
def store_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def target(store_kind: str, tmp_path: Path) -> Iterator[Target]:
    t = make_store(store_kind, tmp_path)
    yield t
    t.close()


@pytest.fixture
def recorder(target: Target) -> Iterator[Server]:
    """A server without an agent: it records answers only."""
    s = Server(ServeConfig(target, TOKEN, where=target.where, cookie="delite_serve_test"))
    yield s
    s.stop()


@pytest.fixture
def advancer(target: Target) -> Iterator[Server]:
    """A server with the application's agent: it advances executions after an answer."""
    agent = scenario_agent.build(target.factory_argument)
    s = Server(ServeConfig(target, TOKEN, agent=agent, where=target.where, cookie="delite_serve_test"))
    yield s
    s.stop()
    agent.close()
