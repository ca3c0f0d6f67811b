"""``delite copy SRC DST [ID...]``: executions move as their stored bytes, verified, never overwriting, resumable.

Run on real data directories (the CLI's scenarios: completed, waiting, in doubt, failed, hostile text), a
MemoryStore through the store seam, and a real ``delite copy`` process SIGKILLed midway and run again.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import msgspec
from conftest import Cli

from delite import Agent, ScriptedProvider
from delite.log.records import ExecutionStarted
from delite.store import FileStore, MemoryStore
from delite.store._copy import Outcome, copy_executions

ROOT = Path(__file__).resolve().parents[2]


def logs(data: Path) -> dict[str, bytes]:
    """Every execution's log bytes, by id."""
    return {p.name[: -len(".log")]: p.read_bytes() for p in sorted((data / "executions").glob("*.log"))}


def test_copy_everything_byte_for_byte_then_again_is_already_present(run: Cli, data: Path, tmp_path: Path) -> None:
    dst = tmp_path / "copy"
    result = run("copy", data, dst)
    assert result.exit_code == 0, result.output
    source = logs(data)
    assert logs(dst) == source  # whole files: header, frames, payloads and checksums
    for eid in source:
        assert f"copied           {eid} (" in result.output
    assert f"{len(source)} copied, 0 already present, 0 failed" in result.output
    for eid in source:  # the copy reads as the source does, through the read API too
        assert run.data(dst).execution(eid).detail == run.data(data).execution(eid).detail

    again = run("copy", data, dst, "--json")
    assert again.exit_code == 0, again.output
    body = json.loads(again.output)
    assert body["copied"] == [] and body["already_present"] == sorted(source) and body["failed"] == []
    assert (body["records"], body["bytes"]) == (0, 0)
    assert logs(dst) == source
    health = run("health", "--data-dir", dst)
    assert health.exit_code == 0, health.output


def test_named_ids_by_prefix_or_suffix(run: Cli, data: Path, tmp_path: Path) -> None:
    dst = tmp_path / "copy"
    result = run("copy", data, dst, "done", "approve-1", "--json")
    assert result.exit_code == 0, result.output
    body = json.loads(result.output)
    assert body["copied"] == ["done-1", "approve-1"]
    assert sorted(logs(dst)) == ["approve-1", "done-1"]
    assert body["records"] == sum(len(run.data(data).execution(e).records) for e in ("done-1", "approve-1"))
    missing = run("copy", data, dst, "nope")
    assert missing.exit_code == 1 and "not found" in missing.output
    assert sorted(logs(dst)) == ["approve-1", "done-1"]


def test_an_execution_with_other_records_is_never_overwritten(run: Cli, data: Path, tmp_path: Path) -> None:
    dst = tmp_path / "copy"
    other = Agent(dst, provider=ScriptedProvider(["something else"]), agent_id="other")
    other.run("not the same", execution_id="done-1")
    other.close()
    before = (dst / "executions" / "done-1.log").read_bytes()
    result = run("copy", data, dst)
    assert result.exit_code == 1, result.output
    assert "failed           done-1" in result.output and "nothing was overwritten" in result.output
    assert "ExecutionIdConflictError" not in result.output or "error:" in result.output
    assert (dst / "executions" / "done-1.log").read_bytes() == before
    copied = logs(dst)
    assert {k: v for k, v in copied.items() if k != "done-1"} == {k: v for k, v in logs(data).items() if k != "done-1"}
    as_json = run("copy", data, dst, "--json")
    assert as_json.exit_code == 1
    report, error = as_json.stdout.strip(), as_json.stderr.strip()
    body = json.loads(report)
    assert [f["execution_id"] for f in body["failed"]] == ["done-1"]
    assert body["failed"][0]["type"] == "ExecutionIdConflictError"
    assert json.loads(error)["error"]["type"] == "ExecutionIdConflictError"


def test_keys_and_pending_cancels_go_along(run: Cli, tmp_path: Path) -> None:
    from scenario_agent import build

    src, dst = tmp_path / "src", tmp_path / "dst"
    agent = build(str(src))
    agent.run("pay the invoice", execution_id="pay-1", idempotency_key="invoice-42")  # waits for approval
    agent.run("add 2 and 3", execution_id="add-1", idempotency_key="sum-1")
    agent.store.request_cancel("pay-1")
    agent.close()
    result = run("copy", src, dst, "--json")
    assert result.exit_code == 0, result.output
    body = json.loads(result.output)
    assert (body["keys"], body["cancels"]) == (2, 1)
    source, copy = FileStore(src), FileStore(dst)
    try:
        for key in ("invoice-42", "sum-1"):
            assert copy.lookup_key(key) == source.lookup_key(key) is not None
        assert copy.cancel_requested("pay-1") and not copy.cancel_requested("add-1")
    finally:
        source.close()
        copy.close()
    again = run("copy", src, dst, "--json")
    assert json.loads(again.output)["keys"] == 0 and json.loads(again.output)["cancels"] == 0
    # the copy is a working store: the same key finds the copied execution (it is not run again)
    agent = build(str(dst))
    response = agent.run("add 2 and 3", idempotency_key="sum-1")
    assert response.execution_id == "add-1" and response.answer == "The sum is 5."
    agent.close()
    assert logs(dst) == logs(src)


