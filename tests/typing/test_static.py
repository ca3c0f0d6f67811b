"""The library and the CLI are ruff-clean and pass mypy --strict; a user's typed script type-checks against the
installed package (the README's install must be visible to type checkers, not only to the interpreter)."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# A user's script as the README and the seeds write it: no asserts or casts needed for a suspended response.
USER_SCRIPT = """
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from delite import Agent, Budget, Response, Runtime, ScriptedProvider, tool
from delite.agent import current_idempotency_key
from delite.providers import Anthropic, OpenAI, OpenAIResponses, call


@tool(description="Refund an order", requires_confirmation=True)
def refund(order_id: int) -> str:
    key: str = current_idempotency_key()
    return f"refunded {order_id} ({key})"


@dataclass
class Quote:
    price: float


def main(data_dir: str) -> str:
    model = ScriptedProvider([call("refund", order_id=1), "ok"])
    with Agent(data_dir, provider=model, tools=[refund]) as agent:
        agent.budget = Budget(max_llm_calls=10, max_dollars="2.00")
        response = agent.run("Refund order 1")
        if response.is_suspended:
            agent.approve(response.execution_id, response.suspend_reason.confirmation_id)
            response = agent.resume(response.execution_id)
        r: Response = agent.run("Refund order 2")
        if r.suspend_reason:
            agent.approve(r.execution_id, r.suspend_reason.confirmation_id)
        quote = agent.run("Quote order 3", output_type=Quote)
        typed: Response[Quote] = quote
        price = quote.output.price if quote.output is not None else 0.0
        return f"{response} {r} {typed} {price}"


async def amain(agent: Agent) -> float:
    r = await agent.arun("Refund order 4")
    if r.is_suspended:
        await agent.adecide(r.execution_id, {r.suspend_reason.confirmation_id: True})
        r = await agent.aresume(r.execution_id)
    q = await agent.aresume(r.execution_id, output_type=Quote)
    return q.output.price if q.output is not None else 0.0


def with_runtime(rt: Runtime, agent: Agent) -> None:
    eid = rt.go(agent, "Refund order 5")
    r = rt.wait(eid)
    if r.is_suspended:
        rt.signal(eid, r.suspend_reason.confirmation_id, True)


def defaults() -> None:
    for provider in (OpenAI(), Anthropic(), OpenAIResponses()):
        Agent(provider=provider)
    Agent(provider="anthropic:claude-haiku-4-5")


def plain(messages: list[dict[str, Any]], tools: list[dict[str, Any]], model: str | None) -> dict[str, Any]:
    return {"content": "hi"}


async def aplain(messages: list[dict[str, Any]], tools: list[dict[str, Any]], model: str | None) -> dict[str, Any]:
    return {"content": "hi"}


async def typed_edges(rt: Runtime) -> str:
    agent = Agent(provider=plain)
    agent.set_llm(aplain)
    for chunk in agent.stream("x", execution_id="e1", metadata={"k": 1}, output_type=Quote):
        print(chunk)
    async for piece in agent.astream("x", history=[], model="m"):
        print(piece)
    r = await agent.arun("x", idempotency_key="k", output_type=Quote)
    settled = await agent.acancel(r.execution_id, reason="done")
    return rt.go(agent, "y", metadata={"k": 1}, output_type=Quote) + str(settled.status)
"""

# What the checker infers (reveal_type), so a regression to Optional or Any shows up as a failed match.
REVEAL_SCRIPT = """
from dataclasses import dataclass

from delite import Agent


@dataclass
class Quote:
    price: float


def check(agent: Agent) -> None:
    r = agent.run("x")
    if r.is_suspended:
        reveal_type(r.suspend_reason.confirmation_id)
    else:
        reveal_type(r.suspend_reason)
    reveal_type(agent.run("x", output_type=Quote).output)
    reveal_type(agent.resume("e", output_type=Quote).output)
"""

# (type checker, script) pairs that must be rejected: the types still catch a missing check.
UNCHECKED_SCRIPT = """
from delite import Agent


