"""Fold checkpoints of unfinished executions: a claim folds only the tail, and never trusts one over the log.

Real agents with the scripted provider and real bytes on disk. An execution is interrupted in process by a
tool raising ``KeyboardInterrupt`` (the log then ends inside the tool, its call in doubt, as after a kill);
``tests/crash/test_checkpoint_kill.py`` does it with real SIGKILLs.
"""

from __future__ import annotations

import base64
import gc
import hashlib
import itertools
import os
import shutil
import struct
import tempfile
import weakref
import zlib
from pathlib import Path
from typing import Any

import msgspec
import pytest

from delite import Agent, DataDir, ScriptedProvider, tool
from delite._gc import settled
from delite.errors import LogCorruptError
from delite.log import parse_log, read_log
from delite.log._codec import as_read
from delite.log.records import (
    ChildSuspended,
    ConfigFingerprint,
    DecisionRecorded,
    DriftAccepted,
    ExecutionFailed,
    ExecutionResumed,
    ExecutionStarted,
    ExecutionSuspended,
    InDoubtResolved,
    InputRequested,
    InputSubmitted,
    MCPCatalogRecorded,
    MCPToolEntry,
    ModelCallFailed,
    ModelResponded,
    OutputRejected,
    PendingCall,
    Record,
    RecordedToolCall,
    SuspendReason,
    ToolFinished,
    ToolSpec,
    ToolStarted,
    Usage,
)
from delite.state import ExecutionState, fold
from delite.state._model import history_crc
from delite.store import FileStore, _file, _index
from delite.store import _checkpoint as checkpoint
from delite.store._copy import copy_executions
from delite.store._derive import summary_of_log
from delite.store._file import FileExecutionLog
from delite.store._layout import Layout

STEPS = 200
STOP = 150  # the tool call the run is interrupted in (its log is then ~160 KiB: checkpointed)
PAD = "x" * 600


def _work(runs: list[int], stop: int | None) -> Any:
    @tool
    def work(i: int) -> dict[str, Any]:
        """Do one step of work."""
        if i == stop:
            raise KeyboardInterrupt
        runs.append(i)
        return {"i": i, "pad": PAD, "k": {"1": 1.5}}

    return work


def interrupted(data_dir: Path, eid: str = "e", *, text: str = "go", stop: int = STOP, steps: int = STEPS) -> None:
    """Run an execution until it is interrupted inside tool call ``stop`` (its log ends in doubt)."""
    runs: list[int] = []
    agent = Agent(data_dir, provider=ScriptedProvider.tool_loop(steps, "work"), tools=[_work(runs, stop)])
    with agent, pytest.raises(KeyboardInterrupt):
        agent.run(text, execution_id=eid)


def whole(data_dir: Path, eid: str = "e") -> ExecutionState:
    return fold(read_log(str(data_dir / "executions" / f"{eid}.log")).records)


def claimed(data_dir: Path, eid: str = "e") -> tuple[ExecutionState, bool]:
    """The state a claim gives, and whether it came from a checkpoint."""
    with FileStore(data_dir).claim(eid) as log:
        assert isinstance(log, FileExecutionLog)
        used = log._checkpointed is not None
        return log.state(), used


def same(a: ExecutionState, b: ExecutionState) -> None:
    assert a == b
    assert a._results == b._results
    assert a._fork_resumes == b._fork_resumes


@pytest.fixture(scope="module")
def crashed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("crashed")
    interrupted(d)
    return d


@pytest.fixture
def data(crashed: Path, tmp_path: Path) -> Path:
    d = tmp_path / "data"
    shutil.copytree(crashed, d)
    return d


