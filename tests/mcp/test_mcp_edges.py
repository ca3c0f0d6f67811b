"""MCP edges, against real servers: a connection lost mid-call, sessions shared between agents built per request,
client-side tools, servers that never answer, list_tools counted, hostile servers and names."""

from __future__ import annotations

import asyncio
import gc
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import SERVER, HttpServers
from mcp.server.mcpserver import MCPServer as AppServer
from mcp.types import Tool as WireTool
from servers import make_app

from delite import Agent, MCPServer, UsageError, tool
from delite.log.records import ExecutionFailed, MCPCatalogRecorded, ToolFinished, ToolStarted
from delite.mcp import MCPToolOptions
from delite.providers import ScriptedProvider, call


def _answer(messages: list[dict[str, Any]]) -> str:
    return f"result: {messages[-1]['content']}"


def _records(agent: Agent, eid: str) -> list[Any]:
    return list(agent.store.read(eid).records)


def _server_pids() -> list[int]:
    """This process's children that run the test server over stdio."""
    me = str(os.getpid())
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        ppid = stat.rsplit(")", 1)[1].split()[1]
        if ppid == me and SERVER.encode() in cmdline and b"stdio" in cmdline:
            pids.append(int(entry))
    return pids


def _kill_when_called(journal: Path, kill: Any) -> threading.Thread:
    """A thread that waits for the server to log the call, then kills the server under it."""

    def watch() -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if journal.exists() and journal.read_text().strip():
                kill()
                return
            time.sleep(0.05)

    t = threading.Thread(target=watch, daemon=True)
    t.start()
    return t


# -- a connection lost with the call in flight (no crash of ours) ---------------------------------------------


def test_a_call_lost_mid_flight_to_an_unsafe_tool_waits_for_an_operator(
    data_dir: Path, tmp_path: Path, http_servers: HttpServers
) -> None:
    journal = tmp_path / "journal"
    url, proc = http_servers.start(MCP_TEST_BLOCK="60", MCP_TEST_JOURNAL=str(journal))
    server = MCPServer("srv", url=url, connect_timeout=2.0, connect_attempts=1, call_timeout=30)
    provider = ScriptedProvider([call("srv__block_once", tag="t1"), _answer])
    watcher = _kill_when_called(journal, lambda: http_servers.stop(proc))
    try:
        with Agent(data_dir, provider=provider, tools=[server]) as agent:
            started = time.monotonic()
            r = agent.run("go")
            assert time.monotonic() - started < 20
            watcher.join(5)
            assert (r.status.value, r.suspend_reason and r.suspend_reason.kind) == ("suspended", "in_doubt"), r
            assert r.suspend_reason is not None
            (pending,) = r.suspend_reason.calls
            assert pending.name == "srv__block_once"
            assert "srv" in (pending.message or "") and "may or may not have acted" in (pending.message or "")
            records = _records(agent, r.execution_id)
            assert any(isinstance(x, ToolStarted) for x in records)
            assert not any(isinstance(x, ToolFinished) for x in records)  # no result: it is in doubt
            # the operator answers it; the model sees the operator's answer and the run ends
            done = agent.resolve(r.execution_id, pending.call_id, result="checked by hand: done")
            assert done.status.value == "completed"
            assert "checked by hand" in (done.answer or "")
    finally:
        server.close()
    assert len(journal.read_text().splitlines()) == 1  # never sent again


def test_a_call_lost_mid_flight_to_a_safe_tool_is_sent_again_on_a_new_session(data_dir: Path, tmp_path: Path) -> None:
    journal = tmp_path / "journal"
    server = MCPServer(
        "srv",
        command=[sys.executable, SERVER, "stdio"],
        env={"MCP_TEST_BLOCK": "1", "MCP_TEST_JOURNAL": str(journal)},
        stderr=tmp_path / "err",
        trusted=True,
    )
    provider = ScriptedProvider([call("srv__block", tag="t1"), _answer])

    def kill_server() -> None:
        for pid in _server_pids():
            os.kill(pid, signal.SIGKILL)

    try:
        with Agent(data_dir, provider=provider, tools=[server]) as agent:
            watcher = _kill_when_called(journal, kill_server)
            r = agent.run("go")
            watcher.join(5)
    finally:
        server.close()
    assert r.status.value == "completed", r
    assert "done t1" in (r.answer or "")
    lines = journal.read_text().splitlines()
    assert len(lines) == 2 and lines[0] == lines[1]  # the same call, the same idempotency key


# -- sessions: one per configuration, however many objects ---------------------------------------------------


