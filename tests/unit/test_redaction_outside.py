"""Redaction of tool results given from outside: a client tool's result and an operator's settlement.

``submit_tool_results`` and ``resolve`` write a result the process did not produce; the tool's and the agent's
redactors apply to it before the record is written, as to a result of a tool run here: the bytes on disk, the
export and the model's next turn hold no secret. The same through a :class:`~delite.Runtime`, through a parent
answering its sub-agent's call, and through the ``delite`` command with ``--agent``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import msgspec
import pytest

from delite import Agent, Clarification, DataDir, Runtime, ScriptedProvider, Status, delegate, tool
from delite.providers import call
from delite.tools import REDACTED, redact_patterns

SSN = "123-45-6789"
KEY = "sk-abcdefghijklmnopqrstuvwxyz"
hide = redact_patterns(r"\b\d{3}-\d{2}-\d{4}\b")


def _disk(data: Path) -> bytes:
    return b"".join(p.read_bytes() for p in data.rglob("*") if p.is_file())


def _tool_messages(messages: list[dict[str, Any]]) -> str:
    return " | ".join(str(m["content"]) for m in messages if m["role"] == "tool")


def _client_agent(data: Path, turns: list[str], *, redact: Any = hide) -> Agent:
    @tool(target="client", redact=redact_patterns(r"sk-[a-z]{20,}", replacement="[key]"))
    def read_cell(cell: str) -> str:
        """The user's spreadsheet."""
        raise AssertionError

    def second(messages: list[dict[str, Any]]) -> str:
        text = _tool_messages(messages)
        turns.append(text)
        return "seen: " + text

    provider = ScriptedProvider([call("read_cell", cell="B2"), second])
    return Agent(data, provider=provider, tools=[read_cell], redact=redact)


def test_a_client_tools_result_is_redacted_by_the_tool_and_the_agent(tmp_path: Path) -> None:
    data = tmp_path / "data"
    turns: list[str] = []
    agent = _client_agent(data, turns)
    r = agent.run("read it", execution_id="c")
    assert r.suspend_reason is not None and r.suspend_reason.kind == "client_tool"
    done = agent.submit_tool_results("c", {"c1.0": {"value": f"{SSN} {KEY}"}})
    assert done.status is Status.COMPLETED
    assert SSN not in turns[0] and KEY not in turns[0] and REDACTED in turns[0] and "[key]" in turns[0]
    agent.close()
    on_disk = _disk(data)
    assert SSN.encode() not in on_disk and KEY.encode() not in on_disk
    export = msgspec.json.encode(DataDir(data).execution("c").export())
    assert SSN.encode() not in export and b"[key]" in export


def test_an_operators_result_and_error_are_redacted(tmp_path: Path) -> None:
    class Died(BaseException):
        """A process dying inside the tool body."""

    dying = [True]

    @tool(retry_in_doubt=False)
    def pay(who: str) -> str:
        """Pay; not safe to retry blindly."""
        if dying:
            dying.pop()
            raise Died
        return "paid"

    data = tmp_path / "data"
    for eid, settle in (
        ("ok", {"result": {"receipt": f"paid {SSN}"}}),
        ("failed", {"error": f"card of {SSN} declined"}),
    ):
        dying[:] = [True]
        agent = Agent(data, provider=ScriptedProvider([call("pay", who="x"), _tool_messages]), tools=[pay], redact=hide)
        with pytest.raises(Died):
            agent.run("pay", execution_id=eid)
        assert agent.resume(eid).suspend_reason is not None
        done = agent.resolve(eid, "c1.0", **settle)
        assert done.status is Status.COMPLETED and SSN not in (done.answer or "") and REDACTED in (done.answer or "")
        agent.close()
    assert SSN.encode() not in _disk(data)


