"""Every file delite creates is 0600 and every directory 0700, whatever the umask; health warns about looser ones."""

from __future__ import annotations

import os
import sqlite3
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from delite import Agent, DataDir, ScriptedProvider, tool
from delite.store import _snapshot as snapshot
from delite.store._index import ListingIndex


@tool
def bump(i: int) -> dict:
    """Count."""
    return {"n": i + 1}


@pytest.fixture(params=[0o000, 0o002, 0o022, 0o077], ids=["umask-000", "umask-002", "umask-022", "umask-077"])
def umask(request: pytest.FixtureRequest) -> Iterator[int]:
    old = os.umask(request.param)
    try:
        yield request.param
    finally:
        os.umask(old)


def modes(root: Path) -> dict[str, int]:
    out = {".": stat.S_IMODE(root.stat().st_mode)}
    for path in root.rglob("*"):
        out[str(path.relative_to(root))] = stat.S_IMODE(path.lstat().st_mode)
    return out


def exercise(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Make delite create every kind of file it has: logs, locks, keys, markers, snapshots, the index."""
    monkeypatch.setattr(snapshot, "MIN_LOG_SIZE", 0)
    with Agent(data_dir, provider=ScriptedProvider.tool_loop(2, "bump"), tools=[bump]) as a:
        a.run("go", execution_id="e1")
        a.run("go", execution_id="e1")  # answered from the snapshot written by the first run
        a.run("keyed", idempotency_key="key-1")
        a.store.request_cancel("e2")
    dd = DataDir(data_dir)
    dd.fork("e1", at=1, new_id="f1")
    dd.list()
    dd.health()


def test_everything_delite_creates_is_private_whatever_the_umask(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch, umask: int
) -> None:
    exercise(data_dir, monkeypatch)
    found = modes(data_dir)
    kinds = {Path(p).parts[0] for p in found if p != "."}
    assert {"executions", "claims", "signals", "keys", "snapshots", "index.sqlite3"} <= kinds
    assert (data_dir / "snapshots" / "e1.snap").exists()
    assert (data_dir / "signals" / "e2.cancel").exists()
    loose = {
        p: oct(m)
        for p, m in found.items()
        if m != (0o700 if (data_dir / p).is_dir() and not (data_dir / p).is_symlink() else 0o600)
    }
    assert loose == {}, f"umask {umask:03o}"
    assert [p.kind for p in DataDir(data_dir).health().problems if p.kind == "permissions"] == []


def test_the_index_journal_takes_the_mode_of_the_index(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch, umask: int
) -> None:
    exercise(data_dir, monkeypatch)
    index = ListingIndex.open(DataDir(data_dir).layout)
    try:
        assert not index.in_memory
        index.conn.execute("BEGIN IMMEDIATE")
        index.conn.execute("DELETE FROM executions")
        journals = [p for p in data_dir.iterdir() if p.name.startswith("index.sqlite3-")]
        assert journals  # a write in progress has a journal next to the database
        assert {stat.S_IMODE(p.stat().st_mode) for p in journals} == {0o600}
        index.conn.execute("ROLLBACK")
    finally:
        index.close()


def test_a_data_directory_that_exists_is_left_as_it_is(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data_dir.mkdir(mode=0o750)
    data_dir.chmod(0o750)
    exercise(data_dir, monkeypatch)
    assert stat.S_IMODE(data_dir.stat().st_mode) == 0o750  # the user's choice, reported by health
    problems = [p for p in DataDir(data_dir).health().problems if p.kind == "permissions"]
    assert [p.path for p in problems] == [str(data_dir)]
    assert "0750" in problems[0].detail


def test_health_warns_about_loose_files_and_directories(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    exercise(data_dir, monkeypatch)
    assert DataDir(data_dir).health().healthy
    (data_dir / "executions" / "e1.log").chmod(0o644)
    (data_dir / "snapshots" / "e1.snap").chmod(0o666)
    (data_dir / "keys").chmod(0o755)
    (data_dir / "index.sqlite3").chmod(0o604)
    report = DataDir(data_dir).health()
    assert not report.healthy
    problems = [p for p in report.problems if p.kind == "permissions"]
    assert {p.severity for p in problems} == {"warning"}
    text = "\n".join(f"{p.path}: {p.detail}" for p in problems)
    assert str(data_dir / "keys") in text
    assert "0755" in text
    for name, mode in (("executions/e1.log", "0644"), ("snapshots/e1.snap", "0666"), ("index.sqlite3", "0604")):
        assert f"{name} ({mode})" in text
    assert "4 files" not in text  # three files and one directory
    assert "3 files" in text


def test_the_listing_still_works_when_the_index_cannot_be_created_private(data_dir: Path) -> None:
    with Agent(data_dir, provider=ScriptedProvider.tool_loop(1, "bump"), tools=[bump]) as a:
        a.run("go", execution_id="e1")
    with sqlite3.connect(data_dir / "index.sqlite3"):
        pass  # an index file made by someone else, 0644 under the test's umask
    assert DataDir(data_dir).list().total == 1


def test_health_reports_an_index_row_that_its_unchanged_log_does_not_say(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    exercise(data_dir, monkeypatch)
    dd = DataDir(data_dir)
    assert dd.list().total >= 3
    assert dd.health().healthy  # every row agrees with its log
    with sqlite3.connect(data_dir / "index.sqlite3") as conn:
        (blob,) = conn.execute("SELECT summary FROM executions WHERE id = 'e1'").fetchone()
        forged = bytes(blob).replace(b'"status":"completed"', b'"status":"running"')
        assert forged != bytes(blob)
        conn.execute("UPDATE executions SET summary = ?, status = 'running' WHERE id = 'e1'", (forged,))
    report = dd.health()
    assert ("index-mismatch", "warning") in {(p.kind, p.severity) for p in report.problems}
    assert "e1" in next(p.detail for p in report.problems if p.kind == "index-mismatch")
    assert not report.healthy
    repaired = dd.health(repair=True)
    assert "index-mismatch" not in {p.kind for p in repaired.problems}
    assert {s.id: s.status for s in dd.list().items}["e1"] == "completed"
