from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import msgspec
import pytest

from delite import Agent, tool
from delite.errors import InvalidRecordError, LogCorruptError, RecordTooLargeError, UnsupportedFormatError
from delite.log import Durability, LogWriter, _codec, parse_log, read_log
from delite.log._codec import as_read, decode_record, encode_record
from delite.log._framing import FRAME_HEADER_SIZE, HEADER, MAX_RECORD_SIZE
from delite.log.records import (
    ConfigFingerprint,
    DecisionRecorded,
    DriftAccepted,
    ExecutionCancelled,
    ExecutionCompleted,
    ExecutionFailed,
    ExecutionResumed,
    ExecutionStarted,
    ExecutionSuspended,
    InDoubtResolved,
    InputSubmitted,
    ModelCallFailed,
    ModelResponded,
    PendingCall,
    RecordedToolCall,
    SuspendReason,
    ToolFinished,
    ToolSpec,
    ToolStarted,
    Usage,
)
from delite.providers import ModelTurn, ProviderCall

ALL_RECORDS = [
    ExecutionStarted(
        at=1.0,
        execution_id="e1",
        agent_id="a",
        input="hi ✓",
        history=[{"role": "user", "content": "before"}],
        metadata={"thread_id": "t", "n": 2**63 - 1},
        config=ConfigFingerprint(prompt="p", tools=[ToolSpec(name="t", parameters={"type": "object"})], provider="x"),
        model="m",
        idempotency_key="k",
        parent_id="p",
        depth=1,
    ),
    ModelResponded(
        at=2.0,
        step=1,
        model="m",
        content=None,
        tool_calls=[RecordedToolCall(id="c1.0", name="t", arguments={"a": [1, 2.5, None, "s"]}, provider_id="x")],
        usage=Usage(input_tokens=3, output_tokens=4, cached_input_tokens=5, cost="0.0012"),
        duration_ms=1.5,
        raw_usage={"prompt_tokens": 3},
    ),
    ModelCallFailed(at=2.5, step=1, attempt=2, error="boom", retryable=True, status_code=529),
    ToolStarted(at=3.0, call_id="c1.0", idempotency_key="e1:c1.0", attempt=2),
    ToolFinished(at=4.0, call_id="c1.0", result={"ok": True}, duration_ms=0.5),
    ToolFinished(at=4.0, call_id="c1.1", error="bad", source="invalid"),
    ExecutionSuspended(at=5.0, reason=SuspendReason(kind="approval", calls=[PendingCall(call_id="c", name="t")])),
    DecisionRecorded(at=6.0, call_id="c", approved=False, reason="no"),
    InputSubmitted(at=6.5, call_id="c", text="yes"),
    InDoubtResolved(at=7.0, call_id="c"),
    DriftAccepted(at=7.5, changes=[["prompt", "a", "b"]], config=ConfigFingerprint(prompt="b"), policy="warn"),
    ExecutionResumed(at=8.0, pid=42),
    ExecutionFailed(at=8.5, error_type="ProviderError", message="x"),
    ExecutionCompleted(at=9.0, answer="done", output={"x": 1}),
    ExecutionCancelled(at=9.5, reason="r"),
]


@pytest.mark.parametrize("record", ALL_RECORDS, ids=lambda r: type(r).__name__)
def test_record_round_trip(record: object) -> None:
    assert decode_record(encode_record(record)) == record  # type: ignore[arg-type]


def test_big_integers_survive_exactly() -> None:
    record = ToolFinished(call_id="c", result={"max": 2**63 - 1, "min": -(2**63)})
    assert decode_record(encode_record(record)).result == {"max": 2**63 - 1, "min": -(2**63)}  # type: ignore[union-attr]


class CountingEncoder:
    """The codec's encoder, counting what it encodes."""

    def __init__(self) -> None:
        self.encoded: list[str] = []

    def encode(self, record: object) -> bytes:
        self.encoded.append(type(record).__name__)
        return _codec_encoder.encode(record)


_codec_encoder = msgspec.json.Encoder()


