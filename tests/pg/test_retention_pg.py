"""Retention and erasure on PostgreSQL: gc and delete through DataDir and the CLI, and a forced delete's owner."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from click.testing import CliRunner

from delite import Agent, DataDir, ScriptedProvider, delegate, tool
from delite.errors import ClaimLostError, ExecutionAlreadyClaimedError, SequenceConflictError
from delite.log.records import ExecutionStarted, ModelResponded
from delite.providers import call
from delite.store._postgres import PostgresStore
from delite_cli.main import cli


@pytest.fixture
def store(pg_url: str) -> Iterator[PostgresStore]:
    s = PostgresStore(pg_url)
    yield s
    s.close()


def _team(store: PostgresStore) -> Agent:
    child = Agent(store=store, agent_id="helper", provider=ScriptedProvider(["child done"]))

    @tool
    def ask(question: str) -> str:
        """Ask the helper."""
        return delegate(child, question).answer or ""

    return Agent(
        store=store, agent_id="boss", provider=ScriptedProvider([call("ask", question="q"), "ok"]), tools=[ask]
    )


def test_gc_and_delete_on_postgresql(store: PostgresStore, pg_url: str) -> None:
    assert _team(store).run("go", execution_id="boss-1", idempotency_key="job-1").answer == "ok"
    data = DataDir(store)
    fork = data.fork("boss-1", at=1, new_id="boss-fork")
    assert sorted(data.ids()) == ["boss-1", "boss-1:c1.0", fork, "boss-fork:c1.0"]  # the fork's own sub-agent

    dry = data.gc("0s", dry_run=True)
    # the fork is running (never resumed); its copy of the finished sub-agent is finished
    assert sorted(d.id for d in dry.deleted) == ["boss-1", "boss-1:c1.0", "boss-fork:c1.0"]
    assert "boss-1" in data.ids()  # a dry run removes nothing (its bytes: unknown to a listing here)

    result = CliRunner().invoke(
        cli,
        ["delete", "boss-1", "--children", "--json", "--data-dir", pg_url],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert [d["id"] for d in report["deleted"]] == ["boss-1:c1.0", "boss-1"]
    assert report["forks"] == ["boss-fork", "boss-fork:c1.0"]  # each holds a copy of what was deleted
    assert all(d["bytes"] > 0 for d in report["deleted"])
    assert data.ids() == ["boss-fork", "boss-fork:c1.0"]  # nothing of the fork's tree
    assert store.lookup_key("job-1") is None
    # The key binds again, to a new run with another input.
    again = Agent(store=store, provider=ScriptedProvider(["fine"])).run("other", idempotency_key="job-1")
    assert again.answer == "fine"
    assert data.gc("0s", statuses="running", force=True).executions == 1  # the fork
    assert data.gc("0s").executions == 2  # the new run, and the fork's copy of the finished sub-agent


def test_a_held_execution_is_refused_and_a_forced_delete_fences_its_owner(store: PostgresStore, pg_url: str) -> None:
    other = PostgresStore(pg_url)
    try:
        with other.claim("e-1", create=[ExecutionStarted(at=1.0, execution_id="e-1", input="x")]) as log:
            with pytest.raises(ExecutionAlreadyClaimedError):
                store.delete_execution("e-1", force=False)
            assert store.delete_execution("e-1", force=True).status == "running"
            assert not store.exists("e-1")
            with pytest.raises((ClaimLostError, SequenceConflictError)):
                log.append([ModelResponded(at=2.0, step=1, content="late")], expected=1)
        assert not store.exists("e-1")
    finally:
        other.close()
