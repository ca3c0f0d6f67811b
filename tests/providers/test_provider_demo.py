"""``delite demo`` with a key set uses a real provider (here the SDK, pointed at the fake server) and says so."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from fakellm import Call, FakeLLM, Script, Turn


def test_demo_uses_a_real_provider_when_a_key_is_set(fake: FakeLLM, tmp_path: Path) -> None:
    fake.load(
        Script(
            turns=[
                Turn(calls=[Call(name="charge", arguments={"order": 100, "amount": 10.0})]),
                Turn(calls=[Call(name="charge", arguments={"order": 101, "amount": 12.5})]),
                Turn(text="Charged 2 orders, $22.50 in total."),
            ]
        )
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "ANTHROPIC_", "DELITE_"))}
    env.update({"OPENAI_API_KEY": "test-key", "OPENAI_BASE_URL": fake.url + "/v1", "COLUMNS": "200"})
    out = subprocess.run(
        [sys.executable, "-m", "delite_cli", "demo", "--data-dir", str(tmp_path / "d"), "--steps", "2"],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=False,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "Model: openai:gpt-4o-mini (a real model: OPENAI_API_KEY is set" in out.stdout
    assert "SIGKILL sent to worker" in out.stdout
    assert "Answer: Charged 2 orders, $22.50 in total." in out.stdout
    assert "OK: every order charged exactly once." in out.stdout
    bodies = [r["body"] for r in fake.requests]
    assert all(b["parallel_tool_calls"] is False and b["model"] == "gpt-4o-mini" for b in bodies)
    assert "order 100: $10.00; order 101: $12.50" in bodies[0]["messages"][1]["content"]