@pytest.fixture
def saved(data: Path) -> Path:
    """The fixture's log with a checkpoint of three saves (one written whole, two appended), at known records."""
    log = read_log(str(data / "executions" / "e.log"))
    raw = (data / "executions" / "e.log").read_bytes()
    writer = checkpoint.CheckpointWriter(str(ckpt(data)), "e")
    n = len(log.records)
    state = ExecutionState()
    done = 0
    for k in (n * 6 // 10, n * 3 // 4, n * 9 // 10):
        state = fold(log.records[done:k], state)
        done = k
        assert writer.save(log.offsets[k], hashlib.sha256(raw[: log.offsets[k]]), state)
    assert len(_saves(ckpt(data))) == 3
    return data


def ckpt(d: Path, eid: str = "e") -> Path:
    return d / "checkpoints" / f"{eid}.ckpt"


def verify(d: Path, eid: str = "e") -> checkpoint.Loaded | str:
    fd = os.open(d / "executions" / f"{eid}.log", os.O_RDONLY)
    try:
        return checkpoint.verify(str(ckpt(d, eid)), fd, eid)
    finally:
        os.close(fd)


def covered(d: Path) -> int:
    found = verify(d)
    assert isinstance(found, checkpoint.Loaded)
    return found.size


# -- a hit ---------------------------------------------------------------------------------------------------


def test_an_interrupted_run_leaves_a_checkpoint_of_a_prefix_of_its_log(data: Path) -> None:
    size = (data / "executions" / "e.log").stat().st_size
    assert ckpt(data).exists()
    assert (ckpt(data).stat().st_mode & 0o777) == 0o600
    assert checkpoint.MIN_LOG_SIZE <= covered(data) <= size
    assert size - covered(data) <= checkpoint.INTERVAL + 4096  # the last save is at most an interval and a step old


def test_a_first_record_longer_than_a_read_chunk_is_read_whole(tmp_path: Path) -> None:
    """The log is hashed through a small buffer; the first record (here a 200 KB request) is still read back."""
    interrupted(tmp_path, text="t" * 200_000)
    first = read_log(str(tmp_path / "executions" / "e.log")).offsets[1]
    assert first > 2 * checkpoint._READ_CHUNK
    assert isinstance(verify(tmp_path), checkpoint.Loaded)
    state, used = claimed(tmp_path)
    assert used
    same(state, whole(tmp_path))


def test_a_claim_from_a_checkpoint_folds_what_the_whole_log_folds(data: Path) -> None:
    state, used = claimed(data)
    assert used
    same(state, whole(data))
    with FileStore(data).claim("e") as log:
        contents = read_log(str(data / "executions" / "e.log"))
        assert log.head == len(contents.records)
        assert log.first_record() == contents.records[0]
        assert log.finished_outcome() is None
        assert log.records == contents.records  # read whole only when asked for
        same(log.state(), whole(data))  # a second fold of the same claim: from the records


def test_resuming_from_a_checkpoint_runs_the_interrupted_call_once_and_ends_as_without_one(
    data: Path, tmp_path: Path
) -> None:
    bare = tmp_path / "bare"
    shutil.copytree(data, bare)
    shutil.rmtree(bare / "checkpoints")
    answers = []
    for d in (data, bare):
        runs: list[int] = []
        with Agent(d, provider=ScriptedProvider.tool_loop(STEPS, "work"), tools=[_work(runs, None)]) as agent:
            r = agent.resume("e")
        assert r.status == "completed"
        assert runs[0] == STOP and len(runs) == STEPS - STOP  # the call in doubt once more, then the rest
        answers.append((r.answer, r.steps, r.usage, whole(d).messages))
        assert not ckpt(d).exists()  # a finished run keeps a snapshot, not a checkpoint
    assert answers[0] == answers[1]


def test_a_run_resumed_without_a_checkpoint_writes_one_at_its_first_append(data: Path) -> None:
    ckpt(data).unlink()
    before = (data / "executions" / "e.log").stat().st_size
    interrupted_again: list[int] = []
    work = _work(interrupted_again, STOP + 5)
    agent = Agent(data, provider=ScriptedProvider.tool_loop(STEPS, "work"), tools=[work])
    with agent, pytest.raises(KeyboardInterrupt):
        agent.resume("e")
    assert covered(data) > before
    state, used = claimed(data)
    assert used
    same(state, whole(data))


def test_checkpoints_are_saved_at_a_fixed_interval_and_write_what_changed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    saves: list[tuple[int, int, int]] = []  # the log's size, then the checkpoint file's inode and size
    real = checkpoint.CheckpointWriter.save

    def counted(self: checkpoint.CheckpointWriter, size: int, digest: Any, state: ExecutionState) -> bool:
        done = real(self, size, digest, state)
        st = os.stat(self.path)
        saves.append((size, st.st_ino, st.st_size))
        return done

    monkeypatch.setattr(checkpoint.CheckpointWriter, "save", counted)
    interrupted(tmp_path, stop=STEPS - 1)
    assert len(saves) >= 6
    assert saves[0][0] >= checkpoint.MIN_LOG_SIZE
    for (a, _, _), (b, _, _) in itertools.pairwise(saves):
        assert checkpoint.INTERVAL <= b - a <= checkpoint.INTERVAL + 4096  # a step of this run is ~1.3 KiB
    written = saves[0][2]
    whole_size = saves[0][2]
    for (_, ino_a, size_a), (_, ino_b, size_b) in itertools.pairwise(saves):
        written += size_b - size_a if ino_a == ino_b else size_b  # appended, or written whole
        whole_size = whole_size if ino_a == ino_b else size_b
        assert size_b <= 2 * whole_size + 4 * checkpoint.INTERVAL  # within about twice what it held when whole
    whole = len({ino for _, ino, _ in saves})
    assert whole <= 4  # written whole once, then again each time it doubled
    final = saves[-1][2]
    assert written <= 3 * final  # linear in what it holds, not one whole state per save
    assert final <= 2.5 * (tmp_path / "executions" / "e.log").stat().st_size


def test_a_short_run_writes_none(tmp_path: Path) -> None:
    interrupted(tmp_path, stop=5)
    assert not ckpt(tmp_path).exists()


# -- misses: the log is read whole, as without a checkpoint ------------------------------------------------------


def _frames(d: Path) -> tuple[bytearray, list[int]]:
    data = bytearray((d / "executions" / "e.log").read_bytes())
    return data, parse_log(bytes(data)).offsets


def test_an_edit_the_frame_checksums_cannot_see_is_a_miss(data: Path) -> None:
    data_bytes, offsets = _frames(data)
    # Rewrite one tool result inside the covered prefix, with checksums that match: only the hash can tell.
    finished = b'{"kind":"tool-finished"'
    at = next(o for o in offsets if o < covered(data) and data_bytes[o + 12 : o + 12 + len(finished)] == finished)
    length = struct.unpack_from("<I", data_bytes, at)[0]
    payload = bytes(data_bytes[at + 12 : at + 12 + length]).replace(b"xxxx", b"yyyy", 1)
    struct.pack_into("<I", data_bytes, at + 8, zlib.crc32(payload))
    data_bytes[at + 12 : at + 12 + length] = payload
    (data / "executions" / "e.log").write_bytes(bytes(data_bytes))
    assert verify(data) == "stale"
    state, used = claimed(data)
    assert not used
    same(state, whole(data))
    assert any("yyyy" in str(m.get("content")) for m in state.messages)


def _damage_is_reported_at(data: Path, at: int) -> None:
    """Flip one payload bit of the frame at ``at``: the claim reports damage there, checkpoint or not."""
    data_bytes, _ = _frames(data)
    data_bytes[at + 20] ^= 0x01
    (data / "executions" / "e.log").write_bytes(bytes(data_bytes))
    with pytest.raises(LogCorruptError) as caught:
        FileStore(data).claim("e")
    assert caught.value.offset == at


def test_damage_in_the_covered_prefix_is_still_reported(data: Path) -> None:
    _, offsets = _frames(data)
    at = offsets[len(offsets) // 2]
    assert at < covered(data)
    _damage_is_reported_at(data, at)


def test_damage_in_the_tail_is_reported(saved: Path) -> None:
    data = saved
    _, offsets = _frames(data)
    tail = [o for o in offsets if o > covered(data)]
    assert len(tail) > 1, "the fixture's log must have frames between the checkpoint and its last frame"
    _damage_is_reported_at(data, tail[0])


def test_a_log_shorter_than_the_checkpoint_covers_is_a_miss(data: Path) -> None:
    data_bytes, offsets = _frames(data)
    cut = max(o for o in offsets if o < covered(data))
    (data / "executions" / "e.log").write_bytes(bytes(data_bytes[:cut]))
    assert verify(data) == "stale"
    state, used = claimed(data)
    assert not used
    same(state, whole(data))


def test_a_torn_tail_after_the_checkpoint_is_cut_off(data: Path) -> None:
    log = data / "executions" / "e.log"
    good = log.read_bytes()
    log.write_bytes(good + b"\x40\x00\x00\x00partial")
    state, used = claimed(data)
    assert used
    assert log.read_bytes() == good
    same(state, whole(data))
    with FileStore(data).claim("e") as again:  # the running hash left the torn bytes out: the next one matches
        assert again._checkpointed is not None


def test_another_executions_checkpoint_is_a_miss(data: Path, tmp_path: Path) -> None:
    interrupted(data, "f", text="other", stop=STOP - 20)
    shutil.copy(ckpt(data, "e"), ckpt(data, "f"))
    assert verify(data, "f") == "foreign"
    state, used = claimed(data, "f")
    assert not used
    same(state, whole(data, "f"))


def test_a_checkpoint_of_another_log_under_the_same_id_is_a_miss(data: Path, tmp_path: Path) -> None:
    other = tmp_path / "other"
    interrupted(other, text="another input")
    shutil.copy(ckpt(data), ckpt(other))
    assert verify(other) == "stale"
    state, used = claimed(other)
    assert not used
    same(state, whole(other))
    assert state.input == "another input"


Save = list[bytes]  # a save's parts: the messages, turns, calls and body


def _saves(path: Path) -> list[Save]:
    """A checkpoint file's saves."""
    raw = path.read_bytes()
    assert raw.startswith(checkpoint.CHECKPOINT_FORMAT.encode() + b"\n")
    pos = raw.index(b"\n") + 1
    found = []
    while pos < len(raw):
        line_end = raw.index(b"\n", pos)
        sizes = [int(f) for f in raw[pos:line_end].split()[2:]]
        parts, at = [], line_end + 1
        for n in sizes:
            parts.append(raw[at : at + n])
            at += n
        found.append(parts)
        pos = at
    return found


def _write(path: Path, saves: list[Save], *, magic: bytes | None = None, bad_crc: int | None = None) -> None:
    """Write ``saves`` as a checkpoint file (save number ``bad_crc`` with a CRC-32 that does not match)."""
    out = [magic if magic is not None else checkpoint.CHECKPOINT_FORMAT.encode() + b"\n"]
    for n, (m, t, c, b) in enumerate(saves):
        crc = zlib.crc32(b, zlib.crc32(m)) ^ (1 if n == bad_crc else 0)
        out.append(f"S {crc:08x} {len(m)} {len(t)} {len(c)} {len(b)}\n".encode() + m + t + c + b)
    path.write_bytes(b"".join(out))


def _with_body(saves: list[Save], body: dict[str, Any]) -> list[Save]:
    """The saves with the last one's body replaced."""
    return [*saves[:-1], [*saves[-1][:3], msgspec.json.encode(body)]]


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("other-version", "other-format"),
        ("the-old-format", "other-format"),
        ("garbage", "other-format"),
        ("empty", "other-format"),
        ("magic-only", "damaged"),
        ("bad-crc-before-the-last", "damaged"),
        ("bad-line", "damaged"),
        ("not-json", "damaged"),
        ("wrong-shape", "damaged"),
        ("bad-digest", "damaged"),
        ("history-of-nothing", "damaged"),
        ("history-pieces-missing", "damaged"),
        ("turns-without-calls", "damaged"),
        ("no-history-yet-pieces", "damaged"),
        ("conversation-too-short", "damaged"),
        ("conversation-too-long", "damaged"),
        ("messages-not-an-array", "damaged"),
        ("a-message-not-an-object", "damaged"),
        ("wrong-size", "stale"),
        ("wrong-digest", "stale"),
        ("finished-state", "foreign"),
        ("named-other", "foreign"),
    ],
)
def test_a_checkpoint_that_disagrees_is_a_miss(saved: Path, name: str, why: str) -> None:
    data = saved
    path = ckpt(data)
    saves = _saves(path)
    body = msgspec.json.decode(saves[-1][3])
    if name == "other-version":
        _write(path, saves, magic=b"delite-checkpoint/9\n")
    elif name == "the-old-format":
        path.write_bytes(b"delite-checkpoint/2 0badf00d 2\n{}")
    elif name == "garbage":
        path.write_bytes(base64.b64encode(os.urandom(300)))
    elif name == "empty":
        path.write_bytes(b"")
    elif name == "magic-only":
        _write(path, [])
    elif name == "bad-crc-before-the-last":
        _write(path, saves, bad_crc=len(saves) - 2)
    elif name == "bad-line":
        raw = path.read_bytes()
        at = raw.index(b"\nS ") + 1
        path.write_bytes(raw[:at] + b"X" + raw[at + 1 :])
    elif name == "not-json":
        _write(path, [*saves[:-1], [*saves[-1][:3], b"{" + saves[-1][3]]])
    elif name == "wrong-shape":
        _write(path, _with_body(saves, {**body, "state": {"records": "many"}}))
    elif name == "bad-digest":
        _write(path, _with_body(saves, {**body, "log_sha256": "é" * 64}))
    elif name == "history-of-nothing":
        _write(path, _with_body(saves, {**body, "history": {**body["history"], "steps": 0}}))
    elif name == "history-pieces-missing":
        _write(path, [[m, b"", b"", b] for m, _t, _c, b in saves])
    elif name == "turns-without-calls":
        _write(path, [[m, t, b"", b] for m, t, _c, b in saves])
    elif name == "no-history-yet-pieces":
        _write(path, _with_body(saves, {**body, "history": None}))
    elif name == "conversation-too-short":
        _write(path, _with_body(saves, {**body, "settled": body["settled"] + 1}))
    elif name == "conversation-too-long":
        _write(path, _with_body(saves, {**body, "settled": body["settled"] - 1}))
    elif name == "messages-not-an-array":  # as many messages as the body says, in an object
        first = msgspec.json.decode(saves[0][0])
        _write(path, [[msgspec.json.encode(dict(enumerate(first))), *saves[0][1:]], *saves[1:]])
    elif name == "a-message-not-an-object":
        first = msgspec.json.decode(saves[0][0])
        _write(path, [[msgspec.json.encode([*first[:-1], "text"]), *saves[0][1:]], *saves[1:]])
    elif name == "wrong-size":
        _write(path, _with_body(saves, {**body, "log_size": body["log_size"] - 1}))
    elif name == "wrong-digest":
        _write(path, _with_body(saves, {**body, "log_sha256": "0" * 64}))
    elif name == "finished-state":
        _write(path, _with_body(saves, {**body, "state": {**body["state"], "status": "completed"}}))
    elif name == "named-other":
        _write(path, _with_body(saves, {**body, "execution_id": "f"}))
    assert verify(data) == why
    state, used = claimed(data)
    assert not used
    same(state, whole(data))


