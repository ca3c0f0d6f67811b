"""Fuzz the log reader: any bytes give records or a typed error, in bounded time and memory.

Inputs are random bytes, valid logs with random damage (bit flips, overwritten, inserted and deleted runs,
truncation), and frames whose checksums are right but whose contents are hostile: a verified length field up
to 4 GiB, payloads that are not JSON or not records, records in an order no run writes. The reader must
return :class:`LogContents` or raise :class:`LogCorruptError` / :class:`UnsupportedFormatError` (both
:class:`DeliteError`); it must never loop (every call here runs under Hypothesis's deadline and pytest's
timeout) and never allocate more than a small multiple of its input (measured with ``tracemalloc``).
The fold of whatever the reader returns must likewise give a state or a :class:`DeliteError`.
"""

from __future__ import annotations

import contextlib
import struct
import tracemalloc
import zlib
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from delite.errors import DeliteError, LogCorruptError, UnsupportedFormatError
from delite.log import parse_log
from delite.log._codec import encode_record
from delite.log._framing import HEADER, MAX_RECORD_SIZE, encode_frame
from delite.log.records import (
    DecisionRecorded,
    ExecutionCompleted,
    ExecutionResumed,
    ExecutionStarted,
    ExecutionSuspended,
    InDoubtResolved,
    InputSubmitted,
    ModelResponded,
    RecordedToolCall,
    SuspendReason,
    ToolFinished,
    ToolStarted,
    Usage,
)
from delite.state._fold import fold

# No deadline: a timing limit fails on a loaded machine, not on a slow reader (speed is measured in benchmarks/).
FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def valid_log() -> list[Any]:
    call = RecordedToolCall(id="c1.0", name="t", arguments={"x": 1})
    return [
        ExecutionStarted(at=1.0, execution_id="e", input="hi"),
        ModelResponded(at=2.0, step=1, tool_calls=[call], usage=Usage(input_tokens=3, output_tokens=4)),
        ToolStarted(at=3.0, call_id="c1.0", idempotency_key="e:c1.0"),
        ToolFinished(at=4.0, call_id="c1.0", result={"ok": True}),
        ExecutionSuspended(at=5.0, reason=SuspendReason(kind="budget", message="limit")),
        ExecutionResumed(at=6.0, pid=7),
        ModelResponded(at=7.0, step=2, content="done"),
        ExecutionCompleted(at=8.0, answer="done"),
    ]


VALID = HEADER + b"".join(encode_frame(encode_record(r)) for r in valid_log())

# Any record the reader can decode, in any order: the fold must cope with sequences no run writes.
RECORDS = st.sampled_from(
    [
        *valid_log(),
        ToolStarted(at=1.0, call_id="c9.9", idempotency_key="e:c9.9", attempt=3),
        ToolFinished(at=1.0, call_id="c9.9", error="boom"),
        DecisionRecorded(at=1.0, call_id="c1.0", approved=True),
        InputSubmitted(at=1.0, call_id="c1.0", text="Oslo"),
        InDoubtResolved(at=1.0, call_id="c1.0"),
        ExecutionSuspended(at=1.0, reason=SuspendReason(kind="approval")),
    ]
)


def frame_raw(payload: bytes, *, length: int | None = None) -> bytes:
    """A frame whose checksums verify, for any payload and any claimed length."""
    n = len(payload) if length is None else length
    head = struct.pack("<I", n)
    return head + struct.pack("<II", zlib.crc32(head), zlib.crc32(payload)) + payload


def read_bounded(data: bytes) -> Any:
    """Parse ``data``; it returns contents or raises a typed error, using memory bounded by its size."""
    tracemalloc.start()
    try:
        error: DeliteError | None = None
        try:
            contents = parse_log(data)
        except (LogCorruptError, UnsupportedFormatError) as e:
            error, contents = e, None
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # Decoded records cost a few times their JSON; a length field is never an allocation.
    assert peak < 64 * len(data) + 1_000_000, f"peak {peak} bytes for {len(data)} bytes of log"
    if error is not None:
        assert str(error)  # the message builds
    if contents is not None:
        assert contents.size == len(data)
        assert len(HEADER) <= contents.end <= len(data) or (contents.end == 0 and not contents.records)
        assert len(contents.records) == len(contents.offsets)
        assert contents.offsets == sorted(contents.offsets)
        if contents.torn is None:
            assert contents.end == len(data)
        else:
            assert contents.torn.offset == contents.end
            assert contents.torn.offset + contents.torn.length == len(data)
        with contextlib.suppress(DeliteError):
            fold(contents.records)
    return contents


