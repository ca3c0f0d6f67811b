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


@pytest.fixture
def pg_schema_url(pg_server: Any) -> Any:
    """A fresh database with delite's schema already migrated (faster than ``pg_url`` for tests of the store)."""
    url = pg_server.create_database(migrated=True)
    yield url
    pg_server.recycle_database(url)


# -- the main behaviour suites on both stores ----------------------------------------------------------------


@pytest.fixture(params=["file", "postgresql"])
def any_data_dir(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    """Where a test's executions live, once per store: a data directory's path, then a PostgreSQL URL.

    A behaviour suite runs on both stores by defining ``data_dir`` as this fixture (``Agent``, ``Runtime`` and
    ``DataDir`` accept either); a test that looks at the files themselves is marked ``files_only`` and is run on
    the file store alone. The PostgreSQL half is skipped, with the reason, where no server can be started.
    """
    from _stores import close_all

    where = tmp_path / "data" if request.param == "file" else request.getfixturevalue("pg_schema_url")
    yield where
    close_all()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Drop the PostgreSQL half of the tests marked ``files_only`` (they read the data directory's files)."""
    kept: list[pytest.Item] = []
    dropped: list[pytest.Item] = []
    for item in items:
        spec = getattr(item, "callspec", None)
        on_pg = spec is not None and spec.params.get("any_data_dir") == "postgresql"
        (dropped if on_pg and item.get_closest_marker("files_only") else kept).append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept
