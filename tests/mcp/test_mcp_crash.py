"""A SIGKILL in the middle of an MCP call, then a resume in a new process against a restarted server."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import HttpServers, Recording

from delite import Agent, DriftError, MCPServer
from delite.log.records import DriftAccepted, MCPCatalogRecorded, ToolFinished, ToolStarted
from delite.providers import call

WORKER = str(Path(__file__).with_name("worker.py"))
EID = "mcp-crash"


def _journal(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def _crash_during_call(data_dir: Path, journal: Path, servers: HttpServers, *, tool: str, trusted: bool) -> None:
    """Start the run in a worker, SIGKILL it while the server holds the call, then stop that server too."""
    url, server = servers.start(MCP_TEST_BLOCK="60", MCP_TEST_JOURNAL=str(journal))
    spec = {"url": url, "trusted": trusted, "tool": tool}
    proc = subprocess.Popen(
        [sys.executable, WORKER, "run", str(data_dir), EID, json.dumps(spec)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 30
        while not _journal(journal):
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "the call never reached the server"
            time.sleep(0.05)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.communicate(timeout=10)
    servers.stop(server)


def _worker(mode: str, data_dir: Path, spec: dict[str, Any]) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, WORKER, mode, str(data_dir), EID, json.dumps(spec)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def _records(data_dir: Path) -> list[Any]:
    with Agent(data_dir) as agent:
        return list(agent.store.read(EID).records)


def test_trusted_idempotent_call_is_sent_again_with_the_same_key(
    data_dir: Path, tmp_path: Path, http_servers: HttpServers
) -> None:
    journal = tmp_path / "journal"
    _crash_during_call(data_dir, journal, http_servers, tool="block", trusted=True)
    started = [r for r in _records(data_dir) if isinstance(r, ToolStarted)]
    assert [(s.call_id, s.attempt) for s in started] == [("c1.0", 1)]  # the intent is durable, no result
    url, _ = http_servers.start(MCP_TEST_JOURNAL=str(journal))  # restarted, on another port
    done = _worker("resume", data_dir, {"url": url, "trusted": True})
    assert done["status"] == "completed"
    assert "done t1" in done["answer"]
    key = f"{EID}:c1.0"
    assert _journal(journal) == [f"block t1 {key}", f"block t1 {key}"]
    records = _records(data_dir)
    assert [(s.call_id, s.attempt) for s in records if isinstance(s, ToolStarted)] == [("c1.0", 1), ("c1.0", 2)]
    assert sum(isinstance(r, MCPCatalogRecorded) for r in records) == 1


def test_untrusted_or_destructive_call_waits_for_an_operator(
    data_dir: Path, tmp_path: Path, http_servers: HttpServers
) -> None:
    journal = tmp_path / "journal"
    _crash_during_call(data_dir, journal, http_servers, tool="block_once", trusted=True)
    url, _ = http_servers.start(MCP_TEST_JOURNAL=str(journal))
    waiting = _worker("resume", data_dir, {"url": url, "trusted": True, "tool": "block_once"})
    assert (waiting["status"], waiting["kind"]) == ("suspended", "in_doubt")
    assert len(_journal(journal)) == 1  # not sent again
    server = MCPServer("srv", url=url, trusted=True)
    try:
        with Agent(data_dir, provider=Recording([call("srv__block_once", tag="t1"), "ok"]), tools=[server]) as agent:
            r = agent.resolve(EID, "c1.0", rerun=True)
            assert r.status.value == "completed"
    finally:
        server.close()
    assert len(_journal(journal)) == 2


@pytest.mark.parametrize("variant", ["2", "3"], ids=["schema-changed", "tool-vanished"])
def test_catalog_changed_between_crash_and_resume_goes_through_the_drift_policy(
    data_dir: Path, tmp_path: Path, http_servers: HttpServers, variant: str
) -> None:
    journal = tmp_path / "journal"
    _crash_during_call(data_dir, journal, http_servers, tool="block", trusted=True)
    url, _ = http_servers.start(MCP_TEST_JOURNAL=str(journal), MCP_TEST_VARIANT=variant)
    server = MCPServer("srv", url=url, trusted=True)
    try:
        agent = Agent(data_dir, provider=Recording(["unused"]), tools=[server])
        with agent, pytest.raises(DriftError, match="MCP server 'srv' tool 'block'"):
            agent.resume(EID)
        assert len(_journal(journal)) == 1
        provider = Recording([call("srv__block", tag="t1"), "finished anyway"])
        with Agent(data_dir, provider=provider, tools=[server], on_drift="allow") as agent:
            r = agent.resume(EID)
            assert r.status.value == "completed"
    finally:
        server.close()
    records = _records(data_dir)
    drift = [r for r in records if isinstance(r, DriftAccepted)]
    assert len(drift) == 1 and drift[0].changes[0][0] == "MCP server 'srv' tool 'block'"
    # the model was still offered the recorded catalog: block as it was when the execution started
    block = next(t for t in provider.offered[0] if t["name"] == "srv__block")
    assert block["parameters"]["required"] == ["tag"]
    finished = next(r for r in records if isinstance(r, ToolFinished))
    assert finished.error is not None or finished.result["isError"] is True  # the server refused the old call
