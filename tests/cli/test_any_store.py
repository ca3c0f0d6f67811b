"""The CLI embedded with a store (``cli.main(args, obj=store, standalone_mode=False)``): the same typed errors
and exit codes on a data directory, a MemoryStore and the toy third store, and the store is left open."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click
import pytest
from store_fixtures import ListStore

from delite import Agent, ScriptedProvider
from delite.store import MemoryStore, Store
from delite_cli._errors import CliError
from delite_cli.main import cli


class Closing(ListStore):
    """Counts how often it was closed: the CLI borrows a store it is given and must not close it."""

    closed = 0

    def close(self) -> None:
        self.closed += 1


def invoke(args: list[str], where: Path | Store) -> CliError | None:
    """Run one command; the error it ends with (None: it succeeded)."""
    argv, obj = (["--data-dir", str(where)], None) if isinstance(where, Path) else ([], where)
    try:
        cli.main([*args, *argv], obj=obj, standalone_mode=False, prog_name="delite")
    except CliError as e:
        return e
    except click.ClickException as e:  # click's own usage errors
        return CliError(e.format_message(), kind="click", exit_code=e.exit_code)
    return None


def postgres(request: pytest.FixtureRequest) -> Store:
    """A PostgresStore on a fresh database of the session's server (the test skips where none can run)."""
    from delite.store._postgres import PostgresStore

    store = PostgresStore(request.getfixturevalue("pg_url"))
    request.addfinalizer(store.close)
    return store


@pytest.fixture(scope="module")
def shared_postgres(pg_server: Any) -> Iterator[Store]:
    """One PostgresStore holding greet-1 for the module's hostile-id tests (they write nothing, as they check)."""
    from delite.store._postgres import PostgresStore

    url = pg_server.create_database()
    store = PostgresStore(url)
    Agent(store=store, provider=ScriptedProvider(["hi"])).run("hello", execution_id="greet-1")
    yield store
    store.close()
    pg_server.drop_database(url)


@pytest.fixture(params=["file", "memory", "list", "postgres"])
def where(request: pytest.FixtureRequest, tmp_path: Path) -> Path | Store:
    data: Path | Store = tmp_path / "data"
    if request.param == "postgres":
        shared: Store = request.getfixturevalue("shared_postgres")
        assert shared.list_ids() == ["greet-1"]  # the earlier tests wrote nothing
        return shared
    if request.param != "file":
        data = MemoryStore() if request.param == "memory" else Closing()
    Agent(
        data if isinstance(data, Path) else None,
        store=None if isinstance(data, Path) else data,
        provider=ScriptedProvider(["hi"]),
    ).run("hello", execution_id="greet-1")
    return data


HOSTILE = ["../etc/passwd", "a/b", "x" * 200, "-", "a b", "é", "a\x00b", ".hidden", "a..b"]


@pytest.mark.parametrize("ident", HOSTILE)
@pytest.mark.parametrize("command", ["inspect", "steps", "events", "export", "tail", "cancel", "fork", "resume"])
def test_hostile_ids_are_the_same_usage_error_on_every_store(where: Path | Store, command: str, ident: str) -> None:
    extra = ["--timeout", "0"] if command == "tail" else []
    e = invoke([command, *extra, "--", ident] if ident.startswith("-") else [command, *extra, ident], where)
    assert e is not None and e.exit_code == 2, (command, ident, e and e.message)
    assert e.kind in {"InvalidExecutionIdError", "click"}


def three_stores(tmp_path: Path) -> list[Path | Store]:
    """The same execution on a data directory, a MemoryStore and the toy third store."""
    out: list[Path | Store] = [tmp_path / "data", MemoryStore(), Closing()]
    for where in out:
        if isinstance(where, Path):
            Agent(where, provider=ScriptedProvider(["hi"])).run("hello", execution_id="greet-1")
        else:
            Agent(store=where, provider=ScriptedProvider(["hi"])).run("hello", execution_id="greet-1")
    return out


