"""MCP servers as tool sources, against real servers: in memory, a stdio subprocess, Streamable HTTP on loopback."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import SERVER, HttpServers, Recording, free_port
from servers import make_app

from delite import Agent, DriftError, MCPServer, ToolError, UsageError
from delite.log.records import DriftAccepted, ExecutionFailed, MCPCatalogRecorded, ToolFinished, ToolStarted
from delite.mcp import MCPToolOptions
from delite.providers import ScriptedProvider, call


def _answer(messages: list[dict[str, Any]]) -> str:
    return f"result: {messages[-1]['content']}"


def _records(agent: Agent, eid: str) -> list[Any]:
    return list(agent.store.read(eid).records)


def _names(tools: list[dict[str, Any]]) -> list[str]:
    return [t["name"] for t in tools]


def test_in_memory_call_is_a_recorded_step_with_the_key_in_meta(data_dir: Path) -> None:
    provider = Recording([call("srv__whoami"), call("srv__add", a=2, b=3), _answer])
    server = MCPServer("srv", app=make_app())
    with Agent(data_dir, provider=provider, tools=[server]) as agent:
        r = agent.run("go")
        assert r.status.value == "completed"
        records = _records(agent, r.execution_id)
    catalogs = [x for x in records if isinstance(x, MCPCatalogRecorded)]
    assert len(catalogs) == 1
    catalog = catalogs[0]
    assert (catalog.server, catalog.server_name, catalog.server_version) == ("srv", "test-server", "1.1")
    assert catalog.protocol_version
    add = next(t for t in catalog.tools if t.name == "add")
    assert add.annotations == {"readOnlyHint": True}
    assert add.input_schema["required"] == ["a", "b"]
    # the model is offered the recorded catalog, named server__tool
    assert set(_names(provider.offered[0])) >= {"srv__add", "srv__whoami", "srv__block", "srv__block_once"}
    kinds = [type(x).__name__ for x in records]
    assert kinds.index("MCPCatalogRecorded") < kinds.index("ModelResponded")
    started = [x for x in records if isinstance(x, ToolStarted)]
    finished = [x for x in records if isinstance(x, ToolFinished)]
    assert [s.call_id for s in started] == [f.call_id for f in finished] == ["c1.0", "c2.0"]
    who = finished[0].result
    assert who["isError"] is False
    assert who["structuredContent"]["key"] == started[0].idempotency_key == f"{r.execution_id}:c1.0"
    assert finished[1].result["structuredContent"] == {"result": 5}
    assert finished[1].result["content"] == [{"type": "text", "text": "5"}]


def test_a_tool_error_is_stored_as_the_server_gave_it(data_dir: Path) -> None:
    provider = ScriptedProvider([call("srv__fail", reason="no way"), _answer])
    with Agent(data_dir, provider=provider, tools=[MCPServer("srv", app=make_app())]) as agent:
        r = agent.run("go")
        finished = next(x for x in _records(agent, r.execution_id) if isinstance(x, ToolFinished))
    assert finished.error is None
    assert finished.result["isError"] is True
    assert "no way" in finished.result["content"][0]["text"]


def test_async_api_awaits_the_call(data_dir: Path) -> None:
    async def main() -> Any:
        provider = ScriptedProvider([call("srv__add", a=20, b=22), _answer])
        async with Agent(data_dir, provider=provider, tools=[MCPServer("srv", app=make_app())]) as agent:
            return await agent.arun("go")

    r = asyncio.run(main())
    assert r.status.value == "completed"
    assert '"structuredContent":{"result":42}' in r.answer


def test_filter_and_options(data_dir: Path) -> None:
    provider = Recording([call("srv__add", a=1, b=1), _answer])
    server = MCPServer(
        "srv",
        app=make_app(),
        tools=["add", "whoami"],
        options={"add": MCPToolOptions(requires_confirmation=True)},
    )
    with Agent(data_dir, provider=provider, tools=[server]) as agent:
        r = agent.run("go")
        assert r.is_suspended and r.suspend_reason is not None
        assert r.suspend_reason.kind == "approval"
        assert [c.name for c in r.suspend_reason.calls] == ["srv__add"]
        assert sorted(_names(provider.offered[0])) == ["ask_human", "srv__add", "srv__whoami"]
        r = agent.submit_approval(r.execution_id, approved=True)
        assert r.status.value == "completed"
        catalog = next(x for x in _records(agent, r.execution_id) if isinstance(x, MCPCatalogRecorded))
    assert sorted(t.name for t in catalog.tools) == ["add", "whoami"]


def test_the_catalog_is_recorded_once_and_offered_as_recorded_on_resume(data_dir: Path) -> None:
    # Started against one version of the server; resumed against another that dropped a tool: the model is
    # still offered the recorded catalog, and nothing is recorded again.
    first = Recording([call("srv__add", a=1, b=2), _answer])
    server = MCPServer("srv", app=make_app(), requires_confirmation=True)
    with Agent(data_dir, provider=first, tools=[server]) as agent:
        r = agent.run("go")
        assert r.is_suspended
    second = Recording([call("srv__add", a=1, b=2), _answer])
    with Agent(
        data_dir, provider=second, tools=[MCPServer("srv", app=make_app(variant="3"), requires_confirmation=True)]
    ) as agent:
        r = agent.submit_approval(r.execution_id, approved=True)
        assert r.status.value == "completed"
        records = _records(agent, r.execution_id)
    assert sum(isinstance(x, MCPCatalogRecorded) for x in records) == 1
    assert "srv__block" in _names(second.offered[0])
    assert _names(second.offered[0]) == _names(first.offered[0])


def test_stdio_server_gets_an_explicit_environment_and_stderr_goes_to_a_file(
    data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MCP_TEST_PARENT_ONLY", "leak")
    stderr = tmp_path / "server.err"
    server = MCPServer("srv", command=[sys.executable, SERVER, "stdio"], env={"MCP_TEST_SECRET": "s3"}, stderr=stderr)
    provider = ScriptedProvider([call("srv__whoami"), _answer])
    try:
        with Agent(data_dir, provider=provider, tools=[server]) as agent:
            r = agent.run("go")
            finished = next(x for x in _records(agent, r.execution_id) if isinstance(x, ToolFinished))
    finally:
        server.close()
    assert r.status.value == "completed"
    who = finished.result["structuredContent"]
    assert who == {"key": f"{r.execution_id}:c1.0", "secret": "s3", "leaked": ""}
    assert "test server starting" in stderr.read_text()


def test_streamable_http_with_headers(data_dir: Path, http_servers: HttpServers) -> None:
    url, _ = http_servers.start()
    server = MCPServer("srv", url=url, headers={"Authorization": "Bearer t"})
    provider = ScriptedProvider([call("srv__add", a=2, b=2), _answer])
    try:
        with Agent(data_dir, provider=provider, tools=[server]) as agent:
            r = agent.run("go")
    finally:
        server.close()
    assert r.status.value == "completed"
    assert '"structuredContent":{"result":4}' in r.answer


def test_a_server_that_is_down_is_a_recorded_failure_then_resumes(data_dir: Path, http_servers: HttpServers) -> None:
    port = free_port()
    server = MCPServer("srv", url=f"http://127.0.0.1:{port}/mcp", connect_timeout=2.0, connect_attempts=2)
    provider = ScriptedProvider([call("srv__add", a=1, b=2), _answer])
    try:
        with Agent(data_dir, provider=provider, tools=[server]) as agent:
            with pytest.raises(ToolError, match="MCP server 'srv'"):
                agent.run("go", execution_id="down-then-up")
            failed = [x for x in _records(agent, "down-then-up") if isinstance(x, ExecutionFailed)]
            assert len(failed) == 1 and "srv" in failed[0].message
            http_servers.start(port)
            r = agent.resume("down-then-up")
            assert r.status.value == "completed"
    finally:
        server.close()


def test_a_call_that_times_out_is_a_recorded_error(data_dir: Path) -> None:
    server = MCPServer("srv", app=make_app(delay=5.0), options={"block_once": MCPToolOptions(timeout=0.5)})
    provider = ScriptedProvider([call("srv__block_once", tag="x"), _answer])
    with Agent(data_dir, provider=provider, tools=[server]) as agent:
        r = agent.run("go")
        finished = next(x for x in _records(agent, r.execution_id) if isinstance(x, ToolFinished))
    assert r.status.value == "completed"
    assert finished.error is not None and "timed out" in finished.error and "may or may not" in finished.error


def test_bad_configuration_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="exactly one"):
        MCPServer("srv")
    with pytest.raises(UsageError, match="exactly one"):
        MCPServer("srv", command=["x"], url="http://127.0.0.1:1/mcp")
    with pytest.raises(UsageError, match="without '__'"):
        MCPServer("a__b", url="http://127.0.0.1:1/mcp")
    with pytest.raises(UsageError, match="list of strings"):
        MCPServer("srv", command="python server.py")
    with pytest.raises(UsageError, match="stdio"):
        MCPServer("srv", url="http://127.0.0.1:1/mcp", env={"A": "b"})
    with pytest.raises(UsageError, match="seconds"):
        MCPServer("srv", url="http://127.0.0.1:1/mcp", call_timeout=0)
    with pytest.raises(UsageError, match="seconds"):
        MCPToolOptions(timeout=-1)


def test_a_tool_name_taken_by_a_local_tool_is_refused(data_dir: Path) -> None:
    def srv__add(a: int, b: int) -> int:
        return a + b

    provider = ScriptedProvider(["hi"])
    agent = Agent(data_dir, provider=provider, tools=[srv__add, MCPServer("srv", app=make_app())])
    with agent, pytest.raises(UsageError, match="srv__add"):
        agent.run("go")


def test_importing_delite_does_not_import_mcp() -> None:
    code = "import sys, delite, delite.mcp; delite.MCPServer; assert 'mcp' not in sys.modules, 'mcp imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_approval_answered_from_another_process(data_dir: Path, tmp_path: Path) -> None:
    spec = {"command": [sys.executable, SERVER, "stdio"], "requires_confirmation": True, "tool": "add"}
    worker = str(Path(__file__).with_name("worker.py"))
    server = MCPServer("srv", command=spec["command"], requires_confirmation=True)
    provider = ScriptedProvider([call("srv__add", a=3, b=4), _answer])
    try:
        with Agent(data_dir, provider=provider, tools=[server]) as agent:
            r = agent.run("go", execution_id="approve-elsewhere")
            assert r.is_suspended and r.suspend_reason is not None and r.suspend_reason.kind == "approval"
    finally:
        server.close()
    out = subprocess.run(
        [sys.executable, worker, "approve", str(data_dir), "approve-elsewhere", json.dumps(spec)],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    )
    done = json.loads(out.stdout.strip().splitlines()[-1])
    assert done["status"] == "completed"
    assert '"structuredContent":{"result":7}' in done["answer"]


def test_under_the_runtime(data_dir: Path) -> None:
    from delite import Runtime

    with Runtime(data_dir) as rt:
        agent = Agent(
            data_dir,
            runtime=rt,
            provider=ScriptedProvider([call("srv__add", a=5, b=6), _answer]),
            tools=[MCPServer("srv", app=make_app())],
        )
        eid = rt.go(agent, "go")
        r = rt.wait(eid, timeout=30)
    assert r.status.value == "completed"
    assert '"structuredContent":{"result":11}' in r.answer


def test_parallel_calls_of_one_turn_share_the_session(data_dir: Path) -> None:
    turn = {"tool_calls": [{"name": "srv__add", "arguments": {"a": i, "b": 1}} for i in range(4)]}
    server = MCPServer("srv", app=make_app())
    with Agent(data_dir, provider=ScriptedProvider([turn, "done"]), tools=[server]) as agent:
        r = agent.run("go")
        finished = [x for x in _records(agent, r.execution_id) if isinstance(x, ToolFinished)]
    assert r.status.value == "completed"
    assert sorted(f.result["structuredContent"]["result"] for f in finished) == [1, 2, 3, 4]


def test_the_callers_trace_context_travels_in_meta(data_dir: Path) -> None:
    from opentelemetry import context, trace
    from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

    parent = SpanContext(trace_id=0x1234, span_id=0x5678, is_remote=False, trace_flags=TraceFlags(1))
    token = context.attach(trace.set_span_in_context(NonRecordingSpan(parent)))
    server = MCPServer("srv", command=[sys.executable, SERVER, "stdio"])
    try:
        with Agent(data_dir, provider=ScriptedProvider([call("srv__trace"), _answer]), tools=[server]) as agent:
            r = agent.run("go")
            finished = next(x for x in _records(agent, r.execution_id) if isinstance(x, ToolFinished))
    finally:
        context.detach(token)
        server.close()
    assert finished.result["content"][0]["text"].startswith(f"00-{0x1234:032x}-")


def test_an_approved_call_whose_tool_changed_goes_through_the_drift_policy(data_dir: Path) -> None:
    provider = ScriptedProvider([call("srv__block", tag="t"), _answer])
    with Agent(data_dir, provider=provider, tools=[MCPServer("srv", app=make_app(), requires_confirmation=True)]) as a:
        r = a.run("go")
        assert r.is_suspended
    changed = MCPServer("srv", app=make_app(variant="2"), requires_confirmation=True)
    with Agent(data_dir, provider=provider, tools=[changed]) as agent:
        with pytest.raises(DriftError, match="MCP server 'srv' tool 'block'"):
            agent.submit_approval(r.execution_id, approved=True)
        assert agent.get(r.execution_id).suspend_reason is not None  # nothing was recorded
    with Agent(data_dir, provider=provider, tools=[changed], on_drift="warn") as agent:
        with pytest.warns(RuntimeWarning, match="MCP server 'srv' tool 'block'"):
            done = agent.submit_approval(r.execution_id, approved=True)
        records = _records(agent, r.execution_id)
    assert done.status.value == "completed"
    assert [x.policy for x in records if isinstance(x, DriftAccepted)] == ["warn"]
    finished = next(x for x in records if isinstance(x, ToolFinished))
    assert finished.result["isError"] is True  # the server refused the call made against the recorded schema
