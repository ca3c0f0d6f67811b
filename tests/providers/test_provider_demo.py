"""``delite demo --model openai:...`` uses a real provider (the SDK, pointed at the fake server) and says so.

A key in the environment alone never makes the demo call a model; a stale key or no network ends it with
one line on stderr, not a traceback.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

from fakellm import Call, FakeLLM, Fault, Script, Turn


def run_demo(tmp_path: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "ANTHROPIC_", "DELITE_"))}
    return subprocess.run(
        [sys.executable, "-m", "delite_cli", "demo", "--data-dir", str(tmp_path / "d"), "--steps", "2", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**clean, "COLUMNS": "200", **env},
        check=False,
    )


def test_demo_uses_a_real_provider_when_asked(fake: FakeLLM, tmp_path: Path) -> None:
    fake.load(
        Script(
            turns=[
                Turn(calls=[Call(name="charge", arguments={"order": 100, "amount": 10.0})]),
                Turn(calls=[Call(name="charge", arguments={"order": 101, "amount": 12.5})]),
                Turn(text="Charged 2 orders, $22.50 in total."),
            ]
        )
    )
    env = {"OPENAI_API_KEY": "test-key", "OPENAI_BASE_URL": fake.url + "/v1"}
    out = run_demo(tmp_path, env, "--model", "openai:gpt-4o-mini")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "Model: openai:gpt-4o-mini (a real model, asked for with --model" in out.stdout
    assert "SIGKILL sent to worker" in out.stdout
    assert "Answer: Charged 2 orders, $22.50 in total." in out.stdout
    assert "OK: every order charged exactly once." in out.stdout
    bodies = [r["body"] for r in fake.requests]
    assert all(b["parallel_tool_calls"] is False and b["model"] == "gpt-4o-mini" for b in bodies)
    assert "order 100: $10.00; order 101: $12.50" in bodies[0]["messages"][1]["content"]


def test_a_key_in_the_environment_is_not_used_unless_asked(fake: FakeLLM, tmp_path: Path) -> None:
    env = {"OPENAI_API_KEY": "test-key", "OPENAI_BASE_URL": fake.url + "/v1"}
    out = run_demo(tmp_path, env)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "Model: the scripted model" in out.stdout
    assert fake.requests == []


def one_line_failure(out: subprocess.CompletedProcess[str]) -> str:
    assert out.returncode == 1, out.stdout + out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    assert "Traceback" not in out.stdout + out.stderr
    return lines[0]


def test_a_stale_key_ends_the_demo_with_one_line(fake: FakeLLM, tmp_path: Path) -> None:
    fault = Fault(kind="status", status=401, message="Incorrect API key provided", error_type="invalid_api_key")
    fake.load(Script(turns=[Turn(text="never", faults=[fault] * 10)]))
    env = {"OPENAI_API_KEY": "sk-stale", "OPENAI_BASE_URL": fake.url + "/v1"}
    line = one_line_failure(run_demo(tmp_path, env, "--model", "openai:gpt-4o-mini"))
    assert line.startswith("error: the worker failed before it could be killed: ") and "401" in line, line


def test_no_network_ends_the_demo_with_one_line(tmp_path: Path) -> None:
    with socket.socket() as s:  # a loopback port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {"OPENAI_API_KEY": "sk-test", "OPENAI_BASE_URL": f"http://127.0.0.1:{port}/v1"}
    line = one_line_failure(run_demo(tmp_path, env, "--model", "openai:gpt-4o-mini"))
    assert "connection" in line.lower(), line