@FUZZ
@given(st.binary(max_size=2048))
@example(b"")
@example(HEADER)
@example(HEADER[:5])
@example(b"delite-log/2\n")
@example(b"delite-log/1")
@example(HEADER + b"\x00" * 100)
def test_random_bytes(data: bytes) -> None:
    read_bounded(data)


@FUZZ
@given(st.binary(max_size=2048))
def test_random_bytes_after_the_header(body: bytes) -> None:
    read_bounded(HEADER + body)


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    data = bytearray(VALID)
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["flip", "overwrite", "insert", "delete", "truncate"]))
        if not data:
            break
        pos = draw(st.integers(0, len(data) - 1))
        if kind == "flip":
            data[pos] ^= 1 << draw(st.integers(0, 7))
        elif kind == "overwrite":
            chunk = draw(st.binary(min_size=1, max_size=16))
            data[pos : pos + len(chunk)] = chunk
        elif kind == "insert":
            data[pos:pos] = draw(st.binary(min_size=1, max_size=16))
        elif kind == "delete":
            del data[pos : pos + draw(st.integers(1, 16))]
        else:
            del data[pos:]
    return bytes(data)


@FUZZ
@given(mutated())
def test_mutated_valid_logs(data: bytes) -> None:
    contents = read_bounded(data)
    if contents is not None and data[: contents.end] == VALID[: contents.end]:
        # Whatever the reader accepted from an untouched prefix is exactly that prefix's records.
        assert contents.records == valid_log()[: len(contents.records)]


@FUZZ
@given(
    st.lists(
        st.one_of(
            RECORDS.map(lambda r: encode_frame(encode_record(r))),
            st.binary(max_size=64).map(frame_raw),  # verified frames holding anything
            st.sampled_from([b"{}", b"[]", b'{"kind":"no-such-kind"}', b'{"kind":"tool-started","attempt":"x"}']).map(
                frame_raw
            ),
            st.integers(MAX_RECORD_SIZE - 16, 2**32 - 1).map(lambda n: frame_raw(b"", length=n)),  # huge lengths
        ),
        max_size=12,
    ),
    st.integers(0, 64),
)
def test_hostile_frames_with_good_checksums(frames: list[bytes], cut: int) -> None:
    data = HEADER + b"".join(frames)
    read_bounded(data)
    read_bounded(data[: max(0, len(data) - cut)])  # and with the last frame torn


def test_a_frame_is_exactly_one_record() -> None:
    """An empty payload or one holding two records is refused, never skipped or split (found by this fuzzer)."""
    one = encode_record(valid_log()[0])
    for payload in (b"", b" ", one + b"," + one, b"[" + one + b"]"):
        data = HEADER + frame_raw(payload) + frame_raw(one)
        with pytest.raises(UnsupportedFormatError, match="record at byte 13"):
            parse_log(data)


def test_a_huge_verified_length_is_damage_or_a_torn_tail_never_an_allocation() -> None:
    good = HEADER + encode_frame(encode_record(valid_log()[0]))
    over = frame_raw(b"x" * 10, length=2**32 - 1)
    with pytest.raises(LogCorruptError) as info:
        parse_log(good + over + good[len(HEADER) :])
    assert info.value.offset == len(good)
    under = frame_raw(b"", length=MAX_RECORD_SIZE)  # within the limit, past the end: a crash cut it
    contents = read_bounded(good + under)
    assert contents.torn is not None and contents.torn.reason == "incomplete frame payload"
    assert len(contents.records) == 1