def test_an_agent_built_per_request_does_not_pile_up_server_processes(data_dir: Path, tmp_path: Path) -> None:
    assert _server_pids() == []
    for i in range(4):  # a web app building its agent (and its MCPServer) for each request
        server = MCPServer("srv", command=[sys.executable, SERVER, "stdio"], stderr=tmp_path / "err")
        provider = ScriptedProvider([call("srv__add", a=i, b=1), _answer])
        with Agent(data_dir, provider=provider, tools=[server]) as agent:
            r = agent.run("go")
        assert r.status.value == "completed"
        assert f'"structuredContent":{{"result":{i + 1}}}' in (r.answer or "")
        del server, agent
        gc.collect()
        assert len(_server_pids()) == 1
    MCPServer("srv", command=[sys.executable, SERVER, "stdio"], stderr=tmp_path / "err").close()
    deadline = time.monotonic() + 10
    while _server_pids() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _server_pids() == []


def test_servers_configured_differently_get_their_own_sessions(data_dir: Path, tmp_path: Path) -> None:
    a = MCPServer("srv", command=[sys.executable, SERVER, "stdio"], env={"MCP_TEST_SECRET": "a"}, stderr=tmp_path / "e")
    b = MCPServer("srv", command=[sys.executable, SERVER, "stdio"], env={"MCP_TEST_SECRET": "b"}, stderr=tmp_path / "e")
    try:
        secrets = []
        for server in (a, b):
            provider = ScriptedProvider([call("srv__whoami"), _answer])
            with Agent(data_dir, provider=provider, tools=[server]) as agent:
                r = agent.run("go")
                finished = next(x for x in _records(agent, r.execution_id) if isinstance(x, ToolFinished))
            secrets.append(finished.result["structuredContent"]["secret"])
        assert secrets == ["a", "b"]
    finally:
        a.close()
        b.close()


# -- a tool the client runs ----------------------------------------------------------------------------------


def test_a_tool_marked_for_the_client_suspends_and_takes_the_clients_result(data_dir: Path) -> None:
    journal_app = make_app()
    server = MCPServer("srv", app=journal_app, options={"add": MCPToolOptions(target="client")})
    provider = ScriptedProvider([call("srv__add", a=1, b=2), _answer])
    with Agent(data_dir, provider=provider, tools=[server]) as agent:
        r = agent.run("go")
        assert r.status.value == "waiting_client_tool"
        assert r.suspend_reason is not None
        (pending,) = r.suspend_reason.calls
        assert pending.name == "srv__add"
        done = agent.submit_tool_results(r.execution_id, {pending.call_id: 42})
    assert done.status.value == "completed"
    assert "42" in (done.answer or "")
    with pytest.raises(UsageError):
        MCPToolOptions(target="elsewhere")  # type: ignore[arg-type]


# -- servers that never answer -------------------------------------------------------------------------------


class _Counting(AppServer[Any]):
    """A test server that counts its tools/list requests, and can hang on them or list a tool twice."""

    def __init__(self, *, hang: bool = False, duplicate: bool = False, bad_name: str | None = None) -> None:
        super().__init__("counting", version="9")
        self.lists = 0
        self.hang = hang
        self.duplicate = duplicate
        self.bad_name = bad_name

        @self.tool()
        def echo(text: str) -> str:
            """Echo."""
            return text

    async def list_tools(self) -> list[WireTool]:
        self.lists += 1
        if self.hang:
            await asyncio.sleep(3600)
        tools = await super().list_tools()
        if self.duplicate:
            tools = [*tools, *tools]
        if self.bad_name is not None:
            tools = [*tools, tools[0].model_copy(update={"name": self.bad_name})]
        return tools


def test_a_server_that_never_answers_the_handshake_fails_within_its_timeouts(data_dir: Path) -> None:
    silent = [sys.executable, "-c", "import time; time.sleep(120)"]
    server = MCPServer("mute", command=silent, connect_timeout=1.0, connect_attempts=2)
    provider = ScriptedProvider([call("mute__x"), _answer])
    try:
        with Agent(data_dir, provider=provider, tools=[server]) as agent:
            started = time.monotonic()
            with pytest.raises(Exception, match="mute") as caught:
                agent.run("go", execution_id="e-mute")
            assert time.monotonic() - started < 15
            failed = [x for x in _records(agent, "e-mute") if isinstance(x, ExecutionFailed)]
    finally:
        server.close()
    assert "unavailable" in str(caught.value)
    assert len(failed) == 1 and "mute" in str(failed[0])


def test_a_server_that_never_answers_list_tools_fails_within_its_timeout(data_dir: Path) -> None:
    app = _Counting(hang=True)
    server = MCPServer("slow", app=app, list_timeout=0.5, connect_attempts=2)
    provider = ScriptedProvider([call("slow__echo", text="x"), _answer])
    with Agent(data_dir, provider=provider, tools=[server]) as agent:
        started = time.monotonic()
        with pytest.raises(Exception, match="slow"):
            agent.run("go", execution_id="e-slow")
        assert time.monotonic() - started < 10
        failed = [x for x in _records(agent, "e-slow") if isinstance(x, ExecutionFailed)]
    assert len(failed) == 1 and "could not list" in str(failed[0])
    app.hang = False
    with Agent(data_dir, provider=provider, tools=[server]) as agent:
        r = agent.resume("e-slow")
    assert r.status.value == "completed"


