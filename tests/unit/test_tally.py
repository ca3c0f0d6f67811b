"""A finished log answers from the tally in its terminal record, checked against its bytes, never over them."""

from __future__ import annotations

import asyncio
import hashlib
import json
import zlib
from pathlib import Path
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from delite import Agent, DataDir, MemoryStore, Runtime, ScriptedProvider, tool
from delite.engine._loop import tallied
from delite.errors import LogCorruptError, UsageError
from delite.log import parse_log, read_log
from delite.log._codec import encode_record
from delite.log._framing import FRAME_HEADER_SIZE, HEADER, encode_frame, last_frame_start
from delite.log._shell import shell_of
from delite.log.records import (
    TALLY_VERSION,
    ConfigFingerprint,
    ExecutionCancelled,
    ExecutionCompleted,
    ExecutionFailed,
    ExecutionResumed,
    ExecutionStarted,
    ModelResponded,
    Record,
    RecordedToolCall,
    Tally,
    ToolFinished,
    ToolStarted,
    Usage,
)
from delite.state._fold import fold
from delite.state._outcome import finished_outcome, outcome, tallied_outcome, tally_of
from delite.store import FileStore
from delite.store import _tally as tally_module
from delite.store._derive import summary_of_log

STEPS = 40


@tool
def pad(i: int) -> dict[str, Any]:
    """A result that makes the log long."""
    return {"i": i, "pad": "x" * 100}


@pytest.fixture(autouse=True)
def tally_small_logs(monkeypatch: pytest.MonkeyPatch) -> None:
    """The runs here are short; answer them from their tallies anyway."""
    monkeypatch.setattr(tally_module, "MIN_LOG_SIZE", 0)


def agent(data_dir: Path, steps: int = STEPS) -> Agent:
    return Agent(data_dir, provider=ScriptedProvider.tool_loop(steps, "pad"), tools=[pad])


def log_path(data_dir: Path, eid: str = "e1") -> Path:
    return data_dir / "executions" / f"{eid}.log"


def without_snapshot(data_dir: Path, eid: str = "e1") -> None:
    (data_dir / "snapshots" / f"{eid}.snap").unlink(missing_ok=True)


@pytest.fixture
def finished(data_dir: Path) -> tuple[Path, Any]:
    with agent(data_dir) as a:
        response = a.run("go", execution_id="e1")
    assert response.status == "completed"
    without_snapshot(data_dir)
    return data_dir, response


def check_tally(path: Path) -> Tally:
    """The log's terminal tally, checked against the log: its hash, its counts and the whole fold's outcome."""
    data = path.read_bytes()
    contents = parse_log(data)
    last = contents.records[-1]
    assert isinstance(last, ExecutionCompleted | ExecutionCancelled)
    assert last.tally is not None
    at = contents.offsets[-1]
    unhashed = msgspec.structs.replace(last, tally=msgspec.structs.replace(last.tally, log_sha256=None))
    assert last.tally.log_sha256 == hashlib.sha256(data[:at] + encode_frame(encode_record(unhashed))).hexdigest()
    assert tallied_outcome(contents.records[0], last) == finished_outcome(contents.records)
    assert tallied_outcome(contents.records[0], last) == outcome(fold(contents.records))
    assert last_frame_start(data) == at
    return last.tally


def rebind(path: Path, **changes: Any) -> None:
    """Rewrite the log's terminal record with its tally changed and bound again, as someone writing it by hand."""
    data = path.read_bytes()
    contents = parse_log(data)
    at, last = contents.offsets[-1], contents.records[-1]
    assert isinstance(last, ExecutionCompleted | ExecutionCancelled) and last.tally is not None
    changed = msgspec.structs.replace(last.tally, **changes, log_sha256=None)
    unhashed = msgspec.structs.replace(last, tally=changed)
    digest = hashlib.sha256(data[:at] + encode_frame(encode_record(unhashed))).hexdigest()
    bound = msgspec.structs.replace(last, tally=msgspec.structs.replace(changed, log_sha256=digest))
    path.write_bytes(data[:at] + encode_frame(encode_record(bound)))


