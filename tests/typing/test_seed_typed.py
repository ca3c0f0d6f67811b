"""A user's typed script in the seeds' shapes (the durable README and the dendrux docs, package renamed) is clean
under ``mypy --strict`` and pyright in strict mode, against the installed package (run outside the checkout)."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

SEED_SCRIPT = """\
from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from delite import (
    Agent,
    Budget,
    DataDir,
    ExecutionNotFoundError,
    ExecutionStateError,
    Response,
    Runtime,
    tool,
)
from delite.agent import current_idempotency_key
from delite.errors import InvalidToolResultError, ProviderError, UsageError
from delite import SuspendReason
from delite.providers import Anthropic, OpenAI


@tool("get_weather", description="Get weather for a location")
def get_weather(location: str) -> dict[str, Any]:
    return {"temp": 72, "conditions": "sunny", "location": location}


@tool("transfer_funds", description="Transfer money", requires_confirmation=True)
def transfer_funds(from_acct: str, to_acct: str, amount: float) -> dict[str, Any]:
    return {"status": "transferred", "amount": amount, "key": current_idempotency_key()}


def my_model(messages: list[dict[str, Any]], tools: list[dict[str, Any]], model: str) -> dict[str, Any]:
    return {"content": "hi"}


def quick_start() -> None:
    with Agent("./data") as agent:
        agent.add_tool(get_weather)
        agent.add_tool(transfer_funds)
        agent.set_llm(OpenAI())
        agent.set_llm(Anthropic())
        agent.set_llm(my_model)
        agent.set_llm("openai:gpt-4o-mini")
        agent.budget = Budget(max_dollars=2.00, max_llm_calls=10)
        response = agent.run("What's the weather in San Francisco?")
        print(response)
        execution_id: str = response.execution_id
        response = agent.run("again", execution_id=execution_id)
        if response.suspend_reason:
            agent.approve(response.execution_id, response.suspend_reason.confirmation_id)
            response = agent.resume(response.execution_id)
        if response.is_suspended:
            print(f"Budget exhausted: {response.suspend_reason}")

        @agent.contract("max-charge")
        def check_charge(step_name: str, args: dict[str, Any]) -> None:
            if "charge" in step_name and args.get("amount", 0) > 1000:
                raise ValueError("Charges over $1000 need VP approval")

        chunks: Iterator[str] = iter(agent.stream("Tell me a story"))
        for chunk in agent.stream("Tell me a story"):
            print(chunk, end="", flush=True)
        print(chunks)
        r2: Response = agent.submit_approval(execution_id, approved=True, rejection_reason=None)
        agent.submit_input(execution_id, "text")
        agent.submit_tool_results(execution_id, {"c1.0": {"ok": True}})
        print(r2.status.value, r2.answer)


def runtime() -> None:
    rt = Runtime("./data")
    researcher = Agent("./data", runtime=rt, agent_id="researcher", provider=OpenAI())
    exec_id = rt.go(researcher, "Research the topic")

    @rt.on_complete
    def done(agent_id: str, exec_id: str, response: Response) -> None:
        print(f"{agent_id} finished")

    @rt.on_suspend
    def paused(agent_id: str, exec_id: str, reason: SuspendReason) -> None:
        print(f"Approval needed: {reason}", reason.confirmation_id)

    rt.signal(exec_id, "c1.0", True)
    rt.shutdown()
    for s in DataDir("./data").list():
        print(s.id, s.status)


async def recipe() -> None:
    async with Agent(provider="anthropic:claude-haiku-4-5", prompt="...") as agent:
        print((await agent.arun("hi")).answer)
        try:
            await agent.asubmit_approval("x", approved=True)
        except ExecutionNotFoundError:
            pass
        except ExecutionStateError as e:
            print(e)
        except (InvalidToolResultError, UsageError, ProviderError):
            pass
"""


def _check(tmp_path: Path, *cmd: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "user.py").write_text(SEED_SCRIPT)
    return subprocess.run(
        [sys.executable, "-m", *cmd, "user.py"], cwd=tmp_path, capture_output=True, text=True, check=False
    )


def test_the_seed_shapes_pass_mypy_strict(tmp_path: Path) -> None:
    out = _check(tmp_path, "mypy", "--strict", "--no-incremental")
    assert out.returncode == 0, out.stdout + out.stderr


@pytest.mark.skipif(importlib.util.find_spec("pyright") is None, reason="pyright is not a test dependency")
def test_the_seed_shapes_pass_pyright_strict(tmp_path: Path) -> None:
    (tmp_path / "pyrightconfig.json").write_text('{"typeCheckingMode": "strict"}')
    out = _check(tmp_path, "pyright", "--pythonpath", sys.executable)
    assert out.returncode == 0 and "0 errors" in out.stdout, out.stdout + out.stderr