def test_a_server_that_never_answers_a_call_is_a_recorded_error_within_the_timeout(
    data_dir: Path, tmp_path: Path
) -> None:
    server = MCPServer(
        "srv",
        command=[sys.executable, SERVER, "stdio"],
        env={"MCP_TEST_BLOCK": "3600"},
        stderr=tmp_path / "err",
        call_timeout=1.0,
    )
    provider = ScriptedProvider([call("srv__block_once", tag="x"), _answer])
    try:
        with Agent(data_dir, provider=provider, tools=[server]) as agent:
            started = time.monotonic()
            r = agent.run("go")
            assert time.monotonic() - started < 15
            finished = next(x for x in _records(agent, r.execution_id) if isinstance(x, ToolFinished))
    finally:
        server.close()
    assert r.status.value == "completed"
    assert finished.error is not None and "timed out" in finished.error and "'srv'" in finished.error


# -- the catalog: listed once, never during replay -----------------------------------------------------------


def test_the_catalog_is_listed_once_and_never_during_replay(data_dir: Path) -> None:
    app = _Counting()

    @tool(requires_confirmation=True)
    def publish(text: str) -> str:
        """Publish a text."""
        return f"published {text}"

    provider = ScriptedProvider([call("srv__echo", text="hi"), call("publish", text="hi"), _answer])
    with Agent(data_dir, provider=provider, tools=[MCPServer("srv", app=app), publish]) as agent:
        r = agent.run("go")
    assert r.status.value == "waiting_approval"
    assert app.lists == 1
    # another agent, another MCPServer object, the approval answered: replay rebuilds the tools from the log
    with Agent(data_dir, provider=provider, tools=[MCPServer("srv", app=app), publish]) as agent:
        done = agent.submit_approval(r.execution_id, approved=True)
        catalogs = [x for x in _records(agent, r.execution_id) if isinstance(x, MCPCatalogRecorded)]
    assert done.status.value == "completed"
    assert app.lists == 1
    assert len(catalogs) == 1
    assert (catalogs[0].server_name, catalogs[0].server_version) == ("counting", "9")


# -- hostile servers and names -------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["a b", "", "x" * 200, "tab\there", "dot.ted"])
def test_a_server_tool_name_no_model_can_call_is_a_usage_error_naming_it(data_dir: Path, name: str) -> None:
    server = MCPServer("srv", app=_Counting(bad_name=name))
    provider = ScriptedProvider([call("srv__echo", text="x"), _answer])
    with Agent(data_dir, provider=provider, tools=[server]) as agent, pytest.raises(UsageError, match="tools="):
        agent.run("go", execution_id="e-bad")
        # nothing poisoned: left out with tools=, the same execution id runs
    keep = MCPServer("srv", app=_Counting(bad_name=name), tools=["echo"])
    with Agent(data_dir, provider=provider, tools=[keep]) as agent:
        r = agent.run("go", execution_id="e-bad")
    assert r.status.value == "completed"


def test_a_server_listing_a_tool_twice_is_a_usage_error(data_dir: Path) -> None:
    server = MCPServer("srv", app=_Counting(duplicate=True))
    provider = ScriptedProvider([call("srv__echo", text="x"), _answer])
    with Agent(data_dir, provider=provider, tools=[server]) as agent, pytest.raises(UsageError, match="echo"):
        agent.run("go")


@pytest.mark.parametrize("name", ["a__b", "", "has space", "dot.ted", "a/b", "é", "x\n", "x" * 40])
def test_bad_server_names_are_usage_errors(name: str) -> None:
    with pytest.raises(UsageError):
        MCPServer(name, app=make_app())


def test_two_servers_with_one_name_are_a_usage_error(data_dir: Path) -> None:
    with pytest.raises(UsageError, match="'s'"):
        Agent(data_dir, provider=ScriptedProvider([_answer]), tools=[MCPServer("s", app=make_app())] * 2)


def test_async_api_a_call_lost_mid_flight_waits_for_an_operator(
    data_dir: Path, tmp_path: Path, http_servers: HttpServers
) -> None:
    journal = tmp_path / "journal"
    url, proc = http_servers.start(MCP_TEST_BLOCK="60", MCP_TEST_JOURNAL=str(journal))
    server = MCPServer("srv", url=url, connect_timeout=2.0, connect_attempts=1)
    provider = ScriptedProvider([call("srv__block_once", tag="t1"), _answer])

    async def main() -> Any:
        async with Agent(data_dir, provider=provider, tools=[server]) as agent:
            return await agent.arun("go")

    watcher = _kill_when_called(journal, lambda: http_servers.stop(proc))
    try:
        r = asyncio.run(main())
        watcher.join(5)
    finally:
        server.close()
    assert r.suspend_reason is not None and r.suspend_reason.kind == "in_doubt"