def test_a_record_checked_then_written_is_encoded_once(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    counting = CountingEncoder()
    monkeypatch.setattr(_codec, "_encoder", counting)
    steps = 6

    def model(messages: list[dict[str, Any]], tools: list[dict[str, Any]], model: str | None) -> ModelTurn:
        i = sum(1 for m in messages if m["role"] == "tool")
        if i < steps:
            return ModelTurn(tool_calls=[ProviderCall(id=f"p{i}", name="noop", arguments={"i": i})])
        return ModelTurn(content="done")

    @tool
    def noop(i: int) -> dict[str, int]:
        """Nothing."""
        return {"i": i}

    with Agent(tmp_path / "data", provider=model, tools=[noop]) as agent:
        before = len(counting.encoded)
        response = agent.run("go", execution_id="once")
        records = agent.store.read("once").records
    assert response.answer == "done"
    started = sum(1 for r in records if isinstance(r, ExecutionStarted))
    encoded = counting.encoded[before:]
    # each tool's call and outcome is encoded once, though the outcome is checked before it is written; a model
    # turn is checked, and the copy decoded from that check is what is written, not encoded again (the last
    # turn is, once: the run's completion is checked between them)
    assert encoded.count("ToolStarted") == encoded.count("ToolFinished") == steps
    assert encoded.count("ModelResponded") == steps + 2
    assert len(encoded) <= len(records) + 2 and started == 1


def test_the_record_checked_last_is_reused_only_for_that_very_record() -> None:
    first = ToolFinished(call_id="c", result={"n": [1]})
    payload = encode_record(first)
    assert encode_record(first) is payload
    equal = ToolFinished(call_id="c", result={"n": [1]})
    assert encode_record(equal) == payload and encode_record(equal) is not payload
    other = ToolFinished(call_id="c", result={"n": [2]})
    assert decode_record(encode_record(other)) == other
    copy = as_read(first)
    assert copy == first and copy is not first and encode_record(copy) == payload
    bad = ToolFinished(call_id="c", result={"s": "\ud800"})  # a lone surrogate: not UTF-8
    for _ in range(2):  # a record that failed its check is checked again, never remembered
        with pytest.raises(InvalidRecordError):
            encode_record(bad)


def test_unknown_record_kind_is_a_clear_error() -> None:
    with pytest.raises(UnsupportedFormatError, match="record at byte 7"):
        decode_record(b'{"kind":"from-the-future","at":1}', offset=7)


def test_records_gain_fields_with_defaults() -> None:
    # A record written before a field existed decodes with the default.
    old = b'{"kind":"tool-started","at":1.0,"call_id":"c"}'
    rec = decode_record(old)
    assert rec == ToolStarted(at=1.0, call_id="c", idempotency_key="", attempt=1)
    # A field a newer writer added (unknown here) is ignored, not an error.
    newer = b'{"kind":"tool-started","at":1.0,"call_id":"c","new_field":[1,2]}'
    assert decode_record(newer) == rec


def _write_log(path: Path, records: list) -> list[int]:
    writer = LogWriter.create(str(path), Durability.FULL, records[:1])
    ends = [writer.size]
    for r in records[1:]:
        writer.append([r])
        ends.append(writer.size)
    writer.close()
    return ends


def test_write_read_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "x.log"
    _write_log(path, ALL_RECORDS)
    contents = read_log(str(path))
    assert contents.records == ALL_RECORDS
    assert contents.torn is None
    assert path.read_bytes().startswith(HEADER)


def test_torn_tail_at_every_offset_recovers_exact_prefix(tmp_path: Path) -> None:
    path = tmp_path / "x.log"
    ends = _write_log(path, ALL_RECORDS)
    data = path.read_bytes()
    for cut in range(len(data) + 1):
        contents = parse_log(data[:cut])
        complete = sum(1 for e in ends if e <= cut)
        assert contents.records == ALL_RECORDS[:complete], cut
        if cut in ends or cut in (0, len(HEADER)):
            assert contents.torn is None, cut
        else:
            assert contents.torn is not None, cut
        if complete:
            assert contents.end == ends[complete - 1], cut
        else:
            assert contents.end == (len(HEADER) if cut >= len(HEADER) else 0), cut


def test_flipped_byte_inside_a_complete_record_is_detected(tmp_path: Path) -> None:
    path = tmp_path / "x.log"
    ends = _write_log(path, ALL_RECORDS)
    data = path.read_bytes()
    last_start = ends[-2]
    for pos in range(len(HEADER), len(data)):
        damaged = bytearray(data)
        damaged[pos] ^= 0x01
        if pos < last_start + 8:  # any earlier record, or the last record's length or its checksum
            with pytest.raises(LogCorruptError) as info:
                parse_log(bytes(damaged))
            assert info.value.offset <= pos
        else:
            # A bad payload in the last record looks exactly like a torn append: it is cut off and reported.
            contents = parse_log(bytes(damaged))
            assert contents.records == ALL_RECORDS[:-1]
            assert contents.torn is not None and contents.torn.offset == last_start


def test_flipped_header_byte(tmp_path: Path) -> None:
    path = tmp_path / "x.log"
    _write_log(path, ALL_RECORDS[:2])
    data = bytearray(path.read_bytes())
    data[0] ^= 0x20
    with pytest.raises(LogCorruptError, match="not a delite log"):
        parse_log(bytes(data))


def test_future_format_is_refused() -> None:
    with pytest.raises(UnsupportedFormatError, match="delite-log/2"):
        parse_log(b"delite-log/2\n" + b"\x00" * 40)


def test_huge_length_field_is_damage_not_an_allocation() -> None:
    import struct
    import zlib

    length = 2**32 - 1
    frame = struct.pack("<III", length, zlib.crc32(struct.pack("<I", length)), 0) + b"x" * 100
    good = HEADER + frame + b"y" * 50
    with pytest.raises(LogCorruptError, match="exceeds the limit"):
        parse_log(good)


def test_zero_filled_tail_is_torn_not_corrupt(tmp_path: Path) -> None:
    path = tmp_path / "x.log"
    _write_log(path, ALL_RECORDS[:3])
    data = path.read_bytes() + b"\x00" * 4096
    contents = parse_log(data)
    assert contents.records == ALL_RECORDS[:3]
    assert contents.torn is not None and contents.torn.reason == "zero-filled tail"


def test_writer_repairs_torn_tail_before_appending(tmp_path: Path) -> None:
    path = tmp_path / "x.log"
    ends = _write_log(path, ALL_RECORDS[:3])
    with path.open("ab") as f:
        f.write(b"\x05\x00\x00")  # a crash mid-append
    contents = read_log(str(path))
    assert contents.torn is not None
    writer = LogWriter.open(str(path), contents.end, Durability.FULL)
    writer.append([ALL_RECORDS[3]])
    writer.close()
    after = read_log(str(path))
    assert after.records == ALL_RECORDS[:4] and after.torn is None
    assert after.offsets[-1] == ends[-1]


def test_torn_header_is_repaired(tmp_path: Path) -> None:
    path = tmp_path / "x.log"
    path.write_bytes(HEADER[:5])
    contents = read_log(str(path))
    assert contents.records == [] and contents.torn is not None
    writer = LogWriter.open(str(path), contents.end, Durability.FULL)
    writer.append([ALL_RECORDS[0]])
    writer.close()
    assert read_log(str(path)).records == [ALL_RECORDS[0]]


def test_record_too_large_is_refused_and_nothing_written(tmp_path: Path) -> None:
    path = tmp_path / "x.log"
    writer = LogWriter.create(str(path), Durability.OFF, ALL_RECORDS[:1])
    size = writer.size
    with pytest.raises(RecordTooLargeError):
        writer.append([ToolFinished(call_id="c", result="x" * (MAX_RECORD_SIZE + 1))])
    assert writer.size == size == os.path.getsize(path)
    writer.close()


def test_frame_overhead_is_small() -> None:
    assert FRAME_HEADER_SIZE == 12
    payload = encode_record(ToolStarted(at=1.0, call_id="c1.0", idempotency_key="e:c1.0"))
    assert len(payload) < 100
    assert msgspec.json.decode(payload)["kind"] == "tool-started"
