from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# The contract suites' store fixtures (and the toy third store, ``ListStore``) are importable by every suite.
sys.path.insert(0, str(ROOT / "tests" / "contract"))

# No test may reach a real model API: clear the keys so a provider built from the environment fails fast.
# Nor may the environment pick the default data directory or model of a test.
for _var in (
    "OPENAI_API_KEY",
    "ANTHROPIC_API_KEY",
    "OPENAI_BASE_URL",
    "ANTHROPIC_BASE_URL",
    "DELITE_DATA_DIR",
    "DELITE_OPENAI_MODEL",
    "DELITE_OPENAI_RESPONSES_MODEL",
    "DELITE_ANTHROPIC_MODEL",
):
    os.environ.pop(_var, None)


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture
def python() -> str:
    return sys.executable
