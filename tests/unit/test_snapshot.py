"""A finished execution asked for again is answered from a snapshot verified against its log, never over it."""

from __future__ import annotations

import gc
import hashlib
import os
import zlib
from pathlib import Path
from typing import Any

import msgspec
import pytest

from delite import Agent, DataDir, FileStore, ScriptedProvider, tool
from delite.errors import LogCorruptError, UsageError
from delite.log import parse_log, read_log
from delite.log.records import ExecutionStarted, ModelResponded, RecordedToolCall, ToolStarted
from delite.state._fold import fold
from delite.state._outcome import outcome
from delite.store import _snapshot as snapshot
from delite.store._snapshot import SNAPSHOT_FORMAT

STEPS = 5


@tool
def bump(i: int) -> dict:
    """Count."""
    return {"n": i + 1}


@pytest.fixture(autouse=True)
def snapshot_small_logs(monkeypatch: pytest.MonkeyPatch) -> None:
    """The runs here are short; keep snapshots for them anyway."""
    monkeypatch.setattr(snapshot, "MIN_LOG_SIZE", 0)


def agent(data_dir: Path, steps: int = STEPS) -> Agent:
    return Agent(data_dir, provider=ScriptedProvider.tool_loop(steps, "bump"), tools=[bump])


@pytest.fixture
def finished(data_dir: Path) -> tuple[Path, Any]:
    with agent(data_dir) as a:
        response = a.run("go", execution_id="e1")
    assert response.status == "completed"
    return data_dir, response


def snapshot_path(data_dir: Path, eid: str = "e1") -> Path:
    return data_dir / "snapshots" / f"{eid}.snap"


def log_path(data_dir: Path, eid: str = "e1") -> Path:
    return data_dir / "executions" / f"{eid}.log"


def test_a_finished_run_leaves_a_snapshot_that_answers_the_next_run(
    finished: tuple[Path, Any], parses: list[int]
) -> None:
    data_dir, first = finished
    snap = snapshot_path(data_dir)
    assert snap.read_bytes().startswith(SNAPSHOT_FORMAT.encode() + b" ")
    with agent(data_dir) as a:
        again = a.run("go", execution_id="e1")
        resumed = a.resume("e1")
    assert again == first
    assert resumed == first
    assert parses == []  # answered without reading a single record


def test_the_snapshot_holds_what_the_fold_says(finished: tuple[Path, Any], parses: list[int]) -> None:
    data_dir, _ = finished
    store = FileStore(data_dir)
    with store.claim("e1") as log:
        assert log.outcome is not None
        assert parses == []
        records = log.records  # still there, decoded on first use
        assert parses == [log_path(data_dir).stat().st_size]
        assert records == read_log(str(log_path(data_dir))).records
        assert log.outcome == outcome(fold(records))


def test_without_a_snapshot_the_log_is_folded_and_the_snapshot_rebuilt(
    finished: tuple[Path, Any], parses: list[int]
) -> None:
    data_dir, first = finished
    snapshot_path(data_dir).unlink()
    with agent(data_dir) as a:
        assert a.run("go", execution_id="e1") == first
    assert len(parses) == 1
    assert snapshot_path(data_dir).exists()
    with agent(data_dir) as a:
        assert a.run("go", execution_id="e1") == first
    assert len(parses) == 1


