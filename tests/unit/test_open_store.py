"""Choosing the store: a path is a data directory, a postgresql:// URL a database, anything else a clear error.

The PostgreSQL store needs the ``postgres`` extra; these tests run the "extra missing" case in a real
subprocess whose imports of psycopg are blocked (a ``sitecustomize`` on its path), so they hold whether or not
psycopg is installed here. A password in a URL never appears in a message, a ``repr`` or the CLI's output.
"""

from __future__ import annotations

import os
import pickle
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st

from delite import Agent, DataDir, Runtime, ScriptedProvider
from delite.errors import MissingExtraError, UsageError
from delite.store import FileStore, MemoryStore, open_store
from delite.store._open import _scheme, default_location, describe, looks_like_url, redact, same_location
from delite_cli._errors import USAGE, exit_code

ROOT = Path(__file__).resolve().parents[2]
SECRET = "s3cr:et@/pw"  # noqa: S105 - a password with the characters that end a URL's parts
URL = "postgresql://alice:s3cr%3Aet%40%2Fpw@db.example:5432/agents?sslmode=require"

BLOCK_PSYCOPG = textwrap.dedent(
    """
    import sys

    class _NoPsycopg:
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in ("psycopg", "psycopg_pool", "psycopg_binary", "psycopg_c"):
                raise ImportError(f"No module named {name!r} (blocked by the test)")
            return None

    sys.meta_path.insert(0, _NoPsycopg())
    """
)