def test_a_finished_run_ends_with_a_tally_bound_to_its_bytes(finished: tuple[Path, Any]) -> None:
    data_dir, response = finished
    tally = check_tally(log_path(data_dir))
    assert tally.records == len(read_log(str(log_path(data_dir))).records)
    assert tally.steps == response.steps == STEPS + 1


def test_without_a_snapshot_the_tally_answers_and_no_record_is_read(
    finished: tuple[Path, Any], parses: list[int]
) -> None:
    data_dir, first = finished
    with agent(data_dir) as a:
        assert a.run("go", execution_id="e1") == first
        assert a.resume("e1") == first
    assert parses == []
    assert not (data_dir / "snapshots" / "e1.snap").exists()  # the log answers for itself: nothing to keep


def test_a_log_that_answers_for_itself_gets_no_snapshot_and_loses_a_stale_one(
    data_dir: Path, parses: list[int]
) -> None:
    """A snapshot would only repeat the tally: none is written, and one already there is removed."""
    with agent(data_dir) as a:
        a.run("go", execution_id="other")  # the data directory and its folders exist now
    stale = data_dir / "snapshots" / "e1.snap"
    stale.parent.mkdir(mode=0o700, exist_ok=True)
    stale.write_bytes(b"delite-snapshot/2 00000000\n{}")  # left by something else: never read in vain again
    with agent(data_dir) as a:
        first = a.run("go", execution_id="e1")
    assert not stale.exists()
    assert not (data_dir / "snapshots" / "other.snap").exists()
    with agent(data_dir) as a:
        assert a.run("go", execution_id="e1") == first
    assert parses == []  # answered by the tally


def test_a_final_answer_beyond_the_tail_still_gets_a_snapshot(data_dir: Path, parses: list[int]) -> None:
    """A claim looks for the terminal record in the log's last 64 KiB: one that ends further back is snapshotted."""
    answer = "a" * (tally_module.TAIL + 10)
    with Agent(data_dir, provider=ScriptedProvider([answer])) as a:
        first = a.run("go", execution_id="long")
    assert first.answer == answer
    assert (data_dir / "snapshots" / "long.snap").exists()
    with Agent(data_dir, provider=ScriptedProvider([])) as a:
        assert a.run("go", execution_id="long") == first
    assert parses == []  # answered by the snapshot


def test_tells_only_what_a_claim_would_be_answered_with(finished: tuple[Path, Any]) -> None:
    """The check made before a snapshot is saved: the log's size, its terminal frame and the exact outcome."""
    data_dir, _ = finished
    path = log_path(data_dir)
    data = path.read_bytes()
    contents = parse_log(data)
    at = contents.offsets[-1]
    told = finished_outcome(contents.records)
    assert told is not None
    assert tally_module.tells(str(path), len(data), at, told)
    assert not tally_module.tells(str(path), len(data), contents.offsets[-2], told)  # not the last frame
    assert not tally_module.tells(str(path), len(data) - 1, at, told)  # not the log's size
    assert not tally_module.tells(str(path), len(data), at, msgspec.structs.replace(told, steps=told.steps + 1))
    assert not tally_module.tells(str(path), len(data), at, msgspec.structs.replace(told, answer="other"))
    assert not tally_module.tells(str(data_dir / "missing.log"), len(data), at, told)


def test_an_operators_cancellation_writes_a_tally(data_dir: Path, parses: list[int]) -> None:
    with agent(data_dir) as a:
        started = ExecutionStarted(execution_id="c1", input="go", config=a.fingerprint())
        a.store.claim("c1", create=[started]).release()
        cancelled = a.cancel("c1")
    check_tally(log_path(data_dir, "c1"))
    parses.clear()
    with agent(data_dir) as a:
        assert a.resume("c1") == cancelled
    assert parses == []


