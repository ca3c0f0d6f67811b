from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
# The contract suites' store fixtures (and the toy third store, ``ListStore``) are importable by every suite.
sys.path.insert(0, str(ROOT / "tests" / "contract"))
# ``_pg`` (the throwaway PostgreSQL server of the pg fixtures) is importable as a top-level module.
sys.path.insert(0, str(ROOT / "tests"))

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


# -- a throwaway PostgreSQL server (tests/_pg.py) ---------------------------------------------------------------


@pytest.fixture(scope="session")
def pg_server() -> Any:
    """One private PostgreSQL cluster for the session (skipped, with the reason, where none can be started)."""
    from _pg import PgServer, unavailable

    why = unavailable()
    if why is not None:
        pytest.skip(why)
    server = PgServer()
    try:
        server.start()
        yield server
    finally:
        server.destroy()


@pytest.fixture
def pg_url(pg_server: Any) -> Any:
    """A fresh, empty database on the session's server: its ``postgresql://`` URL (dropped after the test)."""
    url = pg_server.create_database()
    yield url
    pg_server.drop_database(url)
