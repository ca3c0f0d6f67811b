"""Redaction reaches telemetry: with content capture on, no span attribute or event holds what was redacted."""

from __future__ import annotations

from pathlib import Path

from conftest import make_otel

from delite import Agent, ScriptedProvider, telemetry, tool
from delite.providers import call
from delite.tools import REDACTED, redact_patterns

SSN = "123-45-6789"


@tool
def lookup(person: str) -> str:
    """Look a person up."""
    return f"{person} has SSN {SSN}"


def test_captured_content_is_the_redacted_content(tmp_path: Path) -> None:
    otel = make_otel(capture_content=True)
    try:
        script = [call("lookup", person=f"Ann {SSN}"), f"Ann's SSN is {SSN}."]
        agent = Agent(
            tmp_path / "data",
            provider=ScriptedProvider(script),
            tools=[lookup],
            redact=redact_patterns(r"\b\d{3}-\d{2}-\d{4}\b"),
        )
        response = agent.run("find Ann")
        agent.close()
    finally:
        telemetry.uninstrument()
    assert response.answer == f"Ann's SSN is {REDACTED}."
    spans = otel.spans()
    assert spans
    dumped = " ".join(f"{s.attributes!r} {[(e.name, dict(e.attributes or {})) for e in s.events]!r}" for s in spans)
    assert REDACTED in dumped  # content was captured...
    assert SSN not in dumped  # ...and it is the recorded, redacted content