def test_the_run_loop_writes_a_tally_when_it_sees_a_cancel_request(data_dir: Path) -> None:
    @tool
    def ask_to_stop(i: int) -> str:
        """Ask for this execution to be cancelled at the next step boundary."""
        store.request_cancel("k1")
        return "ok"

    a = Agent(data_dir, provider=ScriptedProvider.tool_loop(5, "ask_to_stop"), tools=[ask_to_stop])
    store = a.store
    with a:
        response = a.run("go", execution_id="k1")
    assert response.status == "cancelled"
    check_tally(log_path(data_dir, "k1"))


def _crafted(*, failed: bool, cost: str | None, known: bool) -> list[Record]:
    calls = [RecordedToolCall(id="c1", name="a", arguments={"x": 1})]
    usage = Usage(input_tokens=5, output_tokens=2, cost=cost, known=known)
    records: list[Record] = [
        ExecutionStarted(at=1.0, execution_id="e", input="hi", config=ConfigFingerprint(prompt="p")),
        ModelResponded(at=2.0, step=1, model="m", content="", tool_calls=calls, usage=usage),
        ToolStarted(at=3.0, call_id="c1", idempotency_key="k", attempt=1),
        ToolFinished(at=4.0, call_id="c1", result={"ok": True}),
    ]
    if failed:
        records += [ExecutionFailed(at=5.0, error_type="Boom", message="it broke"), ExecutionResumed(at=6.0)]
    records.append(ModelResponded(at=7.0, step=2, model="m", content="done", usage=Usage(output_tokens=3)))
    return records


@pytest.mark.parametrize("failed", [False, True])
@pytest.mark.parametrize(("cost", "known"), [("0.25", True), (None, True), ("1", False)])
@pytest.mark.parametrize("ending", ["completed", "cancelled"])
def test_the_tally_of_a_state_tells_the_outcome_the_whole_fold_tells(
    failed: bool, cost: str | None, known: bool, ending: str
) -> None:
    records = _crafted(failed=failed, cost=cost, known=known)
    tally = tally_of(fold(records), "ab" * 32)
    last: Record
    if ending == "completed":
        last = ExecutionCompleted(at=8.0, answer="done", output={"n": 1}, tally=tally)
    else:
        last = ExecutionCancelled(at=8.0, reason="stop", tally=tally)
    whole = [*records, last]
    assert tallied_outcome(whole[0], last) == finished_outcome(whole) == outcome(fold(whole))
    if failed:
        assert tally.error_type == "Boom" and tally.error_message == "it broke"
    assert tallied_outcome(whole[0], msgspec.structs.replace(last, tally=None)) is None
    assert tallied_outcome(whole[1], last) is None  # not a log's first record


def test_the_shell_of_a_tally_keeps_its_counts_and_drops_the_error_message() -> None:
    tally = Tally(records=3, steps=1, usage=Usage(input_tokens=4), error_type="Boom", error_message="SECRET")
    shell = shell_of(ExecutionCompleted(answer="SECRET", tally=tally))
    assert isinstance(shell, ExecutionCompleted) and shell.tally is not None
    assert shell.tally.error_message == "" and shell.tally.error_type == "Boom"
    assert shell.tally.records == 3 and shell.tally.usage == tally.usage
    assert b"SECRET" not in msgspec.json.encode(shell)