def check(agent: Agent) -> None:
    r = agent.run("x")
    agent.approve(r.execution_id, r.suspend_reason.confirmation_id)
"""


# Typed keyword arguments at the edges: a misspelt or mistyped option, or a provider of the wrong shape, is caught.
MISTYPED_SCRIPT = """
from delite import Agent, Runtime


def not_a_provider(text: str) -> str:
    return text


def check(agent: Agent, rt: Runtime) -> None:
    agent.stream("x", executon_id="e1")
    agent.astream_events("x", history="not a list")
    rt.go(agent, "x", metdata={})
    agent.set_llm(not_a_provider)
"""


def _run(*cmd: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, check=False)


def test_ruff_clean() -> None:
    # Through the interpreter: ruff is in the test extra, so a missing ruff fails here instead of skipping.
    out = _run(sys.executable, "-m", "ruff", "check", "--quiet", ".", cwd=ROOT)
    assert out.returncode == 0, out.stdout + out.stderr


def test_mypy_strict() -> None:
    out = _run(sys.executable, "-m", "mypy", cwd=ROOT)
    assert out.returncode == 0, out.stdout + out.stderr


def test_a_users_typed_script_passes_mypy_strict(tmp_path: Path) -> None:
    # Outside the checkout, so mypy finds delite only through the installed distribution (its .pth and py.typed).
    (tmp_path / "user.py").write_text(textwrap.dedent(USER_SCRIPT))
    out = _run(sys.executable, "-m", "mypy", "--strict", "--no-incremental", "user.py", cwd=tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr


def _mypy(tmp_path: Path, script: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "user.py").write_text(textwrap.dedent(script))
    return _run(sys.executable, "-m", "mypy", "--strict", "--no-incremental", "user.py", cwd=tmp_path)


def test_mypy_infers_the_narrowed_and_generic_types(tmp_path: Path) -> None:
    out = _mypy(tmp_path, REVEAL_SCRIPT)
    assert out.returncode == 0, out.stdout + out.stderr
    revealed = [line.split("Revealed type is ", 1)[1] for line in out.stdout.splitlines() if "Revealed type" in line]
    # Spelled differently across mypy versions ("builtins.str" or "str", "Union[X, None]" or "X | None").
    names = [
        t.strip('"').removeprefix("builtins.").replace("Union[user.Quote, None]", "user.Quote | None") for t in revealed
    ]
    assert names == ["str", "None", "user.Quote | None", "user.Quote | None"], out.stdout


def test_mypy_still_rejects_an_unchecked_suspend_reason(tmp_path: Path) -> None:
    out = _mypy(tmp_path, UNCHECKED_SCRIPT)
    assert out.returncode == 1 and 'Item "None" of "SuspendReason | None"' in out.stdout, out.stdout


# pyright does not narrow an object by the truth of one of its attributes, so `if r.is_suspended:` cannot tell it
# that `r.suspend_reason` is set; `if r.suspend_reason:` narrows in every checker (see docs/how-to/approvals.md).
PYRIGHT_SCRIPT = USER_SCRIPT.replace("if response.is_suspended:", "if response.suspend_reason:").replace(
    "if r.is_suspended:", "if r.suspend_reason:"
)


@pytest.mark.skipif(importlib.util.find_spec("pyright") is None, reason="pyright is not a test dependency")
def test_a_users_typed_script_passes_pyright(tmp_path: Path) -> None:
    (tmp_path / "user.py").write_text(textwrap.dedent(PYRIGHT_SCRIPT))
    out = _run(sys.executable, "-m", "pyright", "--pythonpath", sys.executable, "user.py", cwd=tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr


def test_mypy_rejects_mistyped_options_and_providers(tmp_path: Path) -> None:
    out = _mypy(tmp_path, MISTYPED_SCRIPT)
    errors = [line for line in out.stdout.splitlines() if ": error:" in line]
    assert out.returncode == 1 and len(errors) == 4, out.stdout
    assert '"executon_id"' in errors[0] and '"history"' in errors[1] and '"metdata"' in errors[2], out.stdout
    assert '"set_llm"' in errors[3], out.stdout