@pytest.mark.parametrize(
    ("args", "kind", "code"),
    [
        (["inspect", "nope-1"], "ExecutionNotFoundError", 1),
        (["inspect", "greet-2"], "ExecutionNotFoundError", 1),
        (["events", "greet-1", "--after", "-1"], "click", 2),
        (["status", "--status", "bogus"], "click", 2),
        (["status", "--meta", 'k"ey=1'], "UsageError", 2),
        (["approve", "greet-1", "c1.0"], "ExecutionAlreadyTerminalError", 1),
        (["reject", "greet-1", "c1.0"], "ExecutionAlreadyTerminalError", 1),
        (["submit-input", "greet-1", "hi"], "ExecutionAlreadyTerminalError", 1),
        (["submit-tool-results", "greet-1", "{}"], None, None),
        (["submit-tool-results", "greet-1", "not json"], None, None),
        (["resolve", "greet-1", "c1.0", "--result", "1"], None, None),
        (["resume", "greet-1"], None, None),
        (["fork", "greet-1", "--at", "99"], None, None),
        (["fork", "greet-1", "--at", "0", "--id", "../x"], None, None),
        (["fork", "greet-1", "--at", "0", "--id", "greet-1"], None, None),
    ],
)
def test_bad_arguments_are_the_same_typed_error_on_every_store(
    args: list[str], kind: str | None, code: int | None, tmp_path: Path
) -> None:
    got = [invoke(args, where) for where in three_stores(tmp_path)]
    assert all(e is not None for e in got), [e and e.message for e in got]
    assert len({(e.kind, e.exit_code) for e in got if e is not None}) == 1, [(e and (e.kind, e.message)) for e in got]
    first = got[0]
    assert first is not None
    if kind is not None:
        assert (first.kind, first.exit_code) == (kind, code), first.message


@pytest.mark.parametrize(
    "args",
    [
        ["inspect", "nope-1"],
        ["events", "greet-1", "--after", "-1"],
        ["status", "--meta", 'k"ey=1'],
        ["approve", "greet-1", "c1.0"],
        ["submit-input", "greet-1", "hi"],
        ["submit-tool-results", "greet-1", "{}"],
        ["resolve", "greet-1", "c1.0", "--result", "1"],
        ["resume", "greet-1"],
        ["fork", "greet-1", "--at", "99"],
        ["fork", "greet-1", "--at", "0", "--id", "greet-1"],
    ],
)
def test_bad_arguments_are_the_same_typed_error_on_postgres(
    args: list[str], tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    store = postgres(request)
    Agent(store=store, provider=ScriptedProvider(["hi"])).run("hello", execution_id="greet-1")
    Agent(tmp_path / "data", provider=ScriptedProvider(["hi"])).run("hello", execution_id="greet-1")
    on_pg, on_files = invoke(args, store), invoke(args, tmp_path / "data")
    assert on_pg is not None and on_files is not None
    assert (on_pg.kind, on_pg.exit_code) == (on_files.kind, on_files.exit_code), (on_pg.message, on_files.message)


def test_a_store_given_to_the_cli_stays_open_and_sees_every_command() -> None:
    store = Closing()
    Agent(store=store, provider=ScriptedProvider(["hi"])).run("hello", execution_id="greet-1")
    for args in (["status"], ["inspect", "greet"], ["health"], ["fork", "greet-1", "--at", "0", "--id", "greet-2"]):
        assert invoke(args, store) is None, args
    assert invoke(["cancel", "greet-2"], store) is None
    assert store.state("greet-2").status.value == "cancelled" and store.closed == 0


def test_health_returns_its_exit_code_when_embedded(tmp_path: Path) -> None:
    """``health`` ends by its exit code, not ``SystemExit``: an embedding caller (``standalone_mode=False``) gets it."""
    for where in three_stores(tmp_path):
        argv = ["--data-dir", str(where)] if isinstance(where, Path) else []
        obj = None if isinstance(where, Path) else where
        assert cli.main(["health", *argv], obj=obj, standalone_mode=False) == 0