def test_damage_in_the_log_is_never_hidden_by_a_snapshot(finished: tuple[Path, Any]) -> None:
    data_dir, _ = finished
    path = log_path(data_dir)
    data = bytearray(path.read_bytes())
    middle = parse_log(bytes(data)).offsets[len(parse_log(bytes(data)).offsets) // 2]
    data[middle + 20] ^= 0x01
    path.write_bytes(bytes(data))
    with agent(data_dir) as a, pytest.raises(LogCorruptError) as info:
        a.run("go", execution_id="e1")
    assert info.value.offset == middle


@pytest.mark.parametrize(
    "spoil",
    [
        pytest.param(lambda b: b[:-1] + bytes([b[-1] ^ 1]), id="damaged-body"),
        pytest.param(lambda b: b.replace(b'"answer":"done"', b'"answer":"dune"'), id="damaged-but-valid-json"),
        pytest.param(lambda b: b[: len(b) // 2], id="torn"),
        pytest.param(lambda b: b"", id="empty"),
        pytest.param(lambda b: b.replace(SNAPSHOT_FORMAT.encode(), b"delite-snapshot/9"), id="other-format"),
        pytest.param(lambda b: SNAPSHOT_FORMAT.encode() + b" zz\n{}", id="garbage"),
    ],
)
def test_a_bad_snapshot_is_a_miss(finished: tuple[Path, Any], parses: list[int], spoil: Any) -> None:
    data_dir, first = finished
    snap = snapshot_path(data_dir)
    good = snap.read_bytes()
    snap.write_bytes(spoil(good))
    with agent(data_dir) as a:
        assert a.run("go", execution_id="e1") == first
    assert len(parses) == 1
    assert snap.read_bytes() == good  # rewritten from the log


def test_a_snapshot_of_another_log_is_a_miss(data_dir: Path, parses: list[int]) -> None:
    with agent(data_dir, steps=2) as a:
        two = a.run("go", execution_id="two")
    with agent(data_dir, steps=3) as a:
        three = a.run("go", execution_id="three")
    snapshot_path(data_dir, "two").write_bytes(snapshot_path(data_dir, "three").read_bytes())
    with agent(data_dir, steps=2) as a:
        assert a.run("go", execution_id="two") == two
    assert len(parses) == 1
    assert two.steps != three.steps


def test_a_log_that_changed_since_the_snapshot_is_read_in_full(finished: tuple[Path, Any], parses: list[int]) -> None:
    data_dir, first = finished
    path = log_path(data_dir)
    with path.open("ab") as f:
        f.write(b"\x07\x00\x00")  # a torn tail: the log is no longer the one the snapshot describes
    with agent(data_dir) as a:
        assert a.run("go", execution_id="e1") == first
    assert len(parses) == 1
    assert read_log(str(path)).torn is None  # repaired by the claim
    with agent(data_dir) as a:
        assert a.run("go", execution_id="e1") == first
    assert len(parses) == 1  # the repaired log is byte for byte the one the snapshot describes again


def test_other_input_on_a_finished_execution_is_still_refused(finished: tuple[Path, Any]) -> None:
    data_dir, _ = finished
    with agent(data_dir) as a, pytest.raises(UsageError, match="another input"):
        a.run("something else", execution_id="e1")


def test_cancelled_executions_get_a_snapshot_on_their_next_claim(data_dir: Path, parses: list[int]) -> None:
    with agent(data_dir) as a:
        started = ExecutionStarted(execution_id="c1", input="go", config=a.fingerprint())
        a.store.claim("c1", create=[started]).release()
        cancelled = a.cancel("c1")
        assert cancelled.status == "cancelled"
        assert not snapshot_path(data_dir, "c1").exists()
        assert a.run("go", execution_id="c1") == cancelled
        assert snapshot_path(data_dir, "c1").exists()
        assert a.resume("c1") == cancelled


def test_a_suspended_execution_has_no_snapshot(data_dir: Path) -> None:
    @tool(retry_in_doubt=False)
    def risky(i: int) -> str:
        """Not safe to retry."""
        return "ok"

    with Agent(data_dir, provider=ScriptedProvider.tool_loop(1, "risky"), tools=[risky]) as a:
        # A process died inside the tool: its intent is in the log, its result is not.
        call = RecordedToolCall(id="c1.0", name="risky", arguments={"i": 0})
        started = ExecutionStarted(execution_id="s1", input="go", config=a.fingerprint())
        with a.store.claim("s1", create=[started]) as log:
            log.append([ModelResponded(step=1, tool_calls=[call]), ToolStarted(call_id="c1.0")])
        suspended = a.run("go", execution_id="s1")
        assert suspended.status == "suspended"
        assert suspended.suspend_reason is not None
        assert suspended.suspend_reason.kind == "in_doubt"
        assert not snapshot_path(data_dir, "s1").exists()
        done = a.resolve("s1", "c1.0", result="ok")
        assert done.status == "completed"
    assert snapshot_path(data_dir, "s1").exists()


def test_the_collector_is_back_on_after_a_failed_read_or_fold() -> None:
    assert gc.isenabled()
    with pytest.raises(LogCorruptError):
        fold([ToolStarted(call_id="nope")])
    assert gc.isenabled()
    gc.disable()
    try:
        fold([ExecutionStarted(execution_id="x")])
        assert not gc.isenabled()  # an application's choice is left alone
    finally:
        gc.enable()


def test_an_unwritable_snapshot_directory_costs_nothing_but_speed(data_dir: Path) -> None:
    data_dir.mkdir(parents=True)
    (data_dir / "snapshots").write_text("not a directory")
    with agent(data_dir) as a:
        first = a.run("go", execution_id="e1")
        assert a.run("go", execution_id="e1") == first
    assert first.status == "completed"
    assert os.path.isfile(data_dir / "snapshots")


def test_small_logs_and_logs_that_answer_for_themselves_get_no_snapshot(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch, parses: list[int]
) -> None:
    monkeypatch.setattr(snapshot, "MIN_LOG_SIZE", 64 * 1024)
    with agent(data_dir) as a:
        first = a.run("go", execution_id="e1")
        assert a.run("go", execution_id="e1") == first
    assert not snapshot_path(data_dir).exists()
    assert len(parses) == 1  # read and folded: a few records cost less than writing a snapshot file
    with agent(data_dir, steps=200) as a:
        big = a.run("go", execution_id="big")
    assert log_path(data_dir, "big").stat().st_size > 64 * 1024
    assert not snapshot_path(data_dir, "big").exists()  # its terminal record's tally tells the outcome
    with agent(data_dir, steps=200) as a:
        assert a.run("go", execution_id="big") == big
    assert len(parses) == 1  # answered by the tally, not read and folded


# -- a snapshot cannot lie -------------------------------------------------------------------------------------


def _write_snapshot(path: Path, body: dict[str, Any], fmt: bytes = SNAPSHOT_FORMAT.encode()) -> None:
    raw = msgspec.json.encode(body)
    path.write_bytes(fmt + b" " + f"{zlib.crc32(raw):08x}\n".encode() + raw)


def _forge(data_dir: Path, **changes: Any) -> dict[str, Any]:
    """A snapshot made by someone who can read the log and write snapshots, with a strong hash that matches."""
    snap = snapshot_path(data_dir)
    raw = snap.read_bytes()
    body = msgspec.json.decode(raw[raw.index(b"\n") + 1 :])
    data = log_path(data_dir).read_bytes()
    assert body["log_sha256"] == hashlib.sha256(data).hexdigest()
    body["outcome"].update(changes)
    _write_snapshot(snap, body)
    return body


@pytest.mark.parametrize(
    "changes",
    [
        pytest.param({"answer": "send the money to account 666"}, id="answer"),
        pytest.param({"output": {"approved": True}}, id="output"),
        pytest.param({"status": "cancelled", "answer": None}, id="status"),
        pytest.param({"input": "something else"}, id="input"),
        pytest.param({"execution_id": "other"}, id="execution-id"),
    ],
)
def test_a_forged_snapshot_bound_to_the_log_bytes_never_answers(
    finished: tuple[Path, Any], parses: list[int], changes: dict[str, Any]
) -> None:
    data_dir, first = finished
    forged = _forge(data_dir, **changes)
    report = DataDir(data_dir).health()
    assert ("snapshot-mismatch", "warning") in {(p.kind, p.severity) for p in report.problems}
    assert not report.healthy
    with agent(data_dir) as a:
        assert a.run("go", execution_id="e1") == first  # the log's answer, not the snapshot's
        assert a.resume("e1") == first  # from the snapshot the run rewrote
    assert len(parses) == 1
    assert snapshot.load(str(snapshot_path(data_dir)), log_path(data_dir).read_bytes()) == outcome(
        fold(read_log(str(log_path(data_dir))).records)
    )  # rewritten from the log
    _write_snapshot(snapshot_path(data_dir), forged)
    repaired = DataDir(data_dir).health(repair=True)
    assert "snapshot-mismatch" not in {p.kind for p in repaired.problems}
    assert not snapshot_path(data_dir).exists()


def test_a_forged_last_record_offset_never_answers(finished: tuple[Path, Any], parses: list[int]) -> None:
    data_dir, first = finished
    contents = read_log(str(log_path(data_dir)))
    for offset in (contents.offsets[0], contents.offsets[-2], contents.offsets[-1] + 1, 0, 10**9):
        snap = snapshot_path(data_dir)
        raw = snap.read_bytes()
        body = msgspec.json.decode(raw[raw.index(b"\n") + 1 :])
        body["last_offset"] = offset
        _write_snapshot(snap, body)
        assert snapshot.load(str(snap), log_path(data_dir).read_bytes(), execution_id="e1") is None
    with agent(data_dir) as a:
        assert a.run("go", execution_id="e1") == first


def test_a_crc_bound_snapshot_of_the_old_format_is_a_miss(finished: tuple[Path, Any], parses: list[int]) -> None:
    data_dir, first = finished
    data = log_path(data_dir).read_bytes()
    forged = msgspec.to_builtins(outcome(fold(read_log(str(log_path(data_dir))).records)))
    forged["answer"] = "forged"
    _write_snapshot(
        snapshot_path(data_dir),
        {"log_size": len(data), "log_crc": zlib.crc32(data), "outcome": forged},
        fmt=b"delite-snapshot/1",
    )
    with agent(data_dir) as a:
        assert a.run("go", execution_id="e1") == first
    assert len(parses) == 1
    assert snapshot_path(data_dir).read_bytes().startswith(SNAPSHOT_FORMAT.encode())  # rewritten, bound


def test_a_log_of_the_same_size_with_other_bytes_is_not_hidden_by_the_snapshot(finished: tuple[Path, Any]) -> None:
    data_dir, _ = finished
    path = log_path(data_dir)
    data = path.read_bytes()
    # Two frames swapped: every frame still verifies and the size is the same; only the hash of the bytes differs.
    contents = read_log(str(path))
    a, b = contents.offsets[1], contents.offsets[2]
    c = contents.offsets[3]
    swapped = data[:a] + data[b:c] + data[a:b] + data[c:]
    assert len(swapped) == len(data)
    assert snapshot.load(str(snapshot_path(data_dir)), swapped, execution_id="e1") is None
    assert snapshot.load(str(snapshot_path(data_dir)), data, execution_id="e1") is not None


def test_a_snapshot_that_is_a_fifo_is_a_miss_and_never_blocks(finished: tuple[Path, Any], parses: list[int]) -> None:
    data_dir, first = finished
    snap = snapshot_path(data_dir)
    snap.unlink()
    os.mkfifo(snap, 0o600)
    with agent(data_dir) as a:
        assert a.run("go", execution_id="e1") == first
    assert len(parses) == 1


@pytest.mark.parametrize("chunk", [1, 7, 13, 64, 1 << 20])
def test_saving_hashes_the_log_a_chunk_at_a_time_and_checks_the_same(
    finished: tuple[Path, Any], chunk: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    path, data, offsets, told = _told(finished)
    monkeypatch.setattr(snapshot, "_CHUNK", chunk)
    assert snapshot._digest_told(path, len(data), offsets[-1], told) == hashlib.sha256(data).hexdigest()
    # What the whole-file check refuses, the chunked one refuses.
    assert not snapshot._told_by_log(data, offsets[-1], msgspec.structs.replace(told, input="not the input"), None)
    _refused(path, len(data), offsets, told, None)


def _told(finished: tuple[Path, Any]) -> tuple[str, bytes, list[int], Any]:
    """The finished log's path, bytes and record offsets, and the outcome its records tell."""
    data_dir, _ = finished
    data = log_path(data_dir).read_bytes()
    contents = parse_log(data)
    return str(log_path(data_dir)), data, contents.offsets, outcome(fold(contents.records))


def _refused(path: str, size: int, offsets: list[int], told: Any, running: Any) -> None:
    """Saving refuses another size, another last record, another answer and another input."""
    last = offsets[-1]
    assert snapshot._digest_told(path, size - 1, last, told, running) is None
    assert snapshot._digest_told(path, size + 1, last, told, running) is None
    assert snapshot._digest_told(path, size, offsets[-2], told, running) is None
    assert snapshot._digest_told(path, size, last, msgspec.structs.replace(told, answer="other"), running) is None
    assert (
        snapshot._digest_told(path, size, last, msgspec.structs.replace(told, input="not the input"), running) is None
    )


def test_saving_with_the_writers_running_hash_reads_only_the_first_and_last_frames(
    finished: tuple[Path, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The hash the writer kept as it appended is the file's; the records told are still read back and checked."""
    path, data, offsets, told = _told(finished)
    running = hashlib.sha256(data)
    read: list[int] = []
    real_pread = os.pread

    def counted(fd: int, n: int, offset: int) -> bytes:
        read.append(n)
        return real_pread(fd, n, offset)

    monkeypatch.setattr(snapshot.os, "pread", counted)
    assert snapshot._digest_told(path, len(data), offsets[-1], told, running) == running.hexdigest()
    assert sum(read) < len(data) // 2  # the header, the first frame and the last one, never the middle
    assert running.hexdigest() == hashlib.sha256(data).hexdigest()  # the writer's hash is not finalised
    _refused(path, len(data), offsets, told, running)  # what the reading check refuses, this one refuses


def test_a_finished_run_saves_its_snapshot_from_the_writers_hash(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch, parses: list[int]
) -> None:
    hashed: list[int] = []
    real = snapshot._digest_told

    def counted(log: str, size: int, last: int, told: Any, running: Any = None) -> Any:
        hashed.append(running is not None)
        return real(log, size, last, told, running)

    monkeypatch.setattr(snapshot, "_digest_told", counted)
    with agent(data_dir, steps=40) as a:
        assert a.run("go", execution_id="e1").status == "completed"
    assert hashed == [True]
    parses.clear()
    with agent(data_dir, steps=40) as a:
        assert a.run("go", execution_id="e1").status == "completed"  # answered from the snapshot
    assert parses == []
