"""Hostile input on PostgreSQL: what its ``text`` columns cannot hold, records over the size limit, URLs whose
passwords the driver would quote back, a store nobody closed, and both URL schemes everywhere.

A Python string may hold NUL (U+0000): the file store keeps it in its records, and so must PostgreSQL, whose
``text`` columns (the agent id a listing filters on, the idempotency keys) cannot. Lone surrogates are refused
with a typed error before anything is written, on both stores.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from delite import Agent, DataDir, ScriptedProvider
from delite.errors import UsageError
from delite.store import FileStore
from delite.store._copy import copy_executions
from delite.store._postgres import PostgresStore


def test_nul_in_an_agent_id_and_a_key_works_as_on_files(pg_schema_url: str) -> None:
    store = PostgresStore(pg_schema_url)
    try:
        agent = Agent(store=store, provider=ScriptedProvider(["one", "two"]), agent_id="a\x00b")
        first = agent.run("hi", idempotency_key="k\x00")
        again = agent.run("hi", idempotency_key="k\x00")
        assert first.answer == "one" and again.execution_id == first.execution_id  # one key, one execution
        other = Agent(store=store, provider=ScriptedProvider(["x"]), agent_id="a").run("hi", idempotency_key="k")
        assert other.answer == "x" and other.execution_id != first.execution_id  # "k" is not "k\0"
        assert store.lookup_key("k\x00") is not None and store.lookup_key("k\x00")[0] == first.execution_id  # type: ignore[index]
        data = DataDir(store)
        assert [s.id for s in data.list(agent="a\x00b").items] == [first.execution_id]
        assert [s.id for s in data.list(agent="a").items] == [other.execution_id]
        assert {s.agent_id for s in data.list().items} == {"a\x00b", "a"}
        # The escape is one-to-one: text that looks escaped is itself escaped, never taken for another text.
        marked = Agent(store=store, provider=ScriptedProvider(["m"]), agent_id='\ufffe"a\\u0000b"').run("hi")
        assert [s.id for s in data.list(agent='\ufffe"a\\u0000b"').items] == [marked.execution_id]
        assert [s.id for s in data.list(agent="a\x00b").items] == [first.execution_id]
    finally:
        store.close()


def test_an_execution_with_nul_in_its_agent_id_copies_both_ways(tmp_path: Path, pg_schema_url: str) -> None:
    files = FileStore(tmp_path / "data")
    r = Agent(store=files, provider=ScriptedProvider(["hello"]), agent_id="x\x00y").run("hi", metadata={"k": "v\x00"})
    pg = PostgresStore(pg_schema_url)
    try:
        copy_executions(files, pg, files.list_ids())
        assert [s.agent_id for s in DataDir(pg).list(agent="x\x00y").items] == ["x\x00y"]
        back = FileStore(tmp_path / "back")
        copy_executions(pg, back, pg.list_ids())
        assert back.read_payloads(r.execution_id) == files.read_payloads(r.execution_id)
    finally:
        pg.close()


@pytest.mark.parametrize(
    "hostile",
    [
        {"agent_id": "a\ud800"},
        {"idempotency_key": "k\udfff"},
        {"metadata": {"k": "\ud800"}},
    ],
    ids=["agent_id", "key", "metadata"],
)
def test_lone_surrogates_are_refused_before_anything_is_written(pg_schema_url: str, hostile: dict[str, object]) -> None:
    store = PostgresStore(pg_schema_url)
    try:
        kept = Agent(store=store, provider=ScriptedProvider(["kept"])).run("hi")
        agent_id = hostile.pop("agent_id", "default")
        with pytest.raises(UsageError):
            Agent(store=store, provider=ScriptedProvider(["no"]), agent_id=agent_id).run("hi", **hostile)  # type: ignore[arg-type]
        assert store.list_ids() == [kept.execution_id]
        assert DataDir(store).execution(kept.execution_id).state.status.value == "completed"
    finally:
        store.close()


def test_lone_surrogates_given_to_the_store_itself_are_usage_errors(pg_schema_url: str) -> None:
    store = PostgresStore(pg_schema_url)
    try:
        with pytest.raises(UsageError):
            store.bind_key("k\ud800", "E1", "f")
        with pytest.raises(UsageError):
            store.lookup_key("k\ud800")
        with pytest.raises(UsageError):
            store.runnable(agent="a\ud800")
        with pytest.raises(UsageError):
            store.recoverable(agent="a\ud800")
        with pytest.raises(UsageError):
            DataDir(store).list(agent="a\ud800")
        assert store.list_ids() == []
    finally:
        store.close()


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://app:se%zzcretpw@db/agents",
        "postgresql://app:secret pw@db/agents?x",
        "postgresql://app:secretpw@[::1/agents",
        "postgresql://app@db/agents?password=sec%zzretpw",
        "mysql://app:secretpw@db/agents",
    ],
)
def test_a_url_the_driver_cannot_parse_never_shows_its_password(url: str) -> None:
    with pytest.raises(UsageError) as caught:
        PostgresStore(url)
    assert "secret" not in str(caught.value) and "zzc" not in str(caught.value)


def test_an_agent_given_a_url_and_dropped_closes_its_connections(pg_schema_url: str) -> None:
    import gc

    import psycopg

    agent = Agent(pg_schema_url, provider=ScriptedProvider(["hi"]))
    assert agent.run("x", execution_id="e").answer == "hi"
    del agent
    gc.collect()  # no ResourceWarning (an error in this suite): the store's finalizer closed every connection
    with psycopg.connect(pg_schema_url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
        ).fetchone()
    assert row is not None and row[0] == 0


def test_the_postgres_scheme_opens_the_same_store_everywhere(
    pg_schema_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from click.testing import CliRunner

    from delite import Runtime
    from delite_cli.main import cli

    short = pg_schema_url.replace("postgresql://", "postgres://", 1)
    with Agent(short, provider=ScriptedProvider(["hello"])) as agent:
        assert isinstance(agent.store, PostgresStore)
        eid = agent.run("hi").execution_id
    with DataDir(short) as data:
        assert data.ids() == [eid]
    with Runtime(short) as rt:
        assert isinstance(rt.store, PostgresStore)
    out = CliRunner().invoke(cli, ["status", "--json", "--data-dir", short])
    assert out.exit_code == 0 and eid in out.output
    monkeypatch.setenv("DELITE_DATA_DIR", short)
    out = CliRunner().invoke(cli, ["inspect", eid[-6:]])
    assert out.exit_code == 0 and "hello" in out.output


def test_a_record_over_the_file_formats_limit_is_refused_as_on_files(tmp_path: Path, pg_schema_url: str) -> None:
    """Every record one store holds, the other can: the size limit of a frame holds on PostgreSQL too."""
    import zlib

    from delite.errors import RecordTooLargeError
    from delite.log._framing import MAX_RECORD_SIZE
    from delite.log.records import ExecutionStarted
    from delite.store._records import StoredPayload

    huge = ExecutionStarted(execution_id="big", agent_id="x" * MAX_RECORD_SIZE)
    files = FileStore(tmp_path / "data")
    with pytest.raises(RecordTooLargeError):
        files.create("big", [huge])
    store = PostgresStore(pg_schema_url)
    try:
        kept = Agent(store=store, provider=ScriptedProvider(["kept"])).run("hi")
        with pytest.raises(RecordTooLargeError):
            store.create("big", [huge])
        with store.claim(kept.execution_id) as log:
            head = log.head
            with pytest.raises(RecordTooLargeError):
                log.append([huge], expected=head)
        payload = b"{" + b" " * MAX_RECORD_SIZE + b"}"
        with pytest.raises(RecordTooLargeError):
            store.create_payloads("big", [StoredPayload(1, payload, zlib.crc32(payload))])
        assert store.list_ids() == [kept.execution_id] and store.head(kept.execution_id) == head
        assert DataDir(store).execution(kept.execution_id).state.status.value == "completed"
    finally:
        store.close()
