"""Redaction: the Agent's ``redact=`` and ``@tool(redact=...)`` take secrets out before anything is written.

Real runs with the scripted provider on real data directories: the bytes on disk, the export and the model's
next turn are checked; a resumed run goes on with the recorded (redacted) values and no drift is reported.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgspec
import pytest

from delite import Agent, DataDir, ScriptedProvider, Status, tool
from delite.errors import UsageError
from delite.providers import call
from delite.tools import REDACTED, redact_patterns

SSN = "123-45-6789"
KEY = "sk-abcdefghijklmnopqrstuvwxyz"
hide = redact_patterns(r"\b\d{3}-\d{2}-\d{4}\b", r"sk-[a-z]{20,}")


def _disk(data: Path) -> bytes:
    return b"".join(p.read_bytes() for p in data.rglob("*") if p.is_file())


def test_the_log_the_export_and_the_next_turn_hold_no_secret(tmp_path: Path) -> None:
    seen: dict[str, Any] = {}
    turns: list[list[dict[str, Any]]] = []

    @tool(redact=lambda args: {**args, "card": "[card]"} if isinstance(args, dict) else args)
    def pay(card: str, who: str) -> str:
        """Pay someone."""
        seen["card"], seen["who"] = card, who
        return f"paid {who}, receipt for {SSN}"

    def second(messages: list[dict[str, Any]]) -> str:
        turns.append(messages)
        return f"done; your key is {KEY}"

    script = [
        {
            "content": f"paying for {SSN}",
            "tool_calls": [{"name": "pay", "arguments": {"card": "4111 1111 1111 1111", "who": SSN}}],
        },
        second,
    ]
    data = tmp_path / "data"
    agent = Agent(data, provider=ScriptedProvider(script), tools=[pay], redact=hide)
    response = agent.run("pay my bill")
    assert response.status is Status.COMPLETED
    assert seen == {"card": "4111 1111 1111 1111", "who": SSN}  # the body got the arguments as the model sent them
    assert response.answer == f"done; your key is {REDACTED}"  # the answer is the recorded turn
    tool_message = next(m for m in turns[0] if m["role"] == "tool")
    assert SSN not in tool_message["content"] and REDACTED in tool_message["content"]  # the model sees the record
    agent.close()
    on_disk = _disk(data)
    for secret in (SSN.encode(), KEY.encode(), b"4111 1111 1111 1111"):
        assert secret not in on_disk
    export = msgspec.json.encode(DataDir(data).execution(response.execution_id).export())
    assert SSN.encode() not in export and b"[card]" in export


def test_a_resumed_run_uses_the_recorded_values_and_reports_no_drift(tmp_path: Path) -> None:
    got: list[str] = []

    @tool(requires_confirmation=True)
    def send(to: str) -> str:
        """Send a letter."""
        got.append(to)
        return f"sent to {to}"

    data = tmp_path / "data"
    script = [call("send", to=SSN), lambda m: "ok: " + m[-1]["content"]]
    first = Agent(data, provider=ScriptedProvider(script), tools=[send], redact=hide)
    waiting = first.run("send it")
    assert waiting.status.is_suspended
    first.close()
    assert SSN.encode() not in _disk(data)
    # another process (no redactor now: no drift) approves: the body gets the recorded, redacted value
    second = Agent(data, provider=ScriptedProvider(script), tools=[send])
    second.approve(waiting.execution_id, waiting.suspend_reason.confirmation_id)  # type: ignore[union-attr]
    done = second.resume(waiting.execution_id)
    assert done.status is Status.COMPLETED
    assert got == [REDACTED] and done.answer == f"ok: sent to {REDACTED}"
    second.close()


def test_a_redactor_that_is_not_a_function_is_refused(tmp_path: Path) -> None:
    with pytest.raises(UsageError):
        Agent(tmp_path / "data", provider=ScriptedProvider([]), redact="secret")  # type: ignore[arg-type]
    with pytest.raises(UsageError):
        tool(redact=42)  # type: ignore[call-overload]
    with pytest.raises(UsageError):
        redact_patterns("(")
    assert not (tmp_path / "data").exists()


@pytest.mark.parametrize("returned", [float("nan"), 42, b"bytes"])
def test_a_redactor_that_returns_no_text_for_the_models_text_is_a_usage_error(tmp_path: Path, returned: Any) -> None:
    # NaN was written as null: the model's text lost without a word; other values failed the writer's check.
    def broken(value: Any) -> Any:
        return returned if isinstance(value, str) and value == "the answer" else value

    agent = Agent(tmp_path, provider=ScriptedProvider(["the answer"]), redact=broken)
    with pytest.raises(UsageError, match="must return the model's text as a str"):
        agent.run("go", execution_id="e")
    records = DataDir(tmp_path).store.read("e").records
    assert [type(r).__name__ for r in records] == ["ExecutionStarted"]  # the turn was not recorded
