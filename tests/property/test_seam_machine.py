"""A state machine against the record-level store: fenced appends, ranged reads and reclaims, on every store.

The model is a plain list of records. Whatever the sequence of appends (with the right, a stale or a future
``expected``), reads (any ``after`` and ``limit``) and reclaims (a new handle, as another process would
hold), the store's records are the model's, numbered from 1, and a refused append wrote nothing.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from delite.errors import SequenceConflictError
from delite.log.records import ExecutionStarted, ModelResponded, Record
from delite.store import ExecutionLog, FileStore, MemoryStore, Store


class SeamMachine(RuleBasedStateMachine):
    kind = "memory"

    def __init__(self) -> None:
        super().__init__()
        self.dir = Path(tempfile.mkdtemp(prefix="seam-"))
        self.store = self.handle(None)
        self.model: list[Record] = [ExecutionStarted(at=1.0, execution_id="e1")]
        self.log: ExecutionLog | None = self.store.claim("e1", create=list(self.model))
        self.n = 0

    def handle(self, old: Store | None) -> Store:
        if self.kind == "file":
            return FileStore(self.dir)
        return old if old is not None else MemoryStore()

    def teardown(self) -> None:
        if self.log is not None:
            self.log.release()
        shutil.rmtree(self.dir, ignore_errors=True)

    def records(self, count: int) -> list[Record]:
        out: list[Record] = []
        for _ in range(count):
            self.n += 1
            out.append(ModelResponded(at=2.0, step=self.n, content=f"r{self.n}"))
        return out

    @precondition(lambda self: self.log is not None)
    @rule(count=st.integers(1, 3), fenced=st.booleans())
    def append(self, count: int, fenced: bool) -> None:
        assert self.log is not None
        batch = self.records(count)
        self.log.append(batch, expected=len(self.model) if fenced else None)
        self.model.extend(batch)

    @precondition(lambda self: self.log is not None)
    @rule(count=st.integers(1, 3), off=st.integers(-5, 5).filter(lambda d: d != 0))
    def append_with_a_wrong_head(self, count: int, off: int) -> None:
        assert self.log is not None
        expected = max(0, len(self.model) + off)
        if expected == len(self.model):
            return
        with pytest.raises(SequenceConflictError) as info:
            self.log.append(self.records(count), expected=expected)
        assert info.value.actual == len(self.model)

    @rule()
    def reclaim(self) -> None:
        if self.log is not None:
            self.log.release()
        self.store = self.handle(self.store)
        self.log = self.store.claim("e1")
        assert self.log.head == len(self.model)
        assert self.log.records == self.model

    @rule(after=st.none() | st.integers(0, 40), limit=st.none() | st.integers(0, 40))
    def read(self, after: int | None, limit: int | None) -> None:
        got = self.store.read("e1", after=after, limit=limit)
        start = after or 0
        stop = None if limit is None else start + limit
        assert got.records == self.model[start:stop]
        assert [e.seq for e in got.entries] == list(range(start + 1, start + 1 + len(got.records)))
        assert got.head == len(self.model)

    @invariant()
    def head_is_the_model_length(self) -> None:
        assert self.store.head("e1") == len(self.model)
        if self.log is not None:
            assert self.log.head == len(self.model)


class FileSeamMachine(SeamMachine):
    kind = "file"


TestMemorySeam = SeamMachine.TestCase
TestMemorySeam.settings = settings(max_examples=40, stateful_step_count=15, deadline=None)
TestFileSeam = FileSeamMachine.TestCase
TestFileSeam.settings = settings(max_examples=40, stateful_step_count=15, deadline=None)
