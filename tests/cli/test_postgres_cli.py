"""The CLI and the read API on a real PostgreSQL (the throwaway cluster of ``pg_url``), chosen by a URL.

The URLs carry a password (the test cluster trusts loopback connections, so it is ignored by the server); no
output, error or ``repr`` may show it. ``delite copy`` moves executions file -> PostgreSQL -> file with every
byte and checksum identical; ``delite migrate`` shows and applies the schema's steps.
"""

from __future__ import annotations

import json
from pathlib import Path

import msgspec
import pytest
from conftest import Cli

from delite import Agent, DataDir, Runtime, ScriptedProvider
from delite.store import FileStore, open_store

pytest.importorskip("psycopg", reason="the postgres extra is not installed")

SECRET = "pw-7f3a9"  # noqa: S105 - a password the test server ignores; it must never be shown


def with_password(url: str) -> str:
    """``pg_url`` with a password in it: postgresql://postgres:SECRET@host:port/db."""
    return url.replace("://postgres@", f"://postgres:{SECRET}@", 1)


def logs(data: Path) -> dict[str, bytes]:
    """Every execution's log bytes, by id."""
    return {p.name[: -len(".log")]: p.read_bytes() for p in sorted((data / "executions").glob("*.log"))}


def test_a_url_opens_postgres_everywhere(pg_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from delite.store._postgres import PostgresStore

    url = with_password(pg_url)
    store = open_store(url)
    try:
        assert isinstance(store, PostgresStore)
        assert SECRET not in repr(store)
    finally:
        store.close()
    with Agent(url, provider=ScriptedProvider(["hello"]), agent_id="a") as agent:
        assert isinstance(agent.store, PostgresStore) and agent.owns_store
        eid = agent.run("hi").execution_id
    with DataDir(url) as data:
        assert data.ids() == [eid] and data.path is None and SECRET not in repr(data)
        assert data.execution(eid).detail.answer == "hello"
    monkeypatch.setenv("DELITE_DATA_DIR", url)
    with Agent(provider=ScriptedProvider(["again"]), agent_id="a") as agent:
        assert isinstance(agent.store, PostgresStore)
        assert agent.run("hi", execution_id=eid).answer == "hello"  # the same execution, found by id
    with Runtime() as rt:
        assert isinstance(rt.store, PostgresStore)


def test_every_read_command_on_a_url_never_shows_the_password(run: Cli, data: Path, pg_url: str) -> None:
    url = with_password(pg_url)
    copied = run("copy", data, url)
    assert copied.exit_code == 0, copied.output
    outputs = [copied.output]
    for argv in (
        ["status"],
        ["status", "--json"],
        ["inspect", "done-1"],
        ["steps", "count-1"],
        ["events", "done-1", "--json"],
        ["export", "hostile-1", "--format", "html"],
        ["tail", "count-1", "-f", "--timeout", "1"],
        ["health"],
        ["health", "--json"],
    ):
        result = run(*argv, "--data-dir", url)
        assert result.exit_code == 0, (argv, result.output)
        outputs.append(result.output)
    missing = run("inspect", "nope", "--data-dir", url)
    assert missing.exit_code == 1 and "not found" in missing.output and "directory" not in missing.output
    outputs.append(missing.output)
    assert all(SECRET not in out for out in outputs)
    assert "Healthy." in outputs[-3]
    assert json.loads(outputs[2])["total"] == len(logs(data))
    with DataDir(data) as files, DataDir(url) as pg:
        for eid in files.ids():  # the same, but for the size of a log file (a database has none)
            assert pg.execution(eid).detail == msgspec.structs.replace(files.execution(eid).detail, log_bytes=0)


def test_operating_on_a_url_with_and_without_the_app_agent(run: Cli, data: Path, pg_url: str) -> None:
    url = with_password(pg_url)
    assert run("copy", data, url, "approve-1", "input-1").exit_code == 0
    recorded = run("approve", "approve-1", "--data-dir", url)  # no --agent: recorded, resumed later
    assert recorded.exit_code == 0, recorded.output
    answered = run("submit-input", "input-1", "Paris", "--agent", "scenario_agent:build", "--data-dir", url)
    assert answered.exit_code == 0, answered.output
    assert "Booked Paris." in answered.output and SECRET not in recorded.output + answered.output
    with DataDir(url) as pg:
        assert pg.execution("input-1").detail.status == "completed"
    other = run("resume", "approve-1", "--agent", "scenario_agent:build", "--data-dir", pg_url + "_other")
    assert other.exit_code != 0  # another database: not found there (or not reachable), never this one


def test_copy_file_to_postgres_and_back_is_byte_identical(run: Cli, data: Path, pg_url: str, tmp_path: Path) -> None:
    url = with_password(pg_url)
    source = logs(data)
    there = run("copy", data, url, "--json")
    assert there.exit_code == 0, there.output
    body = json.loads(there.output)
    assert sorted(body["copied"]) == sorted(source) and body["failed"] == []
    assert SECRET not in there.output and body["destination"].startswith("postgresql://postgres:***@")
    files, pg = FileStore(data), open_store(url)
    try:
        for eid in source:
            assert pg.read_payloads(eid) == files.read_payloads(eid)  # the same bytes and checksums in PostgreSQL
    finally:
        files.close()
        pg.close()
    again = run("copy", data, url)
    assert again.exit_code == 0 and f"0 copied, {len(source)} already present" in again.output
    back = tmp_path / "back"
    home = run("copy", url, back)
    assert home.exit_code == 0, home.output
    assert logs(back) == source  # whole files, byte for byte
    same = run("copy", url, pg_url)
    assert same.exit_code == 2 and "same store" in same.output and SECRET not in same.output


def test_migrate_shows_and_applies_the_steps(run: Cli, pg_url: str) -> None:
    from delite.store._postgres import MIGRATIONS

    url = with_password(pg_url)
    before = run("migrate", "--data-dir", url, "--json")
    assert before.exit_code == 0, before.output
    body = json.loads(before.output)
    assert [m["number"] for m in body["migrations"]] == [m.number for m in MIGRATIONS]
    assert not any(m["applied"] for m in body["migrations"]) and body["applied"] == []
    shown = run("migrate", "--data-dir", url)
    assert f"{len(MIGRATIONS)} pending" in shown.output and "--apply" in shown.output
    applied = run("migrate", "--apply", "--data-dir", url)
    assert applied.exit_code == 0, applied.output
    assert "applied now" in applied.output and "Applied " in applied.output
    after = json.loads(run("migrate", "--apply", "--data-dir", url, "--json").output)
    assert all(m["applied"] for m in after["migrations"]) and after["applied"] == []
    assert "Nothing to apply" in run("migrate", "--apply", "--data-dir", url).output
    assert all(SECRET not in out for out in (before.output, shown.output, applied.output))