def test_streamable_http_auth_signs_every_request(data_dir: Path, http_servers: HttpServers) -> None:
    import httpx2

    seen: list[str] = []

    class Bearer(httpx2.Auth):
        def auth_flow(self, request: httpx2.Request) -> Any:
            request.headers["Authorization"] = "Bearer secret"
            seen.append(request.method)
            yield request

    url, _ = http_servers.start()
    server = MCPServer("srv", url=url, auth=Bearer(), headers={"X-Tenant": "t1"})
    provider = ScriptedProvider([call("srv__add", a=1, b=1), _answer])
    try:
        with Agent(data_dir, provider=provider, tools=[server]) as agent:
            r = agent.run("go")
    finally:
        server.close()
    assert r.status.value == "completed"
    assert '"structuredContent":{"result":2}' in (r.answer or "")
    assert seen.count("POST") >= 3  # initialize, tools/list, tools/call at least


def test_results_and_catalogs_over_the_record_limit(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import delite._mcp._server as mcp_server
    import delite.engine._turns as turns

    limit = 200_000  # the real limit (64 MiB) lowered, so the test stays small
    monkeypatch.setattr(turns, "MAX_RECORD_SIZE", limit)
    monkeypatch.setattr(mcp_server, "MAX_RECORD_SIZE", limit)
    app = AppServer[Any]("big")

    @app.tool()
    def big() -> str:
        """A huge answer."""
        return "x" * (2 * limit)

    @app.tool(description="y" * (2 * limit))
    def wordy() -> str:
        return "ok"

    provider = ScriptedProvider([call("srv__big"), _answer])
    with (
        Agent(data_dir, provider=provider, tools=[MCPServer("srv", app=app)]) as agent,
        pytest.raises(UsageError, match="over the limit"),
    ):
        agent.run("go", execution_id="e-big")
    with Agent(data_dir, provider=provider, tools=[MCPServer("srv", app=app, tools=["big"])]) as agent:
        r = agent.run("go", execution_id="e-big")  # nothing poisoned: the same id runs once the tool is left out
        finished = next(x for x in _records(agent, r.execution_id) if isinstance(x, ToolFinished))
    assert r.status.value == "completed"
    assert finished.result is None and finished.error is not None and "over the limit" in finished.error


_MALFORMED_SERVER = r"""
import json, sys
def send(obj):
    sys.stdout.write(json.dumps(obj) + "\n"); sys.stdout.flush()
journal = sys.argv[1]
for line in sys.stdin:
    msg = json.loads(line)
    method, rid = msg.get("method"), msg.get("id")
    if method == "initialize":
        info = {"name": "odd", "version": "1"}
        send({"jsonrpc": "2.0", "id": rid, "result": {"protocolVersion": msg["params"]["protocolVersion"],
              "capabilities": {"tools": {}}, "serverInfo": info}})
    elif method == "tools/list":
        send({"jsonrpc": "2.0", "id": rid, "result": {"tools": [{"name": "odd", "inputSchema": {"type": "object"}}]}})
    elif method == "tools/call":
        with open(journal, "a") as f:
            f.write("called\n")
        send({"jsonrpc": "2.0", "id": rid, "result": {"content": [{"type": "hologram", "data": 1}]}})
    elif rid is not None:
        send({"jsonrpc": "2.0", "id": rid, "result": {}})
"""


def test_an_answer_that_is_not_valid_mcp_is_a_recorded_error_not_a_lost_connection(
    data_dir: Path, tmp_path: Path
) -> None:
    # The client refuses the answer (content of an unknown type): it arrived over a live connection, so the call is
    # finished with an error the model sees; it was reported as a connection lost mid-call and left in doubt.
    script, journal = tmp_path / "odd_server.py", tmp_path / "journal.txt"
    script.write_text(_MALFORMED_SERVER)
    server = MCPServer("odd", command=[sys.executable, str(script), str(journal)], connect_attempts=1)
    try:
        with Agent(data_dir, provider=ScriptedProvider([call("odd__odd"), _answer]), tools=[server]) as agent:
            r = agent.run("go", execution_id="e-odd")
            finished = [x for x in _records(agent, "e-odd") if isinstance(x, ToolFinished)]
    finally:
        server.close()
    assert r.status.value == "completed", r
    assert len(finished) == 1 and finished[0].error is not None and "not valid MCP" in finished[0].error
    assert "connection was lost" not in finished[0].error
    assert journal.read_text() == "called\n"  # sent once
