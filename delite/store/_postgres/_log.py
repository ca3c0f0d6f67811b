"""A claimed execution in PostgreSQL: appends fenced by the claim's head and owner epoch, in one statement."""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, NoReturn

from delite.errors import ClaimLostError, SequenceConflictError, UsageError
from delite.log._durability import Durability
from delite.log.records import AnyRecord, ExecutionStarted, Record
from delite.state._fold import apply, fold
from delite.state._model import ExecutionState
from delite.store._base import ExecutionLog
from delite.store._derive import summary_of_state
from delite.store._postgres._rows import FOLD_ERRORS, encoded, fold_or_none, log_columns

if TYPE_CHECKING:
    from delite.store._postgres._store import PostgresStore

__all__ = ["APPEND", "PostgresExecutionLog"]

APPEND = """WITH moved AS (
    UPDATE executions SET head_seq = %(new)s, status = %(status)s, advanceable = %(adv)s, dormant = %(dormant)s,
        updated_at = %(updated)s
    WHERE id = %(id)s AND head_seq = %(head)s AND owner_epoch = %(epoch)s
    RETURNING id
)
INSERT INTO records (execution_id, seq, payload, crc)
SELECT moved.id, r.seq, r.payload, r.crc
FROM moved, unnest(%(seqs)s::bigint[], %(payloads)s::bytea[], %(crcs)s::bigint[]) AS r(seq, payload, crc)"""
"""Move the head (fenced by head and epoch) and insert the records only if it moved: one statement."""


class PostgresExecutionLog(ExecutionLog):
    """A claimed execution in PostgreSQL: its records when claimed, its owner epoch and the claim's lock."""

    def __init__(
        self,
        store: PostgresStore,
        execution_id: str,
        records: list[AnyRecord],
        *,
        epoch: int,
        generation: int,
        created: bool,
        was_advanceable: bool,
    ) -> None:
        """Wrap a won claim (the advisory lock is held; ``epoch`` is the one this claim set).

        ``was_advanceable`` is the execution's ``advanceable`` column when claimed; the records are folded
        only when the first append needs the state (a claim that only reads folds nothing here).
        """
        self.execution_id = execution_id
        self.records = records
        self.created = created
        self._store: PostgresStore | None = store
        self._head = len(records)
        self._epoch = epoch
        self._generation = generation
        self._state: ExecutionState | None = None
        self._folded = False  # whether _state is the fold of the log up to _head (None then: it does not fold)
        self._advanceable = was_advanceable
        self._appended: list[Record] = []  # what this claim wrote, for the listing summary kept at release

    def _current_state(self, store: PostgresStore) -> ExecutionState | None:
        """The fold of the log up to the head (None: it does not fold), kept and advanced by each append."""
        if not self._folded:
            if self._head == len(self.records):
                records: Sequence[Record] = self.records
            else:  # an append failed after folding: read what the log holds
                records = store.read(self.execution_id, limit=self._head).records
            self._state = fold_or_none(records)
            self._folded = True
        return self._state

    @property
    def head(self) -> int:
        """The sequence of the last record: those read at the claim plus those appended since."""
        return self._head

    @property
    def epoch(self) -> int:
        """The owner epoch this claim set: every append is fenced by it."""
        return self._epoch

    def append(self, records: Sequence[Record], *, barrier: bool = False, expected: int | None = None) -> None:
        """Append records in one transaction, fenced by the claim's epoch and head (and ``expected``).

        Raises:
            ClaimLostError: the claim was lost (its connection died, or another worker took the execution
                over); nothing was written and the claim counts as released.
            SequenceConflictError: the log's head is not ``expected`` (nothing was written).
            UsageError: the claim was released, or ``expected`` is not a sequence number.
        """
        store = self._store
        if store is None:
            raise UsageError(f"execution {self.execution_id!r} was released; claim it again to write")
        self._fence(expected)
        if not records:
            return
        payloads = encoded(records)
        if not store._claim_alive(self._generation):  # noqa: SLF001 - the store's own claim connection
            self._lost(store, "the claim's connection to the database is gone")
        state = self._current_state(store)
        if state is not None:
            try:
                for record in records:
                    apply(state, record)
            except FOLD_ERRORS:
                state = self._state = None
        columns = log_columns(state)
        head = self._head
        params = {
            "id": self.execution_id,
            "head": head,
            "epoch": self._epoch,
            "new": head + len(records),
            **columns,
            "seqs": list(range(head + 1, head + len(records) + 1)),
            "payloads": payloads,
            "crcs": [zlib.crc32(p) for p in payloads],
        }
        notify = columns["adv"] and not self._advanceable
        sync = store.durability is Durability.FULL or (store.durability is Durability.NORMAL and barrier)
        try:
            written = store._append(params, sync=sync, notify=notify)  # noqa: SLF001
        except BaseException:
            self._folded = False  # the state may hold records that were not written: refolded if needed
            raise
        if written != len(records):
            self._folded = False
            self._diagnose(store)
        self._head += len(records)
        self._advanceable = bool(columns["adv"])
        self._appended.extend(records)

    def _diagnose(self, store: PostgresStore) -> None:
        """Why an append moved nothing: the epoch moved (the claim was lost) or the head did."""
        row = store._fetchone("SELECT head_seq, owner_epoch FROM executions WHERE id = %s", (self.execution_id,))  # noqa: SLF001
        if row is None or int(row[1]) != self._epoch:
            self._lost(store, "another worker took the execution over")
        actual = int(row[0])
        raise SequenceConflictError(self.execution_id, self._head, actual)

    def _lost(self, store: PostgresStore, detail: str) -> NoReturn:
        self._store = None
        store._release(self)  # noqa: SLF001
        raise ClaimLostError(self.execution_id, detail)

    def state(self) -> ExecutionState:
        """The execution's state as this claim holds it: the fold of :attr:`records`."""
        return fold(self.records)

    def release(self) -> None:
        """Give up the claim (idempotent); wakes the workers if the execution may be advanced by one."""
        store, self._store = self._store, None
        if store is None:
            return
        store._release(self)  # noqa: SLF001
        if store._closed:  # noqa: SLF001 - closed under the claim: the claim went with its connection
            return
        if self._advanceable:
            store._notify(self.execution_id)  # noqa: SLF001
        self._keep_summary(store)

    def _keep_summary(self, store: PostgresStore) -> None:
        """Keep the listing summary of the log as this claim left it (derived data: best effort, checked by head)."""
        state, appended = self._state, self._appended
        self._appended = []
        if not appended or not self._folded or state is None or len(self.records) + len(appended) != self._head:
            return
        records: list[Any] = [*self.records, *appended]
        first = records[0]
        if not isinstance(first, ExecutionStarted) or first.execution_id != self.execution_id:
            return  # summarize() says what is wrong with such a log, when a listing asks
        summary = summary_of_state(self.execution_id, records, state, log_bytes=0, torn=False)
        store._keep_summaries([(self.execution_id, self._head, summary)])  # noqa: SLF001