def test_a_changed_frame_before_the_terminal_record_is_never_hidden(finished: tuple[Path, Any]) -> None:
    data_dir, _ = finished
    path = log_path(data_dir)
    data = bytearray(path.read_bytes())
    offsets = parse_log(bytes(data)).offsets
    middle = offsets[len(offsets) // 2]
    data[middle + FRAME_HEADER_SIZE + 5] ^= 0x01  # the payload no longer matches its checksum
    path.write_bytes(bytes(data))
    with agent(data_dir) as a, pytest.raises(LogCorruptError) as info:
        a.run("go", execution_id="e1")
    assert info.value.offset == middle


def _rewritten_frame(data: bytes, offset: int, change: Any) -> bytes:
    """``data`` with the frame at ``offset`` replaced by a well-formed frame of a changed payload."""
    length = int.from_bytes(data[offset : offset + 4], "little")
    payload = data[offset + FRAME_HEADER_SIZE : offset + FRAME_HEADER_SIZE + length]
    frame = encode_frame(change(payload))
    return data[:offset] + frame + data[offset + FRAME_HEADER_SIZE + length :]


def test_a_valid_frame_with_other_content_before_the_terminal_record_is_read_in_full(
    finished: tuple[Path, Any], parses: list[int]
) -> None:
    data_dir, first = finished
    path = log_path(data_dir)
    data = path.read_bytes()
    contents = parse_log(data)
    at = next(o for o, r in zip(contents.offsets, contents.records, strict=True) if isinstance(r, ToolFinished))
    changed = _rewritten_frame(data, at, lambda p: p.replace(b'"i":0', b'"i":7'))
    assert changed != data and parse_log(changed).torn is None  # every frame verifies
    path.write_bytes(changed)
    with agent(data_dir) as a:
        assert a.run("go", execution_id="e1") == first
    assert len(parses) == 1  # the tally's hash no longer matches: the log was read and folded


def test_a_tally_whose_counts_were_changed_with_a_valid_frame_is_not_used(
    finished: tuple[Path, Any], parses: list[int]
) -> None:
    """The tally binds the whole log, itself included: a terminal record changed with a valid frame is folded."""
    data_dir, first = finished
    path = log_path(data_dir)
    data = path.read_bytes()
    at = parse_log(data).offsets[-1]
    forged = _rewritten_frame(data, at, lambda p: p.replace(b'"steps":', b'"steps":1'))
    path.write_bytes(forged)
    with agent(data_dir) as a:
        assert a.run("go", execution_id="e1").steps == first.steps  # the fold's count, not the forged one
    assert len(parses) == 1


def test_a_tally_of_another_execution_never_answers(data_dir: Path, parses: list[int]) -> None:
    with agent(data_dir) as a:
        one = a.run("go", execution_id="one")
        two = a.run("go", execution_id="two")
    without_snapshot(data_dir, "one")
    without_snapshot(data_dir, "two")
    data_one = log_path(data_dir, "one").read_bytes()
    data_two = log_path(data_dir, "two").read_bytes()
    last_one = parse_log(data_one).offsets[-1]
    last_two = parse_log(data_two).offsets[-1]
    # The first log with the second's terminal frame: every frame verifies, the tally's hash does not.
    log_path(data_dir, "one").write_bytes(data_one[:last_one] + data_two[last_two:])
    with agent(data_dir) as a:
        again = a.run("go", execution_id="one")
    assert len(parses) == 1
    assert again.answer == one.answer == two.answer


def test_bytes_after_the_terminal_record_are_a_torn_tail_repaired_as_before(
    finished: tuple[Path, Any], parses: list[int]
) -> None:
    data_dir, first = finished
    path = log_path(data_dir)
    good = path.read_bytes()
    with path.open("ab") as f:
        f.write(b"\x07\x00\x00")
    with agent(data_dir) as a:
        assert a.run("go", execution_id="e1") == first
    assert len(parses) == 1
    assert path.read_bytes() == good
    parses.clear()
    without_snapshot(data_dir)
    with agent(data_dir) as a:
        assert a.run("go", execution_id="e1") == first
    assert parses == []  # repaired, the log answers from its tally again


def test_a_log_written_before_tallies_is_folded_as_before(finished: tuple[Path, Any], parses: list[int]) -> None:
    data_dir, first = finished
    store = FileStore(data_dir)
    with store.claim("e1") as log:
        records = list(log.records)
        last = records[-1]
        assert isinstance(last, ExecutionCompleted)
        store.rewrite(log, [*records[:-1], msgspec.structs.replace(last, tally=None)])
    parses.clear()
    with agent(data_dir) as a:
        assert a.run("go", execution_id="e1") == first
    assert len(parses) == 1


def test_the_header_must_be_this_format(finished: tuple[Path, Any]) -> None:
    data_dir, _ = finished
    data = log_path(data_dir).read_bytes()
    assert tally_module.told(data, "e1") is not None
    assert tally_module.told(b"delite-log/9\n" + data[len(HEADER) :], "e1") is None
    assert tally_module.told(data, "e2") is None  # the first record names another execution


def test_a_rewritten_log_answers_from_its_tally_only_if_its_bytes_are_the_same(
    finished: tuple[Path, Any], parses: list[int]
) -> None:
    """``delite rekey`` rewrites logs: the same records give the same bytes, other bytes are read in full."""
    data_dir, first = finished
    store = FileStore(data_dir)
    with store.claim("e1") as log:
        records = list(log.records)
        store.rewrite(log, records)
    check_tally(log_path(data_dir))
    with agent(data_dir) as a:
        parses.clear()
        assert a.run("go", execution_id="e1") == first
    assert parses == []
    with store.claim("e1") as log:
        store.rewrite(log, [msgspec.structs.replace(records[0], at=records[0].at + 1), *records[1:]])
    with agent(data_dir) as a:
        assert a.run("go", execution_id="e1") == first
    assert len(parses) == 1


def test_a_store_without_log_bytes_writes_a_tally_without_a_hash() -> None:
    store = MemoryStore()
    a = Agent(store=store, provider=ScriptedProvider.tool_loop(3, "pad"), tools=[pad])
    response = a.run("go", execution_id="m1")
    records = store.read("m1").records
    last = records[-1]
    assert isinstance(last, ExecutionCompleted) and last.tally is not None
    assert last.tally.log_sha256 is None
    assert tallied_outcome(records[0], last) == finished_outcome(records)
    assert last.tally.records == len(records) and last.tally.steps == response.steps


# -- finding the last frame from the end -------------------------------------------------------------------------

_payloads = st.lists(
    st.dictionaries(st.text(max_size=5), st.one_of(st.integers(), st.text(max_size=40), st.none()), max_size=4),
    min_size=1,
    max_size=12,
)


@settings(max_examples=200, deadline=None)
@given(_payloads, st.integers(min_value=0, max_value=3))
def test_the_last_frame_is_found_from_the_end(values: list[dict[str, Any]], cut: int) -> None:
    frames = [encode_frame(json.dumps(v).encode()) for v in values]
    data = HEADER + b"".join(frames)
    last = len(data) - len(frames[-1])
    assert last_frame_start(data) == last
    assert last_frame_start(data, last) == last
    assert last_frame_start(data, last + 1) is None
    if cut:  # a torn tail: no frame ends at the end
        assert last_frame_start(data[:-cut]) is None
    assert last_frame_start(data + b"\x00" * 8) is None


def test_a_checksum_that_does_not_verify_is_not_a_frame() -> None:
    frame = bytearray(encode_frame(b'{"kind":"x"}'))
    frame[4] ^= 1  # the length's checksum
    assert last_frame_start(HEADER + bytes(frame)) is None
    assert zlib.crc32(bytes(frame[:4])) != int.from_bytes(frame[4:8], "little")


def test_a_tally_written_by_hand_that_disagrees_with_the_fold_is_reported_by_health(
    finished: tuple[Path, Any],
) -> None:
    """Whoever can write the log can bind a wrong tally to it: health folds every log and says so."""
    data_dir, first = finished
    rebind(log_path(data_dir), steps=999)
    kinds = [p.kind for p in DataDir(data_dir).health().problems]
    assert "tally-mismatch" in kinds
    with agent(data_dir) as a:
        assert a.run("go", execution_id="e1").steps == 999  # what the log says, as the health report warns
    assert first.steps != 999


def test_other_input_on_a_finished_execution_answered_from_its_tally_is_refused(finished: tuple[Path, Any]) -> None:
    data_dir, _ = finished
    with agent(data_dir) as a, pytest.raises(UsageError, match="another input"):
        a.run("something else", execution_id="e1")  # the tally's input is the log's own first record's


def test_the_async_api_and_a_runtime_write_the_same_tally(data_dir: Path) -> None:
    with agent(data_dir) as a:
        response = asyncio.run(a.arun("go", execution_id="a1"))
    check_tally(log_path(data_dir, "a1"))
    with Runtime(data_dir) as rt:
        b = agent(data_dir)
        rt.join(b)
        eid = rt.go(b, "go", execution_id="r1")
        assert rt.wait(eid, timeout=60).steps == response.steps
    check_tally(log_path(data_dir, "r1"))


# -- listings ------------------------------------------------------------------------------------------------------


def _finish_by_hand(
    store: FileStore, eid: str, records: list[Record], last: ExecutionCompleted | ExecutionCancelled
) -> None:
    """A log of ``records`` ended by ``last`` with the tally the engine would write (``tallied``)."""
    store.create(eid, records)
    with store.claim(eid) as log:
        log.append([tallied(last, log.state(), log)], barrier=True)


@pytest.mark.parametrize("shape", ["failed-then-resumed", "two-models", "sub-agent", "fork", "cancelled", "output"])
def test_a_listing_summarizes_a_finished_log_from_its_tally_as_the_fold_does(data_dir: Path, shape: str) -> None:
    store = FileStore(data_dir)
    records = _crafted(failed=shape == "failed-then-resumed", cost="0.5", known=shape != "two-models")
    first = records[0]
    assert isinstance(first, ExecutionStarted)
    started = msgspec.structs.replace(
        first,
        execution_id="x1",
        agent_id="support",
        metadata={"thread": "t-1", "n": 3},
        input="i" * 700,  # longer than a listing's preview
        parent_id="p1" if shape == "sub-agent" else None,
        parent_call="p1:c" if shape == "sub-agent" else None,
        forked_from="origin" if shape == "fork" else None,
        fork_step=1 if shape == "fork" else None,
    )
    records[0] = started
    if shape == "two-models":
        records.append(ModelResponded(at=7.5, step=3, model="other", content="again", usage=Usage(output_tokens=1)))
    last: ExecutionCompleted | ExecutionCancelled
    if shape == "cancelled":
        last = ExecutionCancelled(at=9.0, reason="stop")
    else:
        output = {"n": 1} if shape == "output" else None
        last = ExecutionCompleted(at=9.0, answer="a" * 600, output=output)
    _finish_by_hand(store, "x1", records, last)
    data = log_path(data_dir, "x1").read_bytes()
    from_tally = tally_module.summary(data, "x1")
    assert from_tally is not None
    assert from_tally == summary_of_log("x1", data, path=str(log_path(data_dir, "x1")))


def test_a_first_listing_folds_no_finished_log_and_health_finds_its_rows_right(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch, listing_folds: list[str]
) -> None:
    with agent(data_dir, steps=3) as a:
        for i in range(4):
            a.run("go", execution_id=f"f{i}", metadata={"i": i})
        started = ExecutionStarted(execution_id="open", input="go", config=a.fingerprint())
        a.store.claim("open", create=[started]).release()  # running: folded as before
    listed = {s.id: s for s in DataDir(data_dir).list().items}
    assert listing_folds == ["open"]
    assert listed["f2"].status == "completed" and listed["f2"].metadata == {"i": 2} and listed["f2"].steps == 4
    monkeypatch.undo()
    report = DataDir(data_dir).health()
    assert report.healthy, report.problems  # every index row equals the one the fold of its log gives


def test_a_tally_of_another_version_is_not_believed(finished: tuple[Path, Any], parses: list[int]) -> None:
    """A tally that gains a field gets a new version: an older one's missing field is never read as its default."""
    data_dir, first = finished
    rebind(log_path(data_dir), version=TALLY_VERSION + 1)
    assert tally_module.told(log_path(data_dir).read_bytes(), "e1") is None
    with agent(data_dir) as a:
        assert a.run("go", execution_id="e1") == first
    assert len(parses) == 1


def test_health_reports_a_hand_written_tally_whose_listing_counts_disagree(finished: tuple[Path, Any]) -> None:
    data_dir, first = finished
    rebind(log_path(data_dir), tool_calls=first.steps + 5)
    assert "tally-mismatch" in [p.kind for p in DataDir(data_dir).health().problems]
