from __future__ import annotations

import shutil
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))  # ``scenario_agent`` is importable, as ``--agent scenario_agent:build`` needs

import scenario_agent  # noqa: E402

from delite import Agent, ScriptedProvider, tool  # noqa: E402
from delite.errors import ProviderError  # noqa: E402


def _build(root: Path) -> Path:
    data = root / "data"
    agent = scenario_agent.build(str(data))
    agent.run("add 2 and 3", execution_id="done-1", metadata={"thread_id": "t-1", "user": 7})
    agent.run("pay the invoice", execution_id="approve-1", metadata={"thread_id": "t-2"})
    agent.run("where am I", execution_id="client-1")
    agent.run("book a trip", execution_id="input-1")
    scenario_agent.CRASH["transfer"] = True
    with pytest.raises(KeyboardInterrupt):
        agent.run("transfer funds", execution_id="doubt-1")
    agent.resume("doubt-1")
    with pytest.raises(ProviderError):
        agent.run("give up", execution_id="failed-1")
    agent.run("hostile " + scenario_agent.HOSTILE, execution_id="hostile-1")
    agent.run("count to three", execution_id="count-1")

    @tool
    def noop() -> str:
        """Nothing."""
        return "ok"

    other = Agent(data, provider=ScriptedProvider(["hello"]), tools=[noop], agent_id="greeter", durability="off")
    other.run("say hello")  # a generated id
    return data


@pytest.fixture(scope="session")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _build(tmp_path_factory.mktemp("cli-data"))


@pytest.fixture
def data(built: Path, tmp_path: Path) -> Path:
    """A private copy of the built data directory (tests may change it)."""
    target = tmp_path / "data"
    shutil.copytree(built, target, ignore=shutil.ignore_patterns("index.sqlite3*", "*.lock"))
    return target


@pytest.fixture
def run(monkeypatch: pytest.MonkeyPatch) -> Any:
    from delite_cli.main import cli

    monkeypatch.delenv("DELITE_DATA_DIR", raising=False)
    monkeypatch.delenv("DELITE_AGENT", raising=False)
    monkeypatch.setenv("COLUMNS", "120")
    runner = CliRunner()

    def invoke(*args: Any, stdin: str | None = None) -> Result:
        return runner.invoke(cli, [str(a) for a in args], input=stdin, catch_exceptions=False)

    return invoke