@pytest.fixture
def no_psycopg(tmp_path: Path) -> dict[str, str]:
    """The environment of a subprocess in which ``import psycopg`` fails, as it does without the extra."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(BLOCK_PSYCOPG)
    env = {k: v for k, v in os.environ.items() if not k.startswith("DELITE_")}
    env["PYTHONPATH"] = os.pathsep.join([str(site), str(ROOT), str(ROOT / "cli")])
    return env


def _run(argv: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *argv], check=False, env=env, cwd=cwd, capture_output=True, text=True, timeout=60
    )


def _python(code: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return _run(["-c", textwrap.dedent(code)], env, cwd)


# -- paths ----------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", [str, Path])
def test_a_path_opens_a_file_store(tmp_path: Path, kind: type) -> None:
    store = open_store(kind(tmp_path / "data"), durability="off")
    try:
        assert isinstance(store, FileStore)
        assert store.layout.root == str(tmp_path / "data")
        assert store.durability.value == "off"
        assert not (tmp_path / "data").exists()  # nothing is created until the first write
    finally:
        store.close()


@pytest.mark.parametrize("text", ["data", "./data:v2", "C:\\data", "c:/data", "data:2024", "x@y:z", "with space"])
def test_text_that_is_not_a_url_is_a_path(tmp_path: Path, text: str) -> None:
    assert not looks_like_url(text)
    store = open_store(str(tmp_path / text) if text[1:3] not in (":\\", ":/") else text)
    assert isinstance(store, FileStore)
    store.close()


@pytest.mark.parametrize("bad", [None, 3, b"data", ["data"], MemoryStore()])
def test_something_else_is_a_usage_error_naming_the_forms(bad: object) -> None:
    with pytest.raises(UsageError, match=r"path.*postgresql://"):
        open_store(bad)  # type: ignore[arg-type]


class _BytesPath(os.PathLike):  # type: ignore[type-arg]
    """A path object whose ``__fspath__`` gives bytes (``os.PathLike[bytes]``), which no data directory is."""

    def __init__(self, where: Path) -> None:
        self.where = where

    def __fspath__(self) -> bytes:
        return os.fsencode(self.where)


@pytest.mark.parametrize("make", ["Agent", "Runtime", "DataDir", "FileStore", "open_store"])
@pytest.mark.parametrize("bad", ["bytes path", "nul"])
def test_a_path_that_is_no_data_directory_is_a_usage_error_and_nothing_is_created(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, make: str, bad: str
) -> None:
    """A path object that gives bytes, or text with a NUL (no file system takes it): refused where it is given."""
    monkeypatch.chdir(tmp_path)
    target: object = _BytesPath(tmp_path / "d") if bad == "bytes path" else str(tmp_path / "d\x00x")
    constructors = {
        "Agent": lambda t: Agent(t, provider=ScriptedProvider(["hi"])),
        "Runtime": Runtime,
        "DataDir": DataDir,
        "FileStore": FileStore,
        "open_store": open_store,
    }
    with pytest.raises(UsageError, match="data directory"):
        constructors[make](target)
    assert os.listdir(tmp_path) == []


# -- URLs of other kinds ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "mysql://alice:s3cret@db/agents",
        "s3://bucket/agents",
        "file:///srv/agents",
        "file:agents",
        "FILE:agents",
        "sqlite:agents.db",
        "https://alice:s3cret@example.com/agents",
        "redis://:s3cret@localhost:6379/0",
        "postgresql:agents",  # not a URL libpq reads either
    ],
)
def test_a_url_of_another_kind_is_refused_clearly(tmp_path: Path, url: str) -> None:
    with pytest.raises(UsageError) as caught:
        open_store(url)
    message = str(caught.value)
    assert "postgresql://" in message and "path" in message
    assert "s3cret" not in message
    assert type(caught.value) is UsageError  # not the missing extra: no extra would help
    for build in (lambda: Agent(url), lambda: Runtime(url), lambda: DataDir(url)):
        with pytest.raises(UsageError) as again:
            build()
        assert "s3cret" not in str(again.value)
    assert not list(tmp_path.iterdir())  # nothing was created anywhere


# -- redaction --------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql://alice:s3cret@db:5432/agents", "postgresql://alice:***@db:5432/agents"),
        ("postgres://alice@db/agents", "postgres://alice@db/agents"),
        ("postgresql://db/agents", "postgresql://db/agents"),
        ("postgresql:///agents?host=/run/pg", "postgresql:///agents?host=/run/pg"),
        ("postgresql://alice:p@ss:w@rd@db/agents", "postgresql://alice:***@db/agents"),
        ("postgresql://db/agents?user=a&password=s3cret&sslmode=require", None),
        ("postgresql://db/agents?sslpassword=s3cret", None),
        ("postgresql://db/agents?PASSWORD=s3cret#frag", None),
        ("postgresql://alice:s3cret@[::1]:5432/agents", "postgresql://alice:***@[::1]:5432/agents"),
        (URL, "postgresql://alice:***@db.example:5432/agents?sslmode=require"),
    ],
)
def test_redact_hides_every_password(url: str, shown: str | None) -> None:
    out = redact(url)
    for secret in ("s3cret", "p@ss", "s3cr%3Aet"):
        assert secret not in out
    if shown is not None:
        assert out == shown
    assert describe(url) == out
    assert redact(out) == out  # idempotent


def test_describe_leaves_paths_alone(tmp_path: Path) -> None:
    assert describe(tmp_path / "a:b@c") == str(tmp_path / "a:b@c")
    assert describe("data") == "data"


# -- the missing extra, in a process without psycopg ------------------------------------------------------------------


def test_a_postgres_url_without_the_extra_is_one_clear_error(tmp_path: Path, no_psycopg: dict[str, str]) -> None:
    code = f"""
        import pickle
        from delite import Agent, DataDir, Runtime
        from delite.errors import MissingExtraError, UsageError
        from delite.store import open_store

        url = {URL!r}
        for build in (open_store, Agent, Runtime, DataDir, lambda u: open_store(u.replace("postgresql", "postgres"))):
            try:
                build(url)
            except MissingExtraError as e:
                assert isinstance(e, UsageError) and e.http_status == 400
                assert 'pip install "delite-agents[postgres]"' in str(e), str(e)
                assert {SECRET!r} not in str(e) and "s3cr" not in str(e)
                assert pickle.loads(pickle.dumps(e)).extra == "postgres"
            else:
                raise SystemExit("no error for " + repr(build))
        print("ok")
    """
    done = _python(code, no_psycopg, tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"
    assert not [p for p in tmp_path.iterdir() if p.name != "site"]  # nothing created


def test_delite_data_dir_may_be_a_url(tmp_path: Path, no_psycopg: dict[str, str]) -> None:
    env = {**no_psycopg, "DELITE_DATA_DIR": URL}
    code = """
        from delite import Agent
        from delite.errors import MissingExtraError
        try:
            Agent()
        except MissingExtraError as e:
            print(type(e).__name__)
    """
    done = _python(code, env, tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "MissingExtraError"


def test_every_cli_command_reports_the_missing_extra_with_exit_2(tmp_path: Path, no_psycopg: dict[str, str]) -> None:
    commands = [
        ["status"],
        ["inspect", "x"],
        ["steps", "x"],
        ["events", "x"],
        ["export", "x"],
        ["health"],
        ["tail", "x"],
        ["approve", "x"],
        ["reject", "x"],
        ["submit-input", "x", "hi"],
        ["resume", "x", "--agent", "m:f"],
        ["cancel", "x"],
        ["fork", "x", "--at", "0"],
        ["migrate"],
    ]
    for argv in commands:
        for json_ in ([], ["--json"]):
            done = _run(["-m", "delite_cli", *argv, "--data-dir", URL, *json_], no_psycopg, tmp_path)
            assert done.returncode == USAGE, (argv, done.stdout, done.stderr)
            assert 'pip install \\"delite-agents[postgres]\\"' in done.stderr or (
                'pip install "delite-agents[postgres]"' in done.stderr
            ), (argv, done.stderr)
            assert "s3cr" not in done.stdout + done.stderr
            assert "Traceback" not in done.stderr
    env = {**no_psycopg, "DELITE_DATA_DIR": URL}
    done = _run(["-m", "delite_cli", "status"], env, tmp_path)
    assert done.returncode == USAGE and "delite-agents[postgres]" in done.stderr and "s3cr" not in done.stderr
    (tmp_path / "empty").mkdir()
    copy = _run(["-m", "delite_cli", "copy", str(tmp_path / "empty"), URL], no_psycopg, tmp_path)
    assert copy.returncode == USAGE and "delite-agents[postgres]" in copy.stderr and "s3cr" not in copy.stderr


# -- the CLI with other URLs ------------------------------------------------------------------------------------------


def test_the_cli_refuses_other_urls_without_showing_the_password(tmp_path: Path) -> None:
    from delite_cli.main import cli

    runner = CliRunner()
    for argv in (["status"], ["health"], ["inspect", "abc"], ["migrate"], ["status", "--json"]):
        result = runner.invoke(cli, [*argv, "--data-dir", "mysql://alice:s3cret@db/agents"])
        assert result.exit_code == USAGE, (argv, result.output)
        assert "s3cret" not in result.output
        assert "mysql:" in result.output and "postgresql://" in result.output
    result = runner.invoke(cli, ["copy", "s3://alice:s3cret@bucket/x", str(tmp_path / "dst")])
    assert result.exit_code == USAGE and "s3cret" not in result.output
    assert not (tmp_path / "dst").exists()


def test_the_demo_runs_on_a_data_directory_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from delite_cli.main import cli

    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(cli, ["demo", "--data-dir", "postgresql://alice:s3cret@db/agents"])
    assert result.exit_code == USAGE
    assert "runs on a data directory" in result.output and "s3cret" not in result.output
    assert list(tmp_path.iterdir()) == []  # no folder named after the URL


def test_migrate_on_a_data_directory_has_nothing_to_do(tmp_path: Path) -> None:
    from delite_cli.main import cli

    runner = CliRunner()
    result = runner.invoke(cli, ["migrate", "--data-dir", str(tmp_path / "data")])
    assert result.exit_code == 0, result.output
    assert "nothing to do" in result.output
    result = runner.invoke(cli, ["migrate", "--apply", "--json", "--data-dir", str(tmp_path / "data")])
    assert result.exit_code == 0, result.output
    assert '"migrations": []' in result.output and '"applied": []' in result.output
    assert not (tmp_path / "data").exists()  # nothing was created
    result = runner.invoke(cli, ["migrate"], obj=MemoryStore())
    assert result.exit_code == 0 and "nothing to do" in result.output


# -- the rest ---------------------------------------------------------------------------------------------------------


def test_missing_extra_error_is_a_usage_error_with_exit_code_2() -> None:
    e = MissingExtraError("postgres", "a PostgreSQL store")
    assert isinstance(e, UsageError) and e.http_status == 400
    assert exit_code(e) == USAGE
    assert str(e) == (
        "a PostgreSQL store needs the 'postgres' extra, which is not installed: pip install \"delite-agents[postgres]\""
    )
    again = pickle.loads(pickle.dumps(e))
    assert (type(again), again.extra, again.feature, str(again)) == (MissingExtraError, "postgres", e.feature, str(e))


def test_default_location(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DELITE_DATA_DIR", raising=False)
    assert default_location() == str(tmp_path / "data")
    monkeypatch.setenv("DELITE_DATA_DIR", "rel")
    assert default_location() == str(tmp_path / "rel")
    monkeypatch.setenv("DELITE_DATA_DIR", URL)
    assert default_location() == URL


def test_same_location(tmp_path: Path) -> None:
    store = FileStore(tmp_path / "a")
    assert same_location(store, str(tmp_path / "a"))
    assert same_location(store, tmp_path / "x" / ".." / "a")
    assert not same_location(store, str(tmp_path / "b"))
    assert not same_location(store, URL)
    assert not same_location(MemoryStore(), str(tmp_path / "a"))


def test_the_agent_opens_and_closes_the_store_it_chose(tmp_path: Path) -> None:
    agent = Agent(str(tmp_path / "data"))
    assert isinstance(agent.store, FileStore) and agent.owns_store
    agent.close()
    with Runtime(tmp_path / "data") as rt:
        assert isinstance(rt.store, FileStore) and rt.owns_store
    with DataDir(str(tmp_path / "data")) as data:
        assert isinstance(data.store, FileStore) and data.ids() == []


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://alice:se%zzcret@db/agents",  # libpq quotes the token it cannot decode
        "postgresql://alice:sec ret@db/agents",  # ... the text with the space
        "postgresql://alice:secret@[::1/agents",  # ... the whole URL
        "postgresql://db/agents?password=sec%zzret",
    ],
)
def test_a_url_libpq_cannot_parse_is_refused_without_its_password(url: str) -> None:
    pytest.importorskip("psycopg", reason="the postgres extra is not installed")
    with pytest.raises(UsageError) as caught:
        open_store(url)
    message = str(caught.value)
    assert "not a valid PostgreSQL URL" in message
    for secret in ("secret", "sec ret", "se%zzcret", "sec%zzret", "cret"):
        assert secret not in message, message
    from delite_cli.main import cli

    for argv in (["migrate"], ["migrate", "--apply"], ["status"]):
        result = CliRunner().invoke(cli, [*argv, "--data-dir", url])
        assert result.exit_code == USAGE and "not a valid PostgreSQL URL" in result.output
        assert "cret" not in result.output, result.output


def test_same_location_of_a_postgres_store(pg_url: str) -> None:
    """The store a URL opened is at that URL (what ``delite worker --agent`` checks the agent's store against)."""
    from delite.store._postgres import PostgresStore

    store = PostgresStore(pg_url)
    try:
        assert same_location(store, pg_url)
        assert not same_location(store, pg_url + "x")
        assert pg_url.rsplit("/", 1)[-1] in repr(store)
    finally:
        store.close()


_SCHEME_PATTERN = re.compile(r"([A-Za-z][A-Za-z0-9+.\-]+):")  # what _scheme replaced, to open a path without it


@given(
    st.one_of(
        st.text(),
        st.text(alphabet="aZ0+.-:/\\é٣ ", max_size=12),
        st.sampled_from(["C:\\data", "c:", "ab:", "a+:x", "1a:b", "postgresql://x", "é1:x", "ab٣:x", ":x"]),
    )
)
def test_the_scheme_is_what_the_pattern_found(text: str) -> None:
    """The hand-written scan agrees with the regular expression on every string, non-ASCII letters included."""
    m = _SCHEME_PATTERN.match(text)
    assert _scheme(text) == (m.group(1) if m is not None else None)
