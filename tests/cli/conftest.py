from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))  # ``scenario_agent`` is importable, as ``--agent scenario_agent:build`` needs

import scenario_agent  # noqa: E402
from store_fixtures import ListStore  # noqa: E402 - tests/contract is on the path (tests/conftest.py)

from delite import Agent, DataDir, ScriptedProvider, tool  # noqa: E402
from delite.errors import ProviderError  # noqa: E402
from delite.store import MemoryStore, Store  # noqa: E402


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


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "file_only(reason): the test is about files, so it runs on the file store only")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """A module with ``BOTH_STORES = True`` runs each of its CLI tests on the file store, on a MemoryStore, on
    the toy third store of the contract suites (``ListStore``: records in a dict, no bytes), which proves the CLI
    needs nothing of a store but the two interfaces, and on PostgreSQL (skipped where no server can be started).

    A test marked ``file_only`` (bytes, offsets, torn tails, permissions, the directory itself) runs on files only.
    """
    if "run" not in metafunc.fixturenames or not getattr(metafunc.module, "BOTH_STORES", False):
        return
    if metafunc.definition.get_closest_marker("file_only") is None:
        metafunc.parametrize("store_kind", ["file", "memory", "list", "postgres"])


@pytest.fixture
def store_kind() -> str:
    """Which store the CLI runs on (``file`` unless the module asks for both)."""
    return "file"


def memory_copy(data_dir: str) -> MemoryStore:
    """A MemoryStore holding the same log bytes as a data directory (torn tails and all)."""
    store = MemoryStore()
    executions = Path(data_dir) / "executions"
    if executions.is_dir():
        for log in sorted(executions.glob("*.log")):
            store.logs[log.name[: -len(".log")]] = bytearray(log.read_bytes())
    return store


def list_copy(data_dir: str) -> ListStore:
    """A ListStore holding the same executions as a data directory: their complete records (a torn tail is gone)."""
    from delite.store import FileStore

    store = ListStore()
    files = FileStore(data_dir)
    try:
        for eid in files.list_ids():
            store.logs[eid] = files.read(eid).records
    finally:
        files.close()
    return store


def postgres_copy(url: str, data_dir: str) -> Store:
    """A PostgresStore on the empty database ``url`` holding the same executions as a data directory (payload for
    payload)."""
    from delite.store import FileStore
    from delite.store._postgres import PostgresStore

    store = PostgresStore(url)
    files = FileStore(data_dir)
    try:
        for eid in files.list_ids():
            store.create_payloads(eid, files.read_payloads(eid))
    finally:
        files.close()
    return store


class Cli:
    """Runs ``delite`` in process. On the other stores, ``--data-dir D`` names a store copied from ``D`` on first
    use and given to the CLI as its store (click's ``obj``); later commands and :meth:`data` see that store.
    """

    def __init__(self, store_kind: str, pg_server: Any = None) -> None:
        from delite_cli.main import cli

        self.cli = cli
        self.store_kind = store_kind
        self.pg_server = pg_server
        self.runner = CliRunner()
        self.stores: dict[str, Store] = {}
        self.urls: dict[str, str] = {}  # on PostgreSQL: the database each data directory was copied to

    def store(self, data_dir: str | Path) -> Store:
        key = os.path.abspath(data_dir)
        if key not in self.stores:
            if self.store_kind == "postgres":
                self.urls[key] = self.pg_server.create_database()
                self.stores[key] = postgres_copy(self.urls[key], key)
            else:
                self.stores[key] = list_copy(key) if self.store_kind == "list" else memory_copy(key)
        return self.stores[key]

    def close(self) -> None:
        """Close the stores it made (a PostgreSQL store's database is dropped with the session's server)."""
        for store in self.stores.values():
            store.close()

    def __call__(self, *args: Any, stdin: str | None = None) -> Result:
        argv = [str(a) for a in args]
        obj = None
        if self.store_kind != "file" and "--data-dir" in argv:
            i = argv.index("--data-dir")
            obj = self.store(argv[i + 1])
            del argv[i : i + 2]
        return self.runner.invoke(self.cli, argv, input=stdin, catch_exceptions=False, obj=obj)

    def data(self, data_dir: str | Path) -> DataDir:
        """The read API over the store the commands ran on."""
        return DataDir(self.store(data_dir)) if self.store_kind != "file" else DataDir(data_dir)


@pytest.fixture
def run(monkeypatch: pytest.MonkeyPatch, store_kind: str, request: pytest.FixtureRequest) -> Iterator[Cli]:
    monkeypatch.delenv("DELITE_DATA_DIR", raising=False)
    monkeypatch.delenv("DELITE_AGENT", raising=False)
    monkeypatch.setenv("COLUMNS", "120")
    cli = Cli(store_kind, request.getfixturevalue("pg_server") if store_kind == "postgres" else None)
    yield cli
    cli.close()
