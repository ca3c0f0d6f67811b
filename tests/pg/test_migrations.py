"""The PostgreSQL store's schema: created on first use, migrated in numbered steps, once, by racing processes."""

from __future__ import annotations

import subprocess
import sys

import psycopg
import pytest

from delite.errors import SchemaTooNewError, StoreError, UsageError
from delite.log.records import ExecutionStarted
from delite.store._postgres import MIGRATIONS, Migration, PostgresStore, migrate, migration_status

NUMBERS = [m.number for m in MIGRATIONS]


def applied_rows(url: str) -> list[int]:
    with psycopg.connect(url) as conn:
        return [int(r[0]) for r in conn.execute("SELECT number FROM schema_migrations ORDER BY number").fetchall()]


def test_a_fresh_database_is_migrated_step_by_step_and_once(pg_url: str) -> None:
    assert list(range(1, len(NUMBERS) + 1)) == NUMBERS
    assert migration_status(pg_url) == [Migration(m.number, m.name, False) for m in MIGRATIONS]
    assert migrate(pg_url) == NUMBERS
    assert migrate(pg_url) == []  # idempotent
    assert all(m.applied for m in migration_status(pg_url))
    assert applied_rows(pg_url) == NUMBERS


def test_the_schema_is_created_on_first_use(pg_url: str) -> None:
    store = PostgresStore(pg_url)
    try:
        store.create("e1", [ExecutionStarted(at=1.0, execution_id="e1", input="hi")])
        assert store.list_ids() == ["e1"]
    finally:
        store.close()
    assert applied_rows(pg_url) == NUMBERS
    assert migrate(pg_url) == []


def test_concurrent_migrators_apply_each_step_once(pg_url: str) -> None:
    code = "import sys; from delite.store._postgres import migrate; print(','.join(map(str, migrate(sys.argv[1]))))"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code, pg_url], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for _ in range(4)
    ]
    applied: list[int] = []
    for p in procs:
        out, err = p.communicate(timeout=60)
        assert p.returncode == 0, err
        applied.extend(int(n) for n in out.strip().split(",") if n)
    assert sorted(applied) == NUMBERS  # every step by exactly one of them
    assert applied_rows(pg_url) == NUMBERS


def test_a_newer_schema_is_refused_before_anything_is_written(pg_url: str) -> None:
    migrate(pg_url)
    newer = NUMBERS[-1] + 1
    with psycopg.connect(pg_url) as conn:
        conn.execute("INSERT INTO schema_migrations (number, name) VALUES (%s, 'from the future')", (newer,))
    for attempt in (lambda: PostgresStore(pg_url), lambda: migrate(pg_url), lambda: migration_status(pg_url)):
        with pytest.raises(SchemaTooNewError) as info:
            attempt()
        assert info.value.found == newer and info.value.supported == NUMBERS[-1]
        assert "upgrade delite-agents" in str(info.value)
    assert applied_rows(pg_url) == [*NUMBERS, newer]


def test_bad_urls_and_unreachable_servers(pg_url: str) -> None:
    with pytest.raises(UsageError):
        PostgresStore("mysql://localhost/db")
    with pytest.raises(UsageError):
        PostgresStore(pg_url, durability="sometimes")
    dead = "postgresql://nobody:secret@127.0.0.1:1/none?connect_timeout=2"
    for attempt in (lambda: PostgresStore(dead), lambda: migrate(dead)):
        with pytest.raises(StoreError) as info:
            attempt()
        assert "secret" not in str(info.value)  # the password is never in a message
        assert "127.0.0.1:1" in str(info.value)


def test_without_the_extra_the_import_names_the_pip_command() -> None:
    code = (
        "import sys; sys.modules['psycopg'] = None\n"
        "from delite.errors import MissingExtraError, UsageError\n"
        "try:\n"
        "    import delite.store._postgres\n"
        "except MissingExtraError as e:\n"
        "    assert isinstance(e, UsageError) and isinstance(e, ImportError)\n"
        "    print(e)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert 'pip install "delite-agents[postgres]"' in out.stdout


def test_a_store_never_shows_its_password(pg_url: str) -> None:
    with_password = pg_url.replace("postgresql://postgres@", "postgresql://postgres:s3cret@")
    store = PostgresStore(with_password)  # trust authentication: the password is not checked here
    try:
        assert "s3cret" not in repr(store) and "s3cret" not in store.where
        assert repr(store) == f"PostgresStore({pg_url!r})"
    finally:
        store.close()
