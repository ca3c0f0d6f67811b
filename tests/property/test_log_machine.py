"""A Hypothesis state machine drives the log through appends, crashes, reopens and folds against a plain list.

The model is the list of every record the machine tried to append, in order. ``durable`` counts the records
whose append returned (acknowledged) and were not torn by a later crash. The log on disk must always hold a
prefix of the model that is at least ``durable`` long: every acknowledged record is there, a record whose
append was torn is not, and a complete record from an append that never returned may or may not be.
"""

from __future__ import annotations

import os
import shutil
import struct
import tempfile
import zlib
from typing import Any

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from delite.log import Durability, LogWriter, parse_log, read_log
from delite.log._codec import encode_record
from delite.log._framing import FRAME_HEADER_SIZE, HEADER, encode_frame
from delite.log.records import (
    ExecutionCompleted,
    ExecutionResumed,
    ExecutionStarted,
    ExecutionSuspended,
    ModelResponded,
    Record,
    RecordedToolCall,
    SuspendReason,
    ToolFinished,
    ToolStarted,
    Usage,
)
from delite.state._fold import fold

TEXT = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=40)


def next_record(records: list[Record], choice: int, text: str) -> Record:
    """A record that may follow ``records`` in a real run (so the fold accepts it)."""
    last = records[-1] if records else None
    if last is None:
        return ExecutionStarted(at=0.0, execution_id="e", input=text)
    at = float(len(records))
    if any(isinstance(r, ExecutionCompleted) for r in records):
        return ExecutionResumed(at=at, pid=choice)  # a late resume of a finished run changes nothing
    steps = sum(isinstance(r, ModelResponded) for r in records)
    if isinstance(last, ModelResponded) and last.tool_calls:
        return ToolStarted(at=at, call_id=last.tool_calls[0].id, idempotency_key=f"e:{last.tool_calls[0].id}")
    if isinstance(last, ToolStarted):
        if choice % 5 == 0:
            return ToolFinished(at=at, call_id=last.call_id, error=text or "boom")
        return ToolFinished(at=at, call_id=last.call_id, result={"text": text, "n": choice})
    if choice % 7 == 0 and not isinstance(last, ExecutionSuspended):
        return ExecutionSuspended(at=at, reason=SuspendReason(kind="budget", message=text))
    if isinstance(last, ExecutionSuspended):
        return ExecutionResumed(at=at, pid=choice)
    step = steps + 1
    usage = Usage(input_tokens=choice, output_tokens=len(text))
    if choice % 11 == 0:
        return ModelResponded(at=at, step=step, content=text, usage=usage)
    call = RecordedToolCall(id=f"c{step}.0", name="t", arguments={"s": text}, provider_id=f"p{step}")
    return ModelResponded(at=at, step=step, tool_calls=[call], usage=usage)


def follow(records: list[Record], choices: list[int], text: str) -> list[Record]:
    """Records that continue ``records``, one per choice (a run ends when the model answers)."""
    out: list[Record] = []
    for choice in choices:
        rec = next_record(records + out, choice, text)
        out.append(rec)
        if isinstance(rec, ModelResponded) and not rec.tool_calls:
            out.append(ExecutionCompleted(at=rec.at, answer=rec.content or ""))
    return out


def summary(records: list[Any]) -> tuple[Any, ...]:
    """What the fold says about a run, in a form two folds can be compared by."""
    s = fold(records)
    finished = sorted(cid for cid, c in s.calls.items() if c.finished is not None)
    return (
        s.status,
        s.steps,
        s.records,
        s.totals.llm_calls,
        s.totals.tool_calls,
        s.totals.input_tokens,
        s.totals.output_tokens,
        s.answer,
        s.resumes,
        finished,
        len(s.messages),
        s.suspend_reason,
    )


class LogMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.dir = tempfile.mkdtemp(prefix="delite-machine-")
        self.path = os.path.join(self.dir, "x.log")
        self.model: list[Record] = []
        self.durable = 0
        self.writer: LogWriter | None = None
        self.mode = Durability.OFF
        self.dirty = False  # something a crash left behind that the next reopen must cut off

    def teardown(self) -> None:
        if self.writer is not None:
            self.writer.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    # -- rules -------------------------------------------------------------------------------------------

    @initialize(mode=st.sampled_from(list(Durability)), text=TEXT)
    def create(self, mode: Durability, text: str) -> None:
        self.mode = mode
        first = follow([], [0], text)
        self.writer = LogWriter.create(self.path, mode, first)
        self.model = list(first)
        self.durable = len(self.model)

    @precondition(lambda self: self.writer is not None)
    @rule(choices=st.lists(st.integers(0, 1000), min_size=1, max_size=4), text=TEXT, barrier=st.booleans())
    def append(self, choices: list[int], text: str, barrier: bool) -> None:
        assert self.writer is not None
        batch = follow(self.model, choices, text)
        before = self.writer.size
        start = self.writer.append(batch, barrier=barrier)
        assert start == before
        self.model.extend(batch)
        self.durable = len(self.model)
        assert self.writer.size == os.path.getsize(self.path)

    @precondition(lambda self: self.writer is not None and len(self.model) > 1)
    @rule(data=st.data())
    def crash_inside_last_record(self, data: st.DataObject) -> None:
        """The process dies while the last record's bytes were reaching the disk: only part of it is there."""
        self._crash()
        contents = read_log(self.path)
        start = contents.offsets[-1]
        cut = data.draw(st.integers(start, contents.end - 1), label="cut")
        os.truncate(self.path, cut)
        self.model.pop()
        self.durable = len(self.model)
        self.dirty = cut > start

    @precondition(lambda self: self.writer is not None)
    @rule(
        kind=st.sampled_from(["torn-append", "zeros", "short-garbage", "bad-payload"]),
        choices=st.lists(st.integers(0, 1000), min_size=1, max_size=3),
        text=TEXT,
        data=st.data(),
    )
    def crash_with_partial_frame(self, kind: str, choices: list[int], text: str, data: st.DataObject) -> None:
        """The process dies in the middle of an append that never returned, leaving a partial frame behind."""
        self._crash()
        dirty = True
        if kind == "torn-append":
            # An append of several records cut anywhere: complete frames at its start may survive.
            batch = follow(self.model, choices, text)
            frames = [encode_frame(encode_record(r)) for r in batch]
            raw = b"".join(frames)
            cut = data.draw(st.integers(1, len(raw) - 1), label="cut")
            tail = raw[:cut]
            self.model.extend(batch)
            dirty = cut not in {sum(len(f) for f in frames[:i]) for i in range(1, len(frames))}
        elif kind == "zeros":
            tail = b"\x00" * data.draw(st.integers(1, 5000), label="zeros")
        elif kind == "short-garbage":
            tail = data.draw(st.binary(min_size=1, max_size=FRAME_HEADER_SIZE - 1), label="garbage")
        else:
            # A complete header whose payload is garbage: the last frame fails its checksum.
            payload = data.draw(st.binary(min_size=1, max_size=64), label="payload")
            length = struct.pack("<I", len(payload))
            tail = length + struct.pack("<II", zlib.crc32(length), zlib.crc32(payload) ^ 1) + payload
        with open(self.path, "ab") as f:
            f.write(tail)
        self.dirty = dirty

    @precondition(lambda self: self.writer is None)
    @rule()
    def reopen(self) -> None:
        contents = read_log(self.path)
        assert (contents.torn is not None) == self.dirty
        records = contents.records
        assert records == self.model[: len(records)]
        assert len(records) >= self.durable
        self.writer = LogWriter.open(self.path, contents.end, self.mode)
        assert os.path.getsize(self.path) == contents.end
        # What survived is the log now: records of an append that never returned but reached the disk whole
        # stay, the rest of that append is gone.
        self.model = list(records)
        self.durable = len(records)
        self.dirty = False
        after = read_log(self.path)
        assert after.torn is None
        assert after.records == records

    @rule()
    def fold_matches_model(self) -> None:
        records = read_log(self.path).records
        assert summary(records) == summary(self.model[: len(records)])
        if self.writer is not None:
            assert summary(records) == summary(self.model)

    def _crash(self) -> None:
        assert self.writer is not None
        self.writer.close()
        self.writer = None

    # -- invariants --------------------------------------------------------------------------------------

    @invariant()
    def log_is_a_prefix_of_the_model(self) -> None:
        with open(self.path, "rb") as f:
            data = f.read()
        assert data.startswith(HEADER)
        contents = parse_log(data)
        records = contents.records
        assert records == self.model[: len(records)]
        assert len(records) >= self.durable
        if self.writer is not None:
            assert contents.torn is None
            assert records == self.model
            assert contents.end == self.writer.size == len(data)


LogMachine.TestCase.settings = settings(max_examples=100, stateful_step_count=30, deadline=None)
TestLogMachine = LogMachine.TestCase
