"""The bad-input torture runs in a quick form here, so it cannot rot: no breach in a fixed-seed barrage."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))

import torture_inputs  # noqa: E402


@pytest.mark.parametrize("seed", [1, 2])
def test_bad_inputs_breach_nothing(seed: int, capsys: pytest.CaptureFixture[str]) -> None:
    assert torture_inputs.main(["--trials", "80", "--seed", str(seed), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["breaches"] == []
    assert result["executions"] >= 80
    assert sum(result["counts"].values()) == 80
    assert result["counts"].get("refused: UsageError", 0) > 0