def test_an_execution_being_advanced_is_not_copied(run: Cli, data: Path, tmp_path: Path) -> None:
    dst = tmp_path / "copy"
    held = FileStore(data).claim("count-1")
    try:
        result = run("copy", data, dst)
    finally:
        held.release()
    assert result.exit_code == 1, result.output
    assert "failed           count-1" in result.output and "being advanced" in result.output
    assert "count-1" not in logs(dst)
    assert run("copy", data, dst).exit_code == 0
    assert logs(dst) == logs(data)


def test_a_damaged_source_is_not_copied(run: Cli, data: Path, tmp_path: Path) -> None:
    dst = tmp_path / "copy"
    path = data / "executions" / "done-1.log"
    raw = bytearray(path.read_bytes())
    raw[len(raw) // 2] ^= 0xFF  # a record before the tail
    path.write_bytes(bytes(raw))
    result = run("copy", data, dst, "--json")
    assert result.exit_code == 1
    assert json.loads(result.stdout)["failed"][0]["type"] == "LogCorruptError"
    assert "done-1" not in logs(dst) and len(logs(dst)) == len(logs(data)) - 1


def test_same_store_and_missing_source(run: Cli, data: Path, tmp_path: Path) -> None:
    same = run("copy", data, str(data) + "/.")
    assert same.exit_code == 2 and "same store" in same.output
    missing = run("copy", tmp_path / "nowhere", tmp_path / "dst")
    assert missing.exit_code == 1 and "does not exist" in missing.output
    assert not (tmp_path / "dst").exists()


def test_file_to_memory_and_back_is_byte_identical(data: Path, tmp_path: Path) -> None:
    source = FileStore(data)
    memory = MemoryStore()
    back = FileStore(tmp_path / "back")
    try:
        ids = source.list_ids()
        first = copy_executions(source, memory, ids)
        assert first.ids(Outcome.COPIED) == ids and not first.failed
        for eid in ids:
            assert memory.read_payloads(eid) == source.read_payloads(eid)
            assert bytes(memory.logs[eid]) == (data / "executions" / f"{eid}.log").read_bytes()
        second = copy_executions(memory, back, ids)
        assert second.ids(Outcome.COPIED) == ids and not second.failed
        assert logs(tmp_path / "back") == logs(data)
        third = copy_executions(memory, back, ids)
        assert third.ids(Outcome.PRESENT) == ids
    finally:
        source.close()
        back.close()


# -- a copy killed midway, then run again -----------------------------------------------------------------------------


def _many(src: Path, count: int) -> None:
    """``count`` executions: one real run, then copies of its records under other ids (fast, no model)."""
    agent = Agent(src, provider=ScriptedProvider(["x" * 20_000]), durability="off")
    agent.run("y" * 20_000, execution_id="e-00000")
    agent.close()
    store = FileStore(src, durability="off")
    try:
        records = store.read("e-00000").records
        first = records[0]
        assert isinstance(first, ExecutionStarted)
        for i in range(1, count):
            eid = f"e-{i:05d}"
            store.create(eid, [msgspec.structs.replace(first, execution_id=eid), *records[1:]])
    finally:
        store.close()


def test_a_copy_killed_midway_leaves_whole_executions_and_finishes_when_run_again(tmp_path: Path) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    total = 600
    _many(src, total)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "cli")])}
    env.pop("DELITE_DATA_DIR", None)
    argv = [sys.executable, "-m", "delite_cli", "copy", str(src), str(dst)]
    executions = dst / "executions"
    with subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) as proc:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and proc.poll() is None:
            if executions.is_dir() and len(os.listdir(executions)) >= 20:
                break
            time.sleep(0.001)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL, "the copy ended before it could be killed midway"
    source = logs(src)
    partial = logs(dst)
    assert 0 < len(partial) < total, len(partial)
    for eid, raw in partial.items():
        assert raw == source[eid], f"{eid} is half-present"  # whole or absent, never part of a log

    done = subprocess.run([*argv, "--json"], env=env, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    body = json.loads(done.stdout)
    assert sorted(body["already_present"]) == sorted(partial)
    assert len(body["copied"]) == total - len(partial) and body["failed"] == []
    assert logs(dst) == source
    health = subprocess.run(
        [sys.executable, "-m", "delite_cli", "health", "--data-dir", str(dst)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert health.returncode == 0, health.stdout + health.stderr
