"""Copy executions between any two stores, byte for byte (what ``delite copy SRC DST [ID...]`` runs).

Each execution moves as its stored payloads (:meth:`~delite.store.LogStore.read_payloads`, then
:meth:`~delite.store.LogStore.create_payloads`), so its records' bytes and checksums are the same in both
stores; the copy is read back and compared with the source before it counts. An execution is created whole
or not at all, and one already in the destination with the same records counts as done ("already present"),
so a copy that was killed is finished by running it again. One already there with other records is never
overwritten. The idempotency key an execution was started with, and a pending cancel request, go with it.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from delite.errors import (
    DeliteError,
    ExecutionAlreadyClaimedError,
    ExecutionIdConflictError,
    LogCorruptError,
    StoreError,
)
from delite.log._shell import unsealed_shell
from delite.log.records import AnyRecord, ExecutionStarted
from delite.store._base import Store, decode_stored
from delite.store._records import StoredPayload

__all__ = ["CopyOutcome", "CopyReport", "Outcome", "copy_execution", "copy_executions", "with_descendants"]


class Outcome(enum.Enum):
    """What became of one execution."""

    COPIED = "copied"
    """Created in the destination and read back identical."""
    PRESENT = "already present"
    """The destination held it already, with the same records (an earlier copy, maybe one that was killed)."""
    FAILED = "failed"
    """Not copied (``error`` says why); nothing of it was written unless said so."""


@dataclass(frozen=True)
class CopyOutcome:
    """One execution's copy: what happened, its records and bytes, and what went with it."""

    execution_id: str
    outcome: Outcome
    records: int = 0
    bytes: int = 0
    key: bool = False
    """Its idempotency key was bound in the destination by this copy."""
    cancel: bool = False
    """Its pending cancel request was recorded in the destination by this copy."""
    error: DeliteError | None = None


@dataclass
class CopyReport:
    """Every execution's outcome, in the order they were copied, and the counts."""

    outcomes: list[CopyOutcome] = field(default_factory=list)

    def ids(self, outcome: Outcome) -> list[str]:
        """The executions with this outcome."""
        return [o.execution_id for o in self.outcomes if o.outcome is outcome]

    @property
    def failed(self) -> list[CopyOutcome]:
        """The executions that were not copied."""
        return [o for o in self.outcomes if o.outcome is Outcome.FAILED]

    @property
    def records(self) -> int:
        """Records written to the destination."""
        return sum(o.records for o in self.outcomes if o.outcome is Outcome.COPIED)

    @property
    def bytes(self) -> int:
        """Payload bytes written to the destination."""
        return sum(o.bytes for o in self.outcomes if o.outcome is Outcome.COPIED)

    @property
    def keys(self) -> int:
        """Idempotency keys bound in the destination."""
        return sum(o.key for o in self.outcomes)

    @property
    def cancels(self) -> int:
        """Cancel requests recorded in the destination."""
        return sum(o.cancel for o in self.outcomes)


def with_descendants(store: Store, execution_ids: Iterable[str]) -> list[str]:
    """``execution_ids`` and the sub-agents' executions each started, recursively; each once, in that order.

    A parent without its sub-agents' executions could not be resumed, so a copy of one takes them along.
    """
    out: list[str] = []
    seen: set[str] = set()
    pending = list(execution_ids)
    while pending:
        eid = pending.pop(0)
        if eid in seen:
            continue
        seen.add(eid)
        out.append(eid)
        children = store.list_executions(parent=eid, limit=None).items
        pending.extend(sorted((c.id for c in children), key=lambda c: c))
    return out


def copy_executions(
    source: Store,
    destination: Store,
    execution_ids: Sequence[str],
    *,
    each: Callable[[CopyOutcome], None] | None = None,
) -> CopyReport:
    """Copy ``execution_ids`` from ``source`` to ``destination``; a failure of one does not stop the others.

    ``each`` hears every outcome as it happens (the CLI prints them). See :func:`copy_execution`.
    """
    report = CopyReport()
    for eid in execution_ids:
        try:
            done = copy_execution(source, destination, eid)
        except DeliteError as e:
            done = CopyOutcome(eid, Outcome.FAILED, error=e)
        report.outcomes.append(done)
        if each is not None:
            each(done)
    return report


def copy_execution(source: Store, destination: Store, execution_id: str) -> CopyOutcome:
    """Copy one execution: verified, whole or not at all, never over another's records.

    Raises:
        ExecutionAlreadyClaimedError: a live process is advancing it in the source (its log is still
            growing: copy it once it stops, e.g. after the workers drained).
        ExecutionIdConflictError: the destination holds an execution with this id and other records, or binds
            its idempotency key to another execution (nothing was overwritten).
        LogCorruptError: a record does not match its checksum (in the source), or the copy read back from the
            destination differs from the source's records (the copy is then not counted as done).
        ExecutionNotFoundError: the source has no such execution.
        StoreError: a store refused.
    """
    if source.is_claimed(execution_id):
        raise ExecutionAlreadyClaimedError(
            execution_id, "", "it is being advanced in the source; copy it once it stops (nothing was copied)"
        )
    payloads = source.read_payloads(execution_id)
    records = decode_stored(execution_id, payloads)  # every checksum and sequence number, verified
    if not records:
        raise StoreError(
            f"execution {execution_id!r} holds no record (the process stopped while creating it); nothing to copy"
        )
    outcome = Outcome.PRESENT
    try:
        destination.create_payloads(execution_id, payloads)  # whole or not at all
        outcome = Outcome.COPIED
    except ExecutionIdConflictError:
        pass  # there already (an earlier copy, maybe killed, or a racing one): compared below
    there = destination.read_payloads(execution_id)
    if there != payloads:
        if outcome is Outcome.COPIED:
            raise LogCorruptError(
                f"copy of {execution_id}",
                _first_difference(payloads, there),
                "the copy does not read back as the source",
            )
        raise ExecutionIdConflictError(
            execution_id,
            "",
            f"the destination holds execution {execution_id!r} with other records ({len(there)} there, "
            f"{len(payloads)} in the source); nothing was overwritten",
        )
    key = _copy_key(source, destination, execution_id, records)
    cancel = source.cancel_requested(execution_id) and not destination.cancel_requested(execution_id)
    if cancel:
        destination.request_cancel(execution_id)
    size = sum(len(p.payload) for p in payloads)
    return CopyOutcome(execution_id, outcome, records=len(payloads), bytes=size, key=key, cancel=cancel)


def _copy_key(source: Store, destination: Store, execution_id: str, records: list[AnyRecord]) -> bool:
    """Bind the execution's idempotency key in the destination as the source binds it; whether this bound it."""
    first = unsealed_shell(records[0])
    key = first.idempotency_key if isinstance(first, ExecutionStarted) else None
    if not key:
        return False
    bound = source.lookup_key(key)
    if bound is None or bound[0] != execution_id:
        return False  # the source does not bind the key to this execution (any more): nothing to carry over
    if destination.lookup_key(key) == bound:
        return False
    got = destination.bind_key(key, execution_id, bound[1])
    if got != bound:
        raise ExecutionIdConflictError(
            execution_id,
            "",
            f"its idempotency key {key!r} names execution {got[0]!r} in the destination; the execution was "
            "copied but its key was not",
        )
    return True


def _first_difference(ours: Sequence[StoredPayload], theirs: Sequence[StoredPayload]) -> int:
    """The sequence number of the first record that differs between two copies."""
    for i, (a, b) in enumerate(zip(ours, theirs, strict=False), start=1):
        if a != b:
            return i
    return min(len(ours), len(theirs)) + 1
