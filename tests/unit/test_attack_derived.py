"""A damaged listing index never takes down a data directory (issue 10, items 8 and 9).

The index is derived from the logs: whatever bytes of it are damaged (a page SQLite calls malformed, a
summary that is not JSON any more), ``DataDir.list`` and ``delite status`` still list every execution, as
derived from the logs; ``health`` runs, and ``health --repair`` rebuilds the index.
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from click.testing import CliRunner

from delite import Agent, DataDir, ScriptedProvider
from delite_cli.main import cli

N = 40


@pytest.fixture(scope="module")
def indexed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, bytes, dict[str, str]]:
    data = tmp_path_factory.mktemp("derived") / "data"
    agent = Agent(data, provider=ScriptedProvider(["answer " * 100] * N))
    for i in range(N):
        agent.run(f"input {i} " + "y" * 300, execution_id=f"e{i:03d}")
    page = DataDir(data).list(limit=None)
    expected = {s.id: str(s.status) for s in page.items}
    assert len(expected) == N
    return data, (data / "index.sqlite3").read_bytes(), expected


@pytest.mark.parametrize("seed", range(24))
def test_a_damaged_index_is_derived_again_from_the_logs(indexed: tuple[Path, bytes, dict[str, str]], seed: int) -> None:
    data, good, expected = indexed
    rng = random.Random(seed)
    damaged = bytearray(good)
    offset = rng.randrange(100, len(good) - 64)
    damaged[offset : offset + 64] = bytes(rng.randrange(256) for _ in range(64))
    index = data / "index.sqlite3"
    index.write_bytes(bytes(damaged))
    try:
        listed = {s.id: str(s.status) for s in DataDir(data).list(limit=None).items}
        assert listed == expected, f"offset {offset}"
        result = CliRunner().invoke(cli, ["status", "--data-dir", str(data), "--limit", str(N)])
        assert result.exit_code == 0, result.output
        DataDir(data).health()  # reports what it finds, never raises
        repaired = CliRunner().invoke(cli, ["health", "--repair", "--data-dir", str(data)])
        assert repaired.exit_code == 0, repaired.output
    finally:
        index.write_bytes(good)
