"""One log, one identity: a log reachable under a second id (a symlink, a hard link, a copy) is never advanced."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from delite import Agent, DataDir, FileStore, ScriptedProvider, tool
from delite.errors import LogIdentityError, StoreError
from delite.log.records import ExecutionStarted
from delite.store import _snapshot as snapshot


@tool
def bump(i: int) -> dict:
    """Count."""
    return {"n": i + 1}


def agent(data_dir: Path) -> Agent:
    return Agent(data_dir, provider=ScriptedProvider.tool_loop(2, "bump"), tools=[bump])


def log(data_dir: Path, eid: str) -> Path:
    return data_dir / "executions" / f"{eid}.log"


def symlink(data_dir: Path) -> None:
    log(data_dir, "alias").symlink_to(log(data_dir, "orig"))


def relative_symlink(data_dir: Path) -> None:
    log(data_dir, "alias").symlink_to("orig.log")


def hard_link(data_dir: Path) -> None:
    os.link(log(data_dir, "orig"), log(data_dir, "alias"))


def copy(data_dir: Path) -> None:
    shutil.copy2(log(data_dir, "orig"), log(data_dir, "alias"))


def copy_with_snapshot(data_dir: Path) -> None:
    copy(data_dir)
    snap = data_dir / "snapshots" / "orig.snap"
    if snap.exists():  # a finished execution: its snapshot copied too
        shutil.copy2(snap, data_dir / "snapshots" / "alias.snap")


ALIASES = [symlink, relative_symlink, hard_link, copy, copy_with_snapshot]


@pytest.fixture(params=["suspended", "completed"])
def original(request: pytest.FixtureRequest, data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An execution 'orig' left waiting (a claim could advance it) or finished (with a snapshot)."""
    monkeypatch.setattr(snapshot, "MIN_LOG_SIZE", 0)
    with agent(data_dir) as a:
        if request.param == "completed":
            assert a.run("go", execution_id="orig").status == "completed"
        else:
            started = ExecutionStarted(execution_id="orig", input="go", config=a.fingerprint())
            a.store.claim("orig", create=[started]).release()
    if request.param == "completed":
        assert (data_dir / "snapshots" / "orig.snap").exists()
    return data_dir


@pytest.mark.parametrize("make_alias", ALIASES)
def test_a_claim_under_an_alias_is_refused_and_writes_nothing(original: Path, make_alias: object) -> None:
    data_dir = original
    make_alias(data_dir)  # type: ignore[operator]
    before = log(data_dir, "orig").read_bytes()
    with agent(data_dir) as a:
        with pytest.raises(LogIdentityError) as info:
            a.run("go", execution_id="alias")
        assert isinstance(info.value, StoreError)
        assert info.value.filename == str(log(data_dir, "alias"))
        with pytest.raises(LogIdentityError):
            a.resume("alias")
        with pytest.raises(LogIdentityError):
            FileStore(data_dir).claim("alias", create=[ExecutionStarted(execution_id="alias", input="go")])
    assert log(data_dir, "orig").read_bytes() == before  # nothing was advanced under the alias


@pytest.mark.parametrize("make_alias", [symlink, copy])
def test_the_original_keeps_working_beside_a_symlink_or_a_copy(original: Path, make_alias: object) -> None:
    make_alias(original)  # type: ignore[operator]
    with agent(original) as a:
        assert a.run("go", execution_id="orig").status == "completed"


def test_a_hard_linked_log_is_refused_under_both_names(original: Path) -> None:
    hard_link(original)
    for eid in ("orig", "alias"):
        with agent(original) as a, pytest.raises(LogIdentityError, match="hard links"):
            a.resume(eid)
    log(original, "alias").unlink()
    with agent(original) as a:
        assert a.resume("orig").status == "completed"


@pytest.mark.parametrize("make_alias", [symlink, hard_link, copy])
def test_the_read_side_reports_an_alias_instead_of_showing_another_execution(
    original: Path, make_alias: object
) -> None:
    make_alias(original)  # type: ignore[operator]
    dd = DataDir(original)
    summaries = {s.id: s for s in dd.list(limit=None).items}
    if make_alias is hard_link:
        assert summaries["alias"].status == "unreadable"  # its records name 'orig'
        problems = {(p.kind, p.execution_id) for p in dd.health().problems}
        assert ("hard-linked", "alias") in problems
        assert ("hard-linked", "orig") in problems
    else:
        assert summaries["alias"].status == "unreadable"
        assert summaries["alias"].damage
        assert summaries["orig"].status != "unreadable"
    with pytest.raises(LogIdentityError):
        dd.execution("alias")
    with pytest.raises(LogIdentityError):
        FileStore(original).read("alias")
    assert not dd.health().healthy


def test_a_dangling_symlink_is_not_followed_to_create_a_log(data_dir: Path, tmp_path: Path) -> None:
    target = tmp_path / "elsewhere.log"
    (data_dir / "executions").mkdir(parents=True)
    log(data_dir, "new").symlink_to(target)
    with agent(data_dir) as a, pytest.raises(LogIdentityError):
        a.run("go", execution_id="new")
    assert not target.exists()