def test_through_a_runtime_and_through_a_parent_the_childs_agent_redacts(tmp_path: Path) -> None:
    data = tmp_path / "data"

    @tool(target="client")
    def lookup(name: str) -> str:
        """Asked of the client."""
        raise AssertionError

    rt = Runtime(data)
    child = Agent(
        runtime=rt,
        agent_id="child",
        provider=ScriptedProvider([call("lookup", name="n"), _tool_messages]),
        tools=[lookup],
        redact=hide,
    )

    @tool
    def ask(task: str) -> str:
        """Delegate."""
        return delegate(child, task).answer or ""

    script = ScriptedProvider([call("ask", task="t"), _tool_messages])
    parent = Agent(runtime=rt, agent_id="parent", provider=script, tools=[ask])
    with rt:
        r = parent.run("go", execution_id="p")
        assert r.suspend_reason is not None
        (listed,) = r.suspend_reason.confirmation_ids
        assert "/" in listed  # the child's call, answered through the parent (which has no redactor itself)
        rt.submit_tool_results("p", {listed: f"found {SSN}"})
        done = rt.wait("p", timeout=30)
    assert done.status is Status.COMPLETED and REDACTED in (done.answer or "")
    parent.close()
    child.close()
    assert SSN.encode() not in _disk(data)


def test_the_command_redacts_with_the_agent_it_is_given(tmp_path: Path) -> None:
    data = tmp_path / "data"
    module = tmp_path / "redacting_agent_mod.py"
    module.write_text(
        textwrap.dedent(
            f"""
            from delite import Agent, ScriptedProvider, tool
            from delite.providers import call
            from delite.tools import redact_patterns

            @tool(target="client")
            def read_cell(cell: str) -> str:
                \"\"\"The user's spreadsheet.\"\"\"
                raise AssertionError

            def build(where: object = {str(data)!r}) -> Agent:
                return Agent(where, provider=ScriptedProvider([call("read_cell", cell="B2"), "ok"]),
                             tools=[read_cell], redact=redact_patterns(r"\\b\\d{{3}}-\\d{{2}}-\\d{{4}}\\b"))
            """
        )
    )
    sys.path.insert(0, str(tmp_path))
    try:
        import redacting_agent_mod  # type: ignore[import-not-found]

        agent = redacting_agent_mod.build()
        assert agent.run("read", execution_id="cli").is_suspended
        agent.close()
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("redacting_agent_mod", None)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")])}
    env.pop("DELITE_DATA_DIR", None)
    env.pop("DELITE_AGENT", None)
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "delite_cli",
            "submit-tool-results",
            "cli",
            "-",
            "--data-dir",
            str(data),
            "--agent",
            "redacting_agent_mod:build",
        ],
        input=f'{{"c1.0": "cell holds {SSN}"}}',
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert SSN.encode() not in _disk(data)
    assert REDACTED.encode() in msgspec.json.encode(DataDir(data).execution("cli").export())


def test_a_humans_answer_and_the_question_are_redacted(tmp_path: Path) -> None:
    """The answer to ``ask`` becomes the asking tool's result, and the question is that tool's output: both are
    recorded through the tool's and the agent's redactors (an answer typed with a secret in it, a question
    quoting one)."""
    data = tmp_path / "data"
    turns: list[str] = []

    @tool(redact=redact_patterns(r"sk-[a-z]{20,}", replacement="[key]"))
    def ask(topic: str) -> Clarification:
        """Ask the user."""
        return Clarification(f"Is {SSN} the number for {topic} ({KEY})?")

    def second(messages: list[dict[str, Any]]) -> str:
        turns.append(_tool_messages(messages))
        return "thanks"

    agent = Agent(data, provider=ScriptedProvider([call("ask", topic="tax"), second]), tools=[ask], redact=hide)
    r = agent.run("file my taxes", execution_id="h")
    assert r.suspend_reason is not None and r.suspend_reason.kind == "human_input"
    assert SSN not in (r.suspend_reason.message or "") and KEY not in (r.suspend_reason.message or "")
    done = agent.submit_input("h", f"yes, {SSN}, and my key is {KEY}")
    assert done.status is Status.COMPLETED
    assert SSN not in turns[0] and KEY not in turns[0] and REDACTED in turns[0] and "[key]" in turns[0]
    disk = _disk(data)
    assert SSN.encode() not in disk and KEY.encode() not in disk
    export = msgspec.json.encode(DataDir(data).execution("h").export())
    assert SSN.encode() not in export and KEY.encode() not in export
    # A resumed run reads the redacted answer back and goes on the same way.
    again = Agent(data, provider=ScriptedProvider([]), tools=[ask], redact=hide)
    assert again.resume("h").answer == "thanks"
