"""The chunked reader (``parse_stream``) gives exactly what the whole-file reader (``parse_log``) gives.

Same records, offsets, end, size and torn tail for every valid, cut, zero-filled or damaged log, and the same
error (type, offset, reason) for damage and for unreadable records, whatever the chunk size: a frame cut by a
chunk boundary is completed before it is judged, and damage is reported before an unreadable record.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from delite.errors import DeliteError
from delite.log import _reader
from delite.log._codec import encode_record
from delite.log._framing import HEADER, encode_frame
from delite.log._reader import parse_log, parse_stream
from delite.log.records import (
    ExecutionStarted,
    ModelResponded,
    RecordedToolCall,
    ToolFinished,
    ToolStarted,
    Usage,
)

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def log_bytes(steps: int = 6) -> bytes:
    records: list[Any] = [ExecutionStarted(at=1.0, execution_id="e", input="hi")]
    for i in range(steps):
        cid = f"c{i + 1}.0"
        call = RecordedToolCall(id=cid, name="t", arguments={"x": "y" * (i * 7)})
        records += [
            ModelResponded(at=2.0, step=i + 1, tool_calls=[call], usage=Usage(input_tokens=3, output_tokens=4)),
            ToolStarted(at=3.0, call_id=cid, idempotency_key=f"e:{cid}"),
            ToolFinished(at=4.0, call_id=cid, result={"ok": i}),
        ]
    return HEADER + b"".join(encode_frame(encode_record(r)) for r in records)


def outcome(parse: Callable[[], Any]) -> tuple[str, Any]:
    try:
        c = parse()
    except DeliteError as e:
        return type(e).__name__, str(e)
    return "ok", (c.records, c.offsets, c.end, c.size, c.torn)


def both(data: bytes, chunk: int, monkeypatch: pytest.MonkeyPatch) -> tuple[Any, Any]:
    monkeypatch.setattr(_reader, "CHUNK_SIZE", chunk)
    whole = outcome(lambda: parse_log(data, path="p"))
    streamed = outcome(lambda: parse_stream(io.BytesIO(data).read, path="p"))
    return whole, streamed


@pytest.mark.parametrize("chunk", [1, 5, 13, 64, 200, 1 << 20])
def test_a_valid_log_reads_the_same_in_any_chunks(chunk: int, monkeypatch: pytest.MonkeyPatch) -> None:
    data = log_bytes()
    whole, streamed = both(data, chunk, monkeypatch)
    assert whole[0] == "ok"
    assert streamed == whole


@pytest.mark.parametrize("chunk", [7, 64])
def test_every_cut_point_gives_the_same_torn_tail(chunk: int, monkeypatch: pytest.MonkeyPatch) -> None:
    data = log_bytes(3)
    for cut in range(len(data) + 1):
        whole, streamed = both(data[:cut], chunk, monkeypatch)
        assert streamed == whole, cut


@pytest.mark.parametrize("chunk", [7, 64])
def test_a_zero_filled_tail_and_zeros_in_the_middle(chunk: int, monkeypatch: pytest.MonkeyPatch) -> None:
    data = log_bytes(3)
    tail = both(data + bytes(300), chunk, monkeypatch)
    assert tail[0] == tail[1]
    assert tail[0][0] == "ok" and tail[0][1][4].reason == "zero-filled tail"
    middle = both(data + bytes(300) + data[len(HEADER) :], chunk, monkeypatch)
    assert middle[0] == middle[1]
    assert middle[0][0] == "LogCorruptError"


def test_damage_is_reported_before_an_unreadable_record(monkeypatch: pytest.MonkeyPatch) -> None:
    data = log_bytes(4)
    unreadable = encode_frame(b'{"kind":"no-such-record","at":1.0}')
    body = data[len(HEADER) :]
    with_bad = HEADER + unreadable + body
    flipped = bytearray(with_bad)
    flipped[-20] ^= 0x01  # a payload checksum fails in the last frame... which is a torn tail
    flipped[-200] ^= 0x01  # and one before it: damage
    for chunk in (16, 64, 1 << 20):
        whole, streamed = both(with_bad, chunk, monkeypatch)
        assert whole[0] == "UnsupportedFormatError" and streamed == whole
        whole, streamed = both(bytes(flipped), chunk, monkeypatch)
        assert whole[0] == "LogCorruptError" and streamed == whole


@FUZZ
@given(
    chunk=st.integers(1, 300),
    edits=st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), max_size=3),
    cut=st.integers(0, 10_000),
)
def test_any_damage_reads_the_same(chunk: int, edits: list[tuple[int, int]], cut: int) -> None:
    data = bytearray(log_bytes())
    for at, value in edits:
        data[at % len(data)] = value
    data = data[: max(cut, len(HEADER))] if cut < len(data) else data
    with pytest.MonkeyPatch.context() as mp:
        whole, streamed = both(bytes(data), chunk, mp)
    assert streamed == whole
