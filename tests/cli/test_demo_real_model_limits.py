"""A real model in the demo has a bounded wait: a model that never answers fails the demo, it does not hang it."""

from __future__ import annotations

from pathlib import Path

import pytest

from delite.providers._sdk import SDKProvider
from delite_cli import demo


@pytest.mark.parametrize("recipe", ["openai:gpt-4o-mini", "anthropic:claude-haiku-4-5", "openai-responses:gpt-5-mini"])
def test_the_demos_real_model_times_out_and_retries_little(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, recipe: str
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-test")
    agent = demo.build_agent(str(tmp_path / "data"), 4, recipe)
    provider = agent.provider
    assert isinstance(provider, SDKProvider)
    read, connect = provider._options["timeout"]
    assert read is not None and read <= 30 and connect <= 30
    assert agent.retry.max_attempts <= 2
    # The demo gives up on a silent model once the worker's own attempts are used up, not minutes later.
    assert read * agent.retry.max_attempts <= demo.FIRST_STEP_DEADLINE
    assert demo.FIRST_STEP_DEADLINE <= 120


def test_the_scripted_demo_is_unchanged(tmp_path: Path) -> None:
    agent = demo.build_agent(str(tmp_path / "data"), 4)
    assert type(agent.provider).__name__ == "ScriptedProvider"
