"""Private files whatever the umask (issue 10, item 8), through the paths the first tests did not take.

The Runtime, the CLI's writing commands (fork, cancel, approve, health --repair) and ``export -o``: every
file they create is 0600 and every directory 0700 under ``umask 000``.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from delite import Agent, Runtime, ScriptedProvider, tool
from delite.providers._scripted import call
from delite_cli.main import cli


@tool(requires_confirmation=True)
def pay(amount: int) -> str:
    """Pay."""
    return f"paid {amount}"


@pytest.fixture
def open_umask() -> Iterator[None]:
    old = os.umask(0)
    try:
        yield
    finally:
        os.umask(old)


def loose(root: Path) -> dict[str, str]:
    out: dict[str, str] = {}
    for path in [root, *root.rglob("*")]:
        mode = stat.S_IMODE(path.lstat().st_mode)
        if mode != (0o700 if path.is_dir() else 0o600):
            out[str(path.relative_to(root))] = oct(mode)
    return out


def test_runtime_and_cli_writes_are_private_under_umask_000(tmp_path: Path, open_umask: None) -> None:
    data = tmp_path / "data"
    agent = Agent(data, provider=ScriptedProvider([call("pay", amount=1), "done"] * 3), tools=[pay])
    first = agent.run("pay", idempotency_key="k1").execution_id
    second = agent.run("pay again").execution_id
    with Runtime(data) as rt:
        other = Agent(provider=ScriptedProvider(["hi"]), runtime=rt, agent_id="rt")
        rt.wait(rt.go(other, "hello", idempotency_key="k2"))
    runner = CliRunner()
    for args in (
        ["approve", first, "--all"],
        ["cancel", second],
        ["fork", first, "--at", "1", "--id", "forked"],
        ["health", "--repair"],
        ["status"],
    ):
        result = runner.invoke(cli, [*args, "--data-dir", str(data)])
        assert result.exit_code == 0, (args, result.output)
    assert loose(data) == {}


@pytest.mark.parametrize("fmt", ["json", "ndjson", "html"])
def test_an_export_file_is_private_under_umask_000(tmp_path: Path, open_umask: None, fmt: str) -> None:
    data = tmp_path / "data"
    eid = Agent(data, provider=ScriptedProvider(["the secret answer"])).run("a private prompt").execution_id
    out = tmp_path / f"out.{fmt}"
    result = CliRunner().invoke(cli, ["export", eid, "--data-dir", str(data), "--format", fmt, "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert "the secret answer" in out.read_text()
    assert stat.S_IMODE(out.stat().st_mode) == 0o600


def test_an_export_over_an_existing_file_keeps_its_mode(tmp_path: Path) -> None:
    data = tmp_path / "data"
    eid = Agent(data, provider=ScriptedProvider(["answer"])).run("prompt").execution_id
    out = tmp_path / "shared.json"
    out.write_text("old, longer content than the new one will be" * 100)
    out.chmod(0o640)
    result = CliRunner().invoke(cli, ["export", eid, "--data-dir", str(data), "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert stat.S_IMODE(out.stat().st_mode) == 0o640
    assert out.read_text().rstrip().endswith("}")  # truncated, not overwritten in place