def test_a_save_not_all_written_is_left_out_and_the_one_before_it_used(saved: Path) -> None:
    """A writer killed while appending (or a reader racing it) leaves a save cut short: the one before it counts."""
    data = saved
    path = ckpt(data)
    raw = path.read_bytes()
    saves = _saves(path)
    _write(path, saves[:-1])
    last = path.stat().st_size  # where the last save starts
    assert raw.startswith(path.read_bytes())
    before = covered(data)
    assert before < msgspec.json.decode(saves[-1][3])["log_size"]
    for cut in [*range(last, last + 40), *range(last + 40, len(raw), 97), len(raw) - 1]:
        path.write_bytes(raw[:cut])
        assert covered(data) == before, cut
    _write(path, saves, bad_crc=len(saves) - 1)  # all its bytes there, not yet the right ones
    assert covered(data) == before
    state, used = claimed(data)
    assert used
    same(state, whole(data))


def test_a_new_claim_writes_the_file_whole_then_appends(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    interrupted(tmp_path, stop=STOP - 30)
    first = ckpt(tmp_path).stat().st_ino
    runs: list[int] = []
    agent = Agent(tmp_path, provider=ScriptedProvider.tool_loop(STEPS, "work"), tools=[_work(runs, STEPS - 5)])
    inodes = []
    real = checkpoint.CheckpointWriter.save

    def seen(self: checkpoint.CheckpointWriter, *args: Any) -> bool:
        done = real(self, *args)
        inodes.append(os.stat(self.path).st_ino)
        return done

    monkeypatch.setattr(checkpoint.CheckpointWriter, "save", seen)
    with agent, pytest.raises(KeyboardInterrupt):
        agent.resume("e")
    monkeypatch.undo()
    assert len(inodes) >= 3
    assert inodes[0] != first  # never appended after bytes another claim wrote
    assert len(set(inodes)) <= 2  # then appended to (and written whole again once it doubled, at most once here)
    state, used = claimed(tmp_path)
    assert used
    same(state, whole(tmp_path))


def test_a_checkpoint_that_is_not_a_file_is_a_miss(data: Path) -> None:
    path = ckpt(data)
    path.unlink()
    path.mkdir()
    state, used = claimed(data)
    assert not used
    same(state, whole(data))


# -- encryption at rest ------------------------------------------------------------------------------------------


def test_a_sealed_store_gets_no_checkpoint_and_no_plain_text(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("cryptography")
    key = base64.b64encode(bytes(range(32))).decode()
    monkeypatch.setenv("DELITE_ENCRYPTION_KEYS", f"k1:{key}")
    interrupted(tmp_path, text="INPUT-SECRET")
    assert (tmp_path / "executions" / "e.log").stat().st_size > checkpoint.MIN_LOG_SIZE
    assert not ckpt(tmp_path).exists()
    for path in tmp_path.rglob("*"):
        if path.is_file():
            content = path.read_bytes()
            assert b"INPUT-SECRET" not in content, path
            assert PAD.encode()[:64] not in content, path
    runs: list[int] = []
    with Agent(tmp_path, provider=ScriptedProvider.tool_loop(STEPS, "work"), tools=[_work(runs, None)]) as agent:
        assert agent.resume("e").status == "completed"
    assert runs[0] == STOP


# -- retention ---------------------------------------------------------------------------------------------------


def test_deleting_an_execution_leaves_no_checkpoint(data: Path) -> None:
    half = data / "checkpoints" / "e.ckpt.123-abcd.tmp"  # a writer killed mid-way
    half.write_bytes(b"delite-checkpoint/1 ...")
    size = ckpt(data).stat().st_size
    report = DataDir(data).delete("e", force=True)
    assert report.deleted[0].bytes >= size + len(b"delite-checkpoint/1 ...")
    assert not ckpt(data).exists()
    assert not half.exists()
    assert os.listdir(data / "checkpoints") == []


def test_health_reports_checkpoints_that_do_not_match_and_repair_deletes_them(data: Path) -> None:
    assert DataDir(data).health().healthy
    interrupted(data, "f", stop=STOP - 20)
    shutil.copy(ckpt(data, "e"), ckpt(data, "f"))  # another execution's: stale
    shutil.copy(ckpt(data, "e"), ckpt(data, "gone"))  # no log: orphaned
    half = data / "checkpoints" / "e.ckpt.123-abcd.tmp"
    half.write_bytes(b"x")
    report = DataDir(data).health()
    kinds = {p.kind: p.detail for p in report.problems}
    assert "checkpoint-stale" in kinds and ": f" in kinds["checkpoint-stale"]
    assert "checkpoint-orphaned" in kinds and "gone" in kinds["checkpoint-orphaned"]
    assert "checkpoint-unfinished" in kinds
    assert "e" not in kinds["checkpoint-stale"].split(": ")[1].split(", ")
    repaired = DataDir(data).health(repair=True)
    assert not {p.kind for p in repaired.problems} & {"checkpoint-stale", "checkpoint-orphaned"}
    assert sorted(os.listdir(data / "checkpoints")) == ["e.ckpt"]  # the one that matches stays
    assert claimed(data)[1]


def test_a_copy_never_takes_checkpoints(data: Path, tmp_path: Path) -> None:
    dest = tmp_path / "dest"
    copy_executions(FileStore(data), FileStore(dest), ["e"])
    assert (dest / "executions" / "e.log").read_bytes() == (data / "executions" / "e.log").read_bytes()
    assert not (dest / "checkpoints").exists()


def test_a_rewritten_log_loses_its_checkpoint(data: Path) -> None:
    store = FileStore(data)
    with store.claim("e") as log:
        store.rewrite(log, list(log.records))
    assert not ckpt(data).exists()


# -- checkpoint + tail == the whole fold, cut anywhere ------------------------------------------------------------


def _kinds_log() -> list[Record]:
    """A log with every kind of record the fold knows: suspensions, decisions, sub-agents, failures, resumes..."""
    tools = [ToolSpec(name="a"), ToolSpec(name="b", requires_confirmation=True)]
    calls1 = [
        RecordedToolCall(id="c1.0", name="a", arguments={"x": 1}, provider_id="p0"),
        RecordedToolCall(id="c1.1", name="b", arguments={}),
        RecordedToolCall(id="c1.2", name="a", arguments={"s": "é"}),
    ]
    calls3 = [RecordedToolCall(id="c3.0", name="a"), RecordedToolCall(id="c3.1", name="mcp__t")]
    pending = PendingCall(call_id="c1.1", name="b", arguments={})
    return [
        ExecutionStarted(
            at=1.0,
            execution_id="e",
            input="hi",
            history=[{"role": "user", "content": "before"}],
            metadata={"m": [1, {"n": None}]},
            config=ConfigFingerprint(prompt="be brief", tools=tools),
            output_prompt="answer in JSON",
            output_schema={"type": "object"},
            parent_id="p",
            parent_call="c9.0",
            depth=1,
        ),
        MCPCatalogRecorded(at=1.5, server="mcp", tools=[MCPToolEntry(name="t")]),
        ModelResponded(at=2.0, step=1, model="m", content="thinking", tool_calls=calls1, usage=Usage(cost="0.5")),
        ToolStarted(at=3.0, call_id="c1.0", idempotency_key="k0"),
        ToolStarted(at=3.1, call_id="c1.2", idempotency_key="k2", attempt=2),
        ToolFinished(at=4.0, call_id="c1.2", result="plain"),
        ExecutionSuspended(at=4.1, reason=SuspendReason(kind="approval", calls=[pending])),
        DecisionRecorded(at=4.2, call_id="c1.1", approved=True, reason="ok"),
        ExecutionResumed(at=4.3, pid=7),
        InDoubtResolved(at=4.4, call_id="c1.0"),
        ToolStarted(at=4.5, call_id="c1.0", idempotency_key="k0", attempt=2),
        ToolFinished(at=4.6, call_id="c1.0", result={"ok": [1, 2.5]}),
        ToolStarted(at=4.7, call_id="c1.1", idempotency_key="k1"),
        ChildSuspended(at=4.8, call_id="c1.1", child_id="e:c1.1"),
        ExecutionSuspended(at=4.9, reason=SuspendReason(kind="human_input", message="child waits")),
        ExecutionResumed(at=5.0),
        ToolFinished(at=5.1, call_id="c1.1", error="boom"),
        ModelCallFailed(at=5.2, step=2, error="429", retryable=True, usage=Usage(input_tokens=3, known=False)),
        ExecutionFailed(at=5.3, error_type="RateLimit", message="later"),
        ExecutionResumed(at=6.0),
        DriftAccepted(at=6.1, changes=[["model", "m", "n"]], config=ConfigFingerprint(model="n", tools=tools)),
        ModelResponded(at=6.2, step=2, content='{"bad": 1}', usage=Usage(output_tokens=4)),
        OutputRejected(at=6.3, step=2, error="not the schema", prompt="try again"),
        ModelResponded(at=6.4, step=3, tool_calls=calls3, usage=Usage(input_tokens=9, cost=None)),
        ToolStarted(at=6.5, call_id="c3.1"),
        InputRequested(at=6.6, call_id="c3.1", question="which?"),
        ExecutionSuspended(at=6.7, reason=SuspendReason(kind="human_input", question="which?")),
        InputSubmitted(at=6.8, call_id="c3.1", text="that one"),
        ExecutionResumed(at=6.9),
        ToolFinished(at=7.0, call_id="c3.1", result=None),
        ToolStarted(at=7.1, call_id="c3.0"),
    ]


class _File:
    """A checkpoint file saved into by one writer, as a claim's run saves into it."""

    def __init__(self) -> None:
        where = tempfile.mkdtemp(prefix="delite-ckpt-")
        weakref.finalize(self, shutil.rmtree, where, True)
        self.writer = checkpoint.CheckpointWriter(os.path.join(where, "e.ckpt"), "e")

    def save(self, state: ExecutionState) -> ExecutionState:
        """Save ``state`` (which then holds its history encoded, as the file does); ``state``."""
        assert self.writer.save(1, hashlib.sha256(), state)
        return state

    def read(self) -> ExecutionState:
        """The state the file holds, read back: its history left in the file (read from it when first read)."""
        with open(self.writer.path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            body = checkpoint._decode(f.fileno(), size, checkpoint._HistoryLoader(self.writer.path, "e", None))
        assert isinstance(body, checkpoint._Body)
        return body.state


_KEPT: list[_File] = []  # a state read back reads its history from its file later: the files stay until the end


def _checkpointed(state: ExecutionState) -> ExecutionState:
    """``state`` written and read back as a checkpoint holds it: its history left encoded."""
    file = _File()
    _KEPT.append(file)
    file.save(state)
    return file.read()


def test_checkpoint_plus_tail_is_the_whole_fold_wherever_the_log_is_cut() -> None:
    records = _kinds_log()
    full = fold(records)
    for k in range(1, len(records) + 1):
        same(fold(records[k:], _checkpointed(fold(records[:k]))), full)


def test_checkpoint_plus_tail_is_the_whole_fold_for_a_real_run_cut_anywhere(data: Path) -> None:
    records = read_log(str(data / "executions" / "e.log")).records
    full = fold(records)
    for k in range(1, len(records), 37):
        same(fold(records[k:], _checkpointed(fold(records[:k]))), full)


def test_a_checkpoint_reads_values_back_as_the_log_does() -> None:
    """What the engine holds in memory may differ from what it wrote; the checkpoint is the log's reading."""
    odd = ToolFinished(at=1.0, call_id="c1.0", result={"n": float("nan"), "t": (1, 2)})
    records: list[Record] = [
        ExecutionStarted(at=0.5, execution_id="e"),
        ModelResponded(at=0.7, step=1, tool_calls=[RecordedToolCall(id="c1.0", name="a")]),
        odd,
    ]
    assert _checkpointed(fold(records)).calls["c1.0"].finished == as_read(odd)


# -- the collector after a decode ----------------------------------------------------------------------------------


def test_a_decoded_state_is_left_in_the_oldest_generation_and_the_collector_on() -> None:
    assert gc.isenabled()
    with settled():
        assert not gc.isenabled()
        made = [{"n": [i]} for i in range(1000)]
    assert gc.isenabled()
    # nothing young left for the next collection to walk (the block made 2,000 objects; other threads of the
    # test process may allocate a few meanwhile)
    assert gc.get_count()[0] < 1000
    assert gc.get_freeze_count() == 0
    assert made[-1] == {"n": [999]}


def test_objects_the_application_froze_stay_frozen() -> None:
    gc.freeze()
    try:
        frozen = gc.get_freeze_count()
        with settled():
            pass
        # Not unfrozen (that would empty the permanent generation) and nothing more frozen; frozen objects that
        # die meanwhile (other threads of the test process) leave it, so the count may drop a little.
        assert frozen // 2 < gc.get_freeze_count() <= frozen
        assert gc.isenabled()
    finally:
        gc.unfreeze()


# -- the history a checkpoint leaves encoded ------------------------------------------------------------------


def test_checkpoint_over_checkpoint_plus_tail_is_the_whole_fold_wherever_the_log_is_cut() -> None:
    """A state read from a checkpoint, its history still encoded, folds on and is checkpointed again."""
    records = _kinds_log()
    full = fold(records)
    for j in range(1, len(records) + 1):
        first = _checkpointed(fold(records[:j]))
        for k in range(j, len(records) + 1):
            second = _checkpointed(fold(records[j:k], _checkpointed(fold(records[:j]))))
            same(fold(records[k:], second), full)
        same(fold(records[j:], first), full)


def test_a_history_is_decoded_once_when_turns_or_calls_are_read_whole(data: Path) -> None:
    expected = whole(data)
    for read in ("turns", "calls"):
        state, used = claimed(data)
        assert used and state._history is not None
        assert state.steps == expected.steps and state.calls_count() == len(expected.calls)
        assert state.last_turn == expected.last_turn
        assert state.open_calls() == expected.open_calls()
        assert state._history is not None  # counts, the latest turn and its calls: nothing decoded
        assert getattr(state, read) == getattr(expected, read)
        assert state._history is None
        same(state, expected)


def _decodes(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Every time a state decodes a history (its step count then)."""
    seen: list[int] = []
    real = ExecutionState._decode_history

    def counted(self: ExecutionState) -> None:
        if self._history is not None:
            seen.append(self.steps)
        real(self)

    monkeypatch.setattr(ExecutionState, "_decode_history", counted)
    return seen


def test_resuming_from_a_checkpoint_never_decodes_its_history(data: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    decoded = _decodes(monkeypatch)
    runs: list[int] = []
    with Agent(data, provider=ScriptedProvider.tool_loop(STEPS, "work"), tools=[_work(runs, None)]) as agent:
        r = agent.resume("e")
    assert r.status == "completed" and r.steps == STEPS + 1
    assert runs[0] == STOP and len(runs) == STEPS - STOP
    assert decoded == []


def test_a_resumed_run_checkpoints_again_without_decoding_the_history(
    data: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The resumed process writes the next checkpoint from the history it read, still encoded, plus its turns."""
    before = covered(data)
    decoded = _decodes(monkeypatch)
    runs: list[int] = []
    agent = Agent(data, provider=ScriptedProvider.tool_loop(STEPS, "work"), tools=[_work(runs, STEPS - 1)])
    with agent, pytest.raises(KeyboardInterrupt):
        agent.resume("e")
    assert decoded == []
    assert covered(data) > before
    state, used = claimed(data)
    assert used and state._history is not None and state._history.steps > STOP
    same(state, whole(data))


@pytest.mark.parametrize("spoil", ["flipped-byte", "wrong-types-right-crc"])
def test_a_history_is_checked_when_first_read(saved: Path, spoil: str) -> None:
    """The history is checked (its CRC-32, its types) when first read, not at the claim.

    Pieces that fail their CRC-32 (damaged, or not the file the claim read) are rebuilt from the log the claim
    verified; pieces that pass it but do not decode (a file delite did not write) are a clear error then.
    """
    data = saved
    path = ckpt(data)
    saves = _saves(path)
    body = msgspec.json.decode(saves[-1][3])
    with_turns = next(n for n, (_m, t, _c, _b) in enumerate(saves) if t)
    m, t, c, b = saves[with_turns]
    if spoil == "flipped-byte":
        spoilt = bytearray(t)
        spoilt[len(t) // 3] ^= 0x01
        saves[with_turns] = [m, bytes(spoilt), c, b]
        match = "CRC"
    else:
        count = len(msgspec.json.decode(t))
        bad = msgspec.json.encode([{"kind": "model-responded", "at": "not a time", "step": 1}] * count)
        saves[with_turns] = [m, bad, c, b]
        pieces = [(t, c) for _m, t, c, _b in saves if t]
        crc = history_crc(tuple(p[0] for p in pieces), tuple(p[1] for p in pieces))
        saves = _with_body(saves, {**body, "history": {**body["history"], "crc32": crc}})
        match = "history"
    _write(path, saves)
    state, used = claimed(data)
    assert used
    assert state.steps == whole(data).steps  # the counts come from the body
    if spoil == "flipped-byte":
        same(state, whole(data))
    else:
        with pytest.raises(LogCorruptError, match=match):
            _ = state.turns
    same(whole(data), whole(data))  # the log itself is untouched and reads as before


def test_a_claim_reads_no_history_piece(saved: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The claim asks for the saves' lines, conversations and bodies only, never a byte of the turns and calls.

    (A chunk read around small saves holds some; none is kept. A large piece, as in a file written whole after
    a long run, is skipped.)
    """
    ranges: list[tuple[int, int]] = []
    real = checkpoint._Window.get

    def get(self: checkpoint._Window, at: int, n: int) -> Any:
        ranges.append((at, n))
        return real(self, at, n)

    monkeypatch.setattr(checkpoint._Window, "get", get)
    state, used = claimed(saved)
    assert used and state._history is not None and state._history._turns is None  # not read yet
    raw = ckpt(saved).read_bytes()
    pos, pieces = raw.index(b"\n") + 1, []
    for m, t, c, b in _saves(ckpt(saved)):
        start = raw.index(b"\n", pos) + 1
        pieces.append((start + len(m), len(t) + len(c)))
        pos = start + len(m) + len(t) + len(c) + len(b)
    for at, n in ranges:
        for p_at, p_n in pieces:
            assert at + n <= p_at or at >= p_at + p_n, "a history piece was read"
    same(state, whole(saved))  # read (and checked) when needed


def test_a_long_histories_bytes_are_not_read_at_the_claim(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A history piece larger than a read window (as a file written whole after a long run holds) is not read.

    Small pieces, between the small saves appended since, come with the window that holds the saves' other parts.
    """
    interrupted(tmp_path, stop=1100, steps=1200)
    path = ckpt(tmp_path)
    window = checkpoint._WINDOW
    skipped = sum(len(t) + len(c) - window for _m, t, c, _b in _saves(path) if len(t) + len(c) > window)
    assert skipped > 0
    read: list[int] = []
    real = os.preadv

    def preadv(fd: int, buffers: Any, offset: int) -> int:
        n = real(fd, buffers, offset)
        if os.readlink(f"/proc/self/fd/{fd}").endswith(".ckpt"):
            read.append(n)
        return n

    monkeypatch.setattr(checkpoint.os, "preadv", preadv)
    state, used = claimed(tmp_path)
    assert used
    assert sum(read) <= path.stat().st_size - skipped
    monkeypatch.undo()
    same(state, whole(tmp_path))


@pytest.mark.parametrize("change", ["deleted", "replaced", "cut-short", "a-directory"])
def test_a_history_the_file_no_longer_holds_is_rebuilt_from_the_log(saved: Path, change: str) -> None:
    """Deleting the checkpoints (always safe) or a new checkpoint written there after the claim costs only time."""
    with FileStore(saved).claim("e") as log:
        assert isinstance(log, FileExecutionLog) and log._checkpointed is not None
        state = log.state()
        path = ckpt(saved)
        if change == "deleted":
            shutil.rmtree(path.parent)
        elif change == "replaced":
            saves = _saves(path)
            _write(path, saves[:1])  # a checkpoint of fewer saves: the pieces are elsewhere, or not there
        elif change == "cut-short":
            path.write_bytes(path.read_bytes()[:100])
        else:
            path.unlink()
            path.mkdir()
        assert state._history is not None and state._history._turns is None
        same(state, whole(saved))


def test_a_history_lost_with_a_log_that_changed_is_a_clear_error(saved: Path) -> None:
    """The rebuild checks the log's bytes against the hash the checkpoint was bound to, as the claim did."""
    state, used = claimed(saved)
    assert used
    ckpt(saved).unlink()
    log_path = saved / "executions" / "e.log"
    raw = bytearray(log_path.read_bytes())
    raw[len(raw) // 2] ^= 0x01
    log_path.write_bytes(bytes(raw))
    with pytest.raises(LogCorruptError, match="changed"):
        _ = state.turns


def test_a_resume_to_the_end_never_reads_the_history(data: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Recovering the interrupted call and completing reads neither the history's pieces nor the log's prefix."""
    read: list[str] = []
    real_fill = checkpoint.History._fill

    def fill(self: checkpoint.History) -> None:
        read.append("history")
        real_fill(self)

    monkeypatch.setattr(checkpoint.History, "_fill", fill)
    runs: list[int] = []
    agent = Agent(data, provider=ScriptedProvider.tool_loop(STOP + 1, "work"), tools=[_work(runs, None)])
    with agent:
        response = agent.resume("e")
    assert response.status == "completed" and runs == [STOP]
    assert read == []


# -- a listing (and a Runtime's recovery scan) reads the checkpoint too ----------------------------------------


def _listed(d: Path) -> Any:
    return FileStore(d).list_executions(limit=None).items[0]


def test_a_listing_of_an_unfinished_log_folds_only_its_tail_and_says_what_the_whole_log_says(
    data: Path, listing_folds: list[str]
) -> None:
    log = data / "executions" / "e.log"
    expected = summary_of_log("e", log.read_bytes(), path=str(log))
    assert expected.status == "running" and expected.steps == STOP + 1
    assert _listed(data) == expected
    assert listing_folds == []
    assert [s.id for s in FileStore(data).recoverable()] == ["e"]


def test_a_listing_from_a_checkpoint_equals_one_from_the_whole_log_wherever_the_run_stopped(tmp_path: Path) -> None:
    for stop in (STOP, STOP + 7, STEPS - 1):
        d = tmp_path / str(stop)
        interrupted(d, stop=stop)
        log = d / "executions" / "e.log"
        data = log.read_bytes()
        expected = summary_of_log("e", data, path=str(log))
        assert _index._checkpointed(Layout(d), "e", data, str(log), None) == expected
        kept: dict[str, Any] = {}
        assert _index._checkpointed(Layout(d), "e", data, str(log), kept.__setitem__) == expected
        found = kept["e"]  # folded in full for a claim: the whole log's state, and the hash of all of it
        same(found.state, whole(d))
        assert found.size == len(data) and found.digest.hexdigest() == hashlib.sha256(data).hexdigest()


def test_a_listing_whose_tail_is_damaged_reads_the_whole_log_and_reports_it(data: Path) -> None:
    log = data / "executions" / "e.log"
    raw = bytearray(log.read_bytes())
    raw[-3] ^= 0xFF  # inside the last frame: a torn tail to a reader
    log.write_bytes(bytes(raw))
    assert _index._checkpointed(Layout(data), "e", bytes(raw), str(log), None) is None
    assert _listed(data) == summary_of_log("e", bytes(raw), path=str(log))
    raw[covered(data) + 20] ^= 0xFF  # a frame in the middle of the tail: damage, not a torn end
    log.write_bytes(bytes(raw))
    assert _index._checkpointed(Layout(data), "e", bytes(raw), str(log), None) is None
    assert _listed(data).status == "unreadable"


def _loads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every checkpoint file a claim decodes."""
    seen: list[str] = []
    real = _file.load_checkpoint

    def counted(path: str, fd: Any, eid: str, **kwargs: Any) -> Any:
        seen.append(eid)
        return real(path, fd, eid, **kwargs)

    monkeypatch.setattr(_file, "load_checkpoint", counted)
    return seen


def test_a_claim_after_a_recovery_scan_continues_from_the_state_the_scan_folded(
    data: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = FileStore(data)
    assert [s.id for s in store.recoverable()] == ["e"]
    loads = _loads(monkeypatch)
    with store.claim("e") as log:
        assert isinstance(log, FileExecutionLog) and log._checkpointed is not None
        same(log.state(), whole(data))
        assert log.head == len(read_log(str(data / "executions" / "e.log")).records)
    assert loads == []  # neither the checkpoint decoded again nor its tail folded again
    with store.claim("e") as log:  # a kept state is used once
        same(log.state(), whole(data))
    assert loads == ["e"]


def test_a_state_kept_by_one_store_serves_a_claim_through_another_on_the_same_directory(
    data: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A Runtime scans through its own store and resumes through each agent's."""
    assert [s.id for s in FileStore(data).recoverable()] == ["e"]
    loads = _loads(monkeypatch)
    with FileStore(data).claim("e") as log:
        same(log.state(), whole(data))
    assert loads == []


def test_a_kept_state_is_not_used_for_a_log_that_changed_since_the_scan(
    data: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = FileStore(data)
    assert [s.id for s in store.recoverable()] == ["e"]
    log_file = data / "executions" / "e.log"
    raw = bytearray(log_file.read_bytes())
    at = covered(data) // 2
    raw[at] ^= 0xFF  # inside a frame the checkpoint covers: the log is damaged there
    log_file.write_bytes(bytes(raw))
    with pytest.raises(LogCorruptError):
        store.claim("e")


def test_a_kept_state_follows_a_log_that_grew_since_the_scan(data: Path) -> None:
    """Another process took the execution on after the scan and died later: the claim folds what it appended."""
    store = FileStore(data)
    assert [s.id for s in store.recoverable()] == ["e"]
    runs: list[int] = []
    agent = Agent(data, provider=ScriptedProvider.tool_loop(STEPS, "work"), tools=[_work(runs, STOP + 3)])
    with agent, pytest.raises(KeyboardInterrupt):
        agent.resume("e")  # its own store: the kept state stays with ``store``
    with store.claim("e") as log:
        same(log.state(), whole(data))


def test_a_recovery_scan_keeps_a_bounded_number_of_states(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_file, "KEPT_STATES", 2)
    for eid in ("a", "b", "c"):
        interrupted(tmp_path, eid, text=eid)
    monkeypatch.setattr(_file, "_kept", {})
    store = FileStore(tmp_path)
    assert sorted(s.id for s in store.recoverable()) == ["a", "b", "c"]
    assert len(_file._kept) == 2
    _file._kept.clear()
    monkeypatch.setattr(_file, "KEPT_STATES", 64)
    biggest = max((tmp_path / "executions" / f"{eid}.log").stat().st_size for eid in "abc")
    monkeypatch.setattr(_file, "KEPT_BYTES", biggest * 2)  # two fit, three do not (the logs are about as long)
    Path(Layout(tmp_path).index).unlink()  # every row derived again: rows are kept only when derived
    store.recoverable()
    assert len(_file._kept) == 2 and sum(f.size for f in _file._kept.values()) <= biggest * 2
    _file._kept.clear()
    store.list_executions()  # a listing that is not a recovery scan keeps nothing
    assert not _file._kept


def _held(state: ExecutionState, file: _File | None = None) -> ExecutionState:
    """``state`` holding its history encoded, as after a checkpoint of it was written."""
    return (file or _File()).save(state)


def test_a_running_state_that_holds_its_history_encoded_folds_on_to_the_whole_fold() -> None:
    """After each checkpoint the engine's own state keeps its earlier turns and calls as the JSON written."""
    records = _kinds_log()
    full = fold(records)
    for j in range(1, len(records) + 1):
        for k in range(j, len(records) + 1):
            file = _File()
            state = _held(fold(records[:j]), file)
            fold(records[j:k], state)
            _held(state, file)  # appended to the file the first save wrote
            same(fold(records[k:], file.read()), full)
            same(fold(records[k:], state), full)


def test_a_long_run_holds_its_history_encoded_and_never_decodes_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    decoded = _decodes(monkeypatch)
    held: list[int] = []
    real = ExecutionState._hold_history

    def counted(self: ExecutionState, *parts: Any) -> None:
        real(self, *parts)
        held.append(self._history.steps if self._history is not None else 0)

    monkeypatch.setattr(ExecutionState, "_hold_history", counted)
    runs: list[int] = []
    with Agent(tmp_path, provider=ScriptedProvider.tool_loop(STEPS, "work"), tools=[_work(runs, None)]) as agent:
        r = agent.run("go", execution_id="e")
        assert r.status == "completed" and len(runs) == STEPS
        assert len(held) >= 3 and held == sorted(held) and held[-1] > STEPS // 2
        assert decoded == []
        assert agent.get("e").steps == STEPS + 1


def test_a_state_read_from_a_checkpoint_lets_go_of_the_file_once_saved_again() -> None:
    """A claim's state holds its history as views into the file it read; its first save holds bytes of its own."""
    records = _kinds_log()
    first = _File()
    first.save(fold(records))
    state = first.read()
    assert state._history is not None and all(isinstance(p, memoryview) for p in state._history.turns)
    _File().save(state)  # a new claim's first save: the file written whole
    assert state._history is not None and all(isinstance(p, bytes) for p in state._history.turns + state._history.calls)
    same(state, fold(records))


@pytest.mark.parametrize(
    ("pieces", "joined"),
    [
        ((b"[1,2]", b"[3]"), b"[1,2,3]"),
        ((b"[]", b"[3]", b"[]"), b"[3]"),
        ((b"[]",), b"[]"),
        ((), b"[]"),
        ((memoryview(b"[4,5]"),), b"[4,5]"),
        ((memoryview(b"[1]"), b"[2]"), b"[1,2]"),
    ],
)
def test_history_pieces_are_joined_into_one_array(pieces: tuple[Any, ...], joined: bytes) -> None:
    got = checkpoint._joined(pieces, b"[", b"]")
    assert got == joined and type(got) is bytes  # bytes of its own, never a view into a file read at a claim
    assert checkpoint._joined((b'{"a":1}', b"{}", b'{"b":2}'), b"{", b"}") == b'{"a":1,"b":2}'


def test_a_history_in_one_piece_is_not_copied_to_be_written_whole() -> None:
    """The first save after a long log was folded whole holds its history in one piece: it is written as it is."""
    piece = b"[" + b",".join(b"%d" % i for i in range(1000)) + b"]"
    assert checkpoint._joined((b"[]", piece), b"[", b"]") is piece
