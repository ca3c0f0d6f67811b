"""One bad entry never takes down a data directory: FIFOs, directories, links, sockets, unreadable and foreign logs."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import tempfile
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from delite import Agent, DataDir, Runtime, ScriptedProvider, tool
from delite.errors import StoreError

NOBODY = 65534


@tool
def bump(i: int) -> dict:
    """Count."""
    return {"n": i + 1}


def agent(data_dir: Path, agent_id: str = "default") -> Agent:
    return Agent(data_dir, provider=ScriptedProvider.tool_loop(1, "bump"), tools=[bump], agent_id=agent_id)


def fifo(path: Path) -> None:
    os.mkfifo(path, 0o600)


def directory(path: Path) -> None:
    path.mkdir(mode=0o700)
    (path / "inside").write_text("x")


def symlink_to_fifo(path: Path) -> None:
    target = path.parent.parent / "a-fifo"
    os.mkfifo(target, 0o600)
    path.symlink_to(target)


def dangling_symlink(path: Path) -> None:
    path.symlink_to(path.parent / "nowhere")


def unix_socket(path: Path) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(path))
    return sock  # closed by the fixture


def garbage(path: Path) -> None:
    path.write_bytes(b"\x00\x01not a log at all")
    path.chmod(0o600)


BAD: list[Callable[[Path], Any]] = [fifo, directory, symlink_to_fifo, dangling_symlink, unix_socket, garbage]


@pytest.fixture(params=BAD, ids=lambda f: f.__name__)
def bad(request: pytest.FixtureRequest, data_dir: Path) -> Iterator[Path]:
    """A data directory with one good finished execution and one bad entry named like a log, 'bad'."""
    with agent(data_dir) as a:
        assert a.run("go", execution_id="good").status == "completed"
    path = data_dir / "executions" / "bad.log"
    made = request.param(path)
    try:
        yield data_dir
    finally:
        if isinstance(made, socket.socket):
            made.close()


def test_listing_shows_the_bad_entry_unreadable_with_the_reason_and_the_rest_as_usual(bad: Path) -> None:
    items = {s.id: s for s in DataDir(bad).list(limit=None).items}
    assert items["good"].status == "completed"
    assert items["bad"].status == "unreadable"
    assert items["bad"].damage
    again = {s.id: s.status for s in DataDir(bad).list(limit=None).items}  # from the index this time
    assert again == {"good": "completed", "bad": "unreadable"}


def test_health_names_the_bad_entry_and_checks_the_rest(bad: Path) -> None:
    report = DataDir(bad).health()
    assert not report.healthy
    named = [p for p in report.problems if p.execution_id == "bad"]
    assert named
    assert {p.severity for p in named} == {"error"}
    assert not [p for p in report.problems if p.execution_id == "good"]


def test_reading_the_bad_entry_is_a_store_error_and_never_blocks(bad: Path) -> None:
    with pytest.raises(StoreError) as info:
        DataDir(bad).execution("bad")
    assert info.value.filename == str(bad / "executions" / "bad.log")
    with pytest.raises(StoreError):
        list(DataDir(bad).follow("bad", timeout=0))
    with agent(bad) as a, pytest.raises(StoreError):
        a.resume("bad")
    with agent(bad) as a:
        assert a.run("go", execution_id="good").status == "completed"  # the others are untouched


def test_the_runtime_starts_new_executions_beside_a_bad_entry(bad: Path) -> None:
    with Runtime(bad) as rt:
        worker = Agent(bad, runtime=rt, agent_id="worker", provider=ScriptedProvider.tool_loop(1, "bump"), tools=[bump])
        eid = rt.go(worker, "go")
        assert rt.wait(eid, timeout=60).status == "completed"


def test_the_cli_lists_and_checks_a_directory_with_a_bad_entry(bad: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from delite_cli.main import cli

    monkeypatch.setenv("COLUMNS", "120")
    runner = CliRunner()
    status = runner.invoke(cli, ["status", "--data-dir", str(bad)], catch_exceptions=False)
    assert status.exit_code == 0, status.output
    assert "unreadable" in status.output
    assert "good" in status.output
    assert "bad:" in status.output  # the reason, on its own line
    as_json = runner.invoke(cli, ["status", "--data-dir", str(bad), "--json"], catch_exceptions=False)
    assert as_json.exit_code == 0
    found = {e["id"]: e for e in json.loads(as_json.stdout)["executions"]}
    assert found["bad"]["status"] == "unreadable"
    assert found["bad"]["damage"]
    health = runner.invoke(cli, ["health", "--data-dir", str(bad)], catch_exceptions=False)
    assert health.exit_code == 1
    assert "bad" in health.output


def test_a_log_owned_by_someone_else_is_named_by_health(data_dir: Path) -> None:
    with agent(data_dir) as a:
        a.run("go", execution_id="mine")
        a.run("go", execution_id="theirs")
    os.chown(data_dir / "executions" / "theirs.log", NOBODY, NOBODY)
    report = DataDir(data_dir).health()
    assert ("foreign-owner", "theirs") in {(p.kind, p.execution_id) for p in report.problems}
    assert not [p for p in report.problems if p.execution_id == "mine"]


# -- as another user: logs that cannot be read -----------------------------------------------------------------

CHILD = textwrap.dedent(
    """
    import json, os, sys
    import delite.store._file_health, delite.store._index, delite.engine._agent, delite.store._file, delite.runtime
    import filelock, sqlite3, msgspec, decimal, hashlib, secrets, warnings, asyncio, concurrent.futures
    from delite import Agent, DataDir, Runtime, ScriptedProvider, tool
    os.setgroups([]); os.setgid({uid}); os.setuid({uid})

    @tool
    def bump(i: int) -> dict:
        \"\"\"Count.\"\"\"
        return {{"n": i + 1}}

    data = sys.argv[1]
    dd = DataDir(data)
    out = {{"list": {{s.id: [s.status, s.damage] for s in dd.list(limit=None).items}}}}
    out["health"] = sorted((p.kind, p.execution_id) for p in dd.health().problems if p.execution_id)
    with Runtime(data) as rt:
        worker = Agent(data, runtime=rt, agent_id="worker", provider=ScriptedProvider.tool_loop(1, "bump"), tools=[bump])
        out["go"] = rt.wait(rt.go(worker, "go"), timeout=60).status
    print(json.dumps(out))
    """
)


@pytest.fixture
def shared_tmp() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="delite-bad-"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0, reason="needs root to drop to another user")
def test_unreadable_and_foreign_logs_never_stop_another_user(shared_tmp: Path, python: str) -> None:
    data = shared_tmp / "data"
    with agent(data, agent_id="worker") as a:
        a.run("go", execution_id="good")
        a.run("go", execution_id="locked")
        a.run("go", execution_id="foreign")
    for root, dirs, files in os.walk(data):
        for name in (*dirs, *files):
            os.chown(os.path.join(root, name), NOBODY, NOBODY)
    os.chown(data, NOBODY, NOBODY)
    (data / "executions" / "locked.log").chmod(0o000)  # the user's own log, made unreadable
    os.chown(data / "executions" / "foreign.log", 0, 0)  # someone else's, private to them
    done = subprocess.run(
        [python, "-c", CHILD.format(uid=NOBODY), str(data)], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["list"]["good"][0] == "completed"
    for eid in ("locked", "foreign"):
        status, damage = out["list"][eid]
        assert status == "unreadable"
        assert "Permission denied" in damage
        assert ["unreadable", eid] in out["health"]
    assert ["foreign-owner", "foreign"] in out["health"]
    assert out["go"] == "completed"


@pytest.mark.parametrize("name", ["index.sqlite3", "index.sqlite3-journal", "index.sqlite3-wal"])
@pytest.mark.parametrize("make", [fifo, directory], ids=["fifo", "directory"])
def test_an_index_file_that_is_not_a_regular_file_never_blocks_listing_or_health(
    data_dir: Path, name: str, make: Callable[[Path], Any]
) -> None:
    with agent(data_dir) as a:
        assert a.run("go", execution_id="good").status == "completed"
    for suffix in ("", "-journal", "-wal", "-shm"):
        (data_dir / f"index.sqlite3{suffix}").unlink(missing_ok=True)
    make(data_dir / name)
    dd = DataDir(data_dir)
    assert [s.id for s in dd.list().items] == ["good"]
    report = dd.health()
    assert "index-unusable" in {p.kind for p in report.problems}
    assert dd.health(repair=True).problems
    with Runtime(data_dir) as rt:
        worker = Agent(
            data_dir, runtime=rt, agent_id="worker", provider=ScriptedProvider.tool_loop(1, "bump"), tools=[bump]
        )
        assert rt.wait(rt.go(worker, "go"), timeout=60).status == "completed"


def test_a_snapshot_or_key_file_that_is_a_fifo_never_blocks(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from delite.store import _snapshot as snapshot

    monkeypatch.setattr(snapshot, "MIN_LOG_SIZE", 0)
    with agent(data_dir) as a:
        first = a.run("go", execution_id="good")
        keyed = a.run("go", idempotency_key="k")
    snap = data_dir / "snapshots" / "good.snap"
    snap.unlink()
    fifo(snap)
    (key,) = (data_dir / "keys").iterdir()
    key.unlink()
    fifo(key)
    with agent(data_dir) as a:
        assert a.run("go", execution_id="good") == first  # the snapshot is a miss: the log answers
        with pytest.raises(StoreError) as info:
            a.run("go", idempotency_key="k")  # this key cannot be read: refused, never blocked on
        assert info.value.filename == str(key)
    assert keyed.status == "completed"
    assert not DataDir(data_dir).health().healthy
