"""The store interfaces: one execution's records (:class:`LogStore`), and questions across them.

The engine only talks to :class:`Store` and :class:`ExecutionLog`, so a second backend (say, PostgreSQL for a
fleet of workers) is a new implementation of them, not a change to the engine. :class:`Store` is the two
interfaces in one object: :class:`LogStore` (records with sequence numbers, ranged reads, claims, fenced
appends) and :class:`~delite.store._query.ExecutionIndex` (list, filter, find work, cancel requests,
idempotency keys). ``tests/contract`` runs one suite per interface against every implementation; see
``docs/architecture.md``.
"""

from __future__ import annotations

import abc
import time
import zlib
from collections.abc import Iterable, Sequence
from types import TracebackType
from typing import Self

from delite.errors import (
    ExecutionNotFoundError,
    ExecutionStateError,
    LogCorruptError,
    SequenceConflictError,
    StoreError,
    UsageError,
)
from delite.log._codec import decode_record, encode_record
from delite.log.records import AnyRecord, Record
from delite.state._fold import fold
from delite.state._model import ExecutionState, Status
from delite.state._outcome import Outcome, finished_outcome
from delite.store._erase import Deleted, Refused, check_force, refusal
from delite.store._ids import validate_execution_id
from delite.store._query import ExecutionIndex, check_agents, check_ids, check_listing
from delite.store._records import RecordRange, StoredPayload
from delite.store._views import ExecutionSummary

__all__ = ["ExecutionLog", "LogStore", "Store", "decode_stored"]

_WORK_STATUSES = [s.value for s in Status if s is Status.RUNNING or s.is_suspended]
"""The statuses an execution a worker may take on can have (its summary says whether it may)."""


class ExecutionLog(abc.ABC):
    """A claimed execution: the records it had when claimed, and the sole right to append to it.

    Use as a context manager, or call :meth:`release`. The claim also ends if the process dies. Nothing here
    speaks of bytes: the torn tail a claim cut off is ``torn`` on the framed stores' own log classes.
    """

    execution_id: str
    records: list[AnyRecord]
    created: bool = False
    outcome: Outcome | None = None
    """The execution's outcome when the store kept one that matches the log exactly (see :meth:`save_outcome`).

    When it is set, a caller that needs no more than the outcome (a finished execution asked for again) can
    skip folding ``records``; a store may then decode ``records`` only when they are read.
    """

    @property
    @abc.abstractmethod
    def head(self) -> int:
        """The sequence number of the log's last record as this claim knows it (0: no record yet)."""

    @abc.abstractmethod
    def append(self, records: Sequence[Record], *, barrier: bool = False, expected: int | None = None) -> None:
        """Append records atomically as one write; ``barrier`` marks a point that must be durable (see modes).

        With ``expected``, the append is fenced: it goes ahead only if the log's last record has that sequence
        number (:attr:`head`), and the new records then have ``expected + 1`` on.

        Raises:
            SequenceConflictError: the log's head is not ``expected`` (nothing was written).
            UsageError: ``expected`` is not a whole number, 0 or more; or the claim was released.
        """

    def waits(self, *, barrier: bool) -> bool:
        """Whether an append with this ``barrier`` may wait on a disk or a server (an ``fsync``, a round trip).

        The async driver makes the appends that do not wait on the event loop itself, and hands the others to
        its I/O threads. The default is True: a store that does not say is never called on the loop.
        """
        del barrier
        return True

    def _fence(self, expected: int | None) -> None:
        """Raise :class:`SequenceConflictError` unless ``expected`` is None or the head (checked first)."""
        if expected is None:
            return
        if isinstance(expected, bool) or not isinstance(expected, int) or expected < 0:
            raise UsageError(f"expected must be a sequence number (a whole number, 0 or more), not {expected!r}")
        if expected != self.head:
            raise SequenceConflictError(self.execution_id, expected, self.head)

    @abc.abstractmethod
    def release(self) -> None:
        """Give up the claim (idempotent)."""

    def state(self) -> ExecutionState:
        """The execution's state as this claim holds it: the fold of :attr:`records` (the one read-and-fold)."""
        return fold(self.records)

    def first_record(self) -> AnyRecord | None:
        """The log's first record (None: none yet); a store that folded from a checkpoint has it without the rest."""
        records = self.records
        return records[0] if records else None

    def finished_outcome(self) -> Outcome | None:
        """The outcome of the log if it is finished (its last record a completion or a cancellation), else None."""
        return finished_outcome(self.records)

    def digest_after(self, records: Sequence[Record]) -> str | None:
        """The SHA-256 (hex) of the log's bytes once ``records`` are appended, for a terminal record's tally.

        A store that keeps the log as one byte string and a running hash of it answers (the file store); the
        default None says there is nothing a reader could check a tally's hash against (see
        :class:`~delite.log.records.Tally`). Nothing is written.
        """
        del records
        return None

    def offer_state(self, state: ExecutionState) -> None:  # noqa: B027 - optional hook, most stores keep nothing
        """Offer ``state``, the fold of every record in the log right now, for a later claim to start from.

        Derived data: a store may keep it, bound to the log's bytes, or ignore it (the default). The engine
        offers its state after each append; a store checks ``state.records`` against its own count first.
        """

    def save_outcome(self, outcome: Outcome) -> None:  # noqa: B027 - optional hook, most stores keep nothing
        """Offer the outcome of the log as it is now (every append made) for the next claim to reuse.

        Derived data: a store may keep it, verified against the log, or ignore it (the default).
        """

    def __enter__(self) -> Self:
        """Hold the claim for the block."""
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        """Release the claim."""
        self.release()


class LogStore(abc.ABC):
    """One append-only log of records per execution: ranged reads, claims and fenced appends.

    Records carry sequence numbers from 1 (see :mod:`delite.store._records`). Nothing here speaks of bytes,
    offsets or files: those are features of the file store's own class.
    """

    @abc.abstractmethod
    def exists(self, execution_id: str) -> bool:
        """Whether an execution with this id has a log."""

    @abc.abstractmethod
    def read(self, execution_id: str, *, after: int | None = None, limit: int | None = None) -> RecordRange:
        """The execution's complete records after sequence ``after`` (all: None), at most ``limit`` of them.

        Reads without claiming or repairing anything.

        Raises:
            ExecutionNotFoundError: there is no such execution.
            LogCorruptError: a record before the tail is damaged.
            UsageError: ``after`` or ``limit`` is not a whole number, 0 or more.
        """

    def head(self, execution_id: str) -> int:
        """The sequence number of the execution's last complete record (0 for none).

        Raises:
            ExecutionNotFoundError: there is no such execution.
        """
        return self.read(execution_id, limit=0).head

    @abc.abstractmethod
    def create(self, execution_id: str, records: Sequence[Record]) -> None:
        """Create an execution holding ``records``, whole or not at all, without claiming it for a run.

        Used for forks: a crash or a failure leaves no execution or the whole one, and creating it again with
        the same id works after a failure.

        Raises:
            ExecutionIdConflictError: an execution with this id exists already (nothing was written).
            ExecutionAlreadyClaimedError: another owner holds the id's claim (it is being created or run).
            UsageError: ``records`` is empty.
            StoreError: the store refused; nothing was created.
        """

    @abc.abstractmethod
    def claim(self, execution_id: str, *, create: Sequence[Record] | None = None, timeout: float = 0.0) -> ExecutionLog:
        """Take the sole right to advance an execution, and read it (a file store cuts off a torn tail).

        With ``create``, a missing execution is created holding those records (``created`` is then True); an
        existing one is claimed and read as usual, so two callers racing to create it both end up with it.

        Raises:
            ExecutionAlreadyClaimedError: another owner holds it and ``timeout`` is 0.
            ClaimTimeoutError: another owner held it for all of ``timeout`` seconds.
            ExecutionNotFoundError: no such execution (and no ``create``).
        """

    @abc.abstractmethod
    def is_claimed(self, execution_id: str) -> bool:
        """Whether a live owner holds the execution right now (a snapshot; it may change at once)."""

    def state(self, execution_id: str) -> ExecutionState:
        """The execution's state now, without claiming it: the fold of all its records.

        Raises:
            ExecutionNotFoundError: there is no such execution.
            LogCorruptError: a record before the tail is damaged.
        """
        return fold(self.read(execution_id).records)

    def read_payloads(self, execution_id: str) -> list[StoredPayload]:
        """Every complete record of the execution as stored bytes: payloads and their CRC-32, in order.

        What ``delite copy`` moves between stores. The default re-encodes the decoded records (a store that
        keeps payload bytes returns them exactly, checksums verified).

        Raises:
            ExecutionNotFoundError: there is no such execution.
            LogCorruptError: a record is damaged.
        """
        return [
            StoredPayload(seq, payload, zlib.crc32(payload))
            for seq, payload in enumerate((encode_record(r) for r in self.read(execution_id).records), start=1)
        ]

    def create_payloads(self, execution_id: str, payloads: Sequence[StoredPayload]) -> None:
        """Create an execution from stored payloads, whole or not at all, as :meth:`create` does.

        Every payload's checksum is verified and every payload decoded before anything is written; a store that
        keeps payload bytes stores them exactly as given.

        Raises:
            LogCorruptError: a payload does not match its checksum or sequence numbers are not 1, 2, 3...
            ExecutionIdConflictError: an execution with this id exists already (nothing was written).
        """
        self.create(execution_id, decode_stored(execution_id, payloads))

    def close(self) -> None:  # noqa: B027 - optional hook, most stores hold nothing open
        """Release resources held by the store."""


class Store(LogStore, ExecutionIndex):
    """Where execution logs live: a :class:`LogStore` and an :class:`~delite.store._query.ExecutionIndex` in one.

    Finding work (:meth:`recoverable`, :meth:`runnable`) is built here from a listing, the claims and a read
    of each fork; a store that can answer it in one query overrides them.
    """

    def __repr__(self) -> str:
        """The store's class name: how messages (the CLI's) name a store that is not a data directory.

        A store overrides it to say more (where it is, how many executions it holds) without doing I/O.
        """
        return type(self).__name__

    def recoverable(self, *, agent: str | None = None, limit: int | None = None) -> list[ExecutionSummary]:
        """Running executions with no live owner, forks nobody resumed left out, oldest first."""
        check_listing(limit=limit, offset=0, metadata=None, agent=agent)  # a UsageError before anything is read
        page = self.list_executions(status=Status.RUNNING.value, agent=agent, limit=None)
        return self._unclaimed(page.items, limit=limit, top_level=False)

    def runnable(self, *, agent: str | Iterable[str] | None = None, limit: int | None = None) -> list[ExecutionSummary]:
        """Top-level executions a worker may take on by itself now, oldest first.

        Those the summaries mark ``advanceable`` (:func:`delite.state._ready.advanceable`: running, or
        suspended on calls that all have their answers) that nobody holds; never a sub-agent's (its parent
        drives it). ``agent`` is one agent id or several. Built from one listing and the claims: a summary
        carries whether its execution is advanceable, so no log is read here.
        """
        agents = check_agents(agent)
        check_listing(limit=limit, offset=0, metadata=None)
        one = next(iter(agents)) if agents is not None and len(agents) == 1 else None
        page = self.list_executions(status=_WORK_STATUSES, agent=one, limit=None)
        wanted = [s for s in page.items if agents is None or s.agent_id in agents]
        return self._unclaimed(wanted, limit=limit, top_level=True)

    def wait_for_work(self, timeout: float) -> bool:
        """Block until work may have appeared (an execution enqueued, answered or let go) or ``timeout`` passes.

        Returns True when woken by such news, False on timeout. A worker polls :meth:`runnable` after each
        return, so a store with no way to hear of news (the default) just sleeps; one that can (PostgreSQL's
        ``LISTEN``) returns early.
        """
        time.sleep(max(0.0, timeout))
        return False

    def delete_execution(self, execution_id: str, *, force: bool = False) -> Deleted:
        """Remove an execution: its log and everything kept for it, whole or not at all.

        Removed with it: what is derived from its log (a listing's entry, a snapshot), the idempotency keys bound
        to it (they can be bound again) and a pending cancel request. Not removed: other executions, those forked
        from it (copies) and its sub-agents' executions included. Only a finished execution (completed, failed
        or cancelled) that no live process holds is removed, unless ``force``. A crash in the middle leaves the
        whole execution or none of it readable.

        The default says the store cannot delete: a store implements it (every store delite ships does).

        Raises:
            ExecutionNotFoundError: there is no such execution.
            ExecutionNotFinishedError: it is running, suspended or unreadable (nothing was removed).
            ExecutionAlreadyClaimedError: a live process holds it (nothing was removed).
            UsageError: ``force`` is not a bool.
            StoreError: the store cannot delete executions, or failed (a crash-safe store finishes later).
        """
        validate_execution_id(execution_id)
        check_force(force)
        raise StoreError(f"{self!r} cannot delete executions ({type(self).__name__} has no delete_execution)")

    def delete_executions(
        self, execution_ids: Iterable[str], *, force: bool = False
    ) -> tuple[list[Deleted], list[Refused]]:
        """Delete several executions as :meth:`delete_execution` deletes one; those removed and those refused.

        One that is gone already is neither. A store may override it to do the work in batches (the file store
        reads its key bindings once); every id is checked before anything is removed.
        """
        ids = check_ids(execution_ids)
        check_force(force)
        deleted: list[Deleted] = []
        refused: list[Refused] = []
        for eid in ids:
            try:
                deleted.append(self.delete_execution(eid, force=force))
            except ExecutionNotFoundError:
                continue
            except ExecutionStateError as e:
                refused.append(refusal(eid, e))
        return deleted, refused

    def _unclaimed(
        self, summaries: Iterable[ExecutionSummary], *, limit: int | None, top_level: bool
    ) -> list[ExecutionSummary]:
        """The advanceable ones nobody holds, oldest first, at most ``limit``."""
        out: list[ExecutionSummary] = []
        for summary in sorted(summaries, key=lambda s: (s.created_at, s.id)):
            if limit is not None and len(out) >= limit:
                break
            if top_level and summary.parent_id is not None:
                continue
            if not summary.advanceable:
                continue  # a fork nobody resumed, or a suspension still waiting for an answer
            if self.is_claimed(summary.id):
                continue  # a live owner is advancing it
            out.append(summary)
        return out


def decode_stored(execution_id: str, payloads: Sequence[StoredPayload]) -> list[AnyRecord]:
    """Verify stored payloads (checksums, sequence 1, 2, 3...) and decode them; :class:`LogCorruptError` if not."""
    out: list[AnyRecord] = []
    where = f"copy of {execution_id}"
    for i, p in enumerate(payloads, start=1):
        if p.seq != i:
            raise LogCorruptError(where, i, f"record {i} arrived as sequence {p.seq}")
        if zlib.crc32(p.payload) != p.crc:
            raise LogCorruptError(where, i, f"record {i} does not match its checksum")
        out.append(decode_record(p.payload, path=where, offset=i))
    return out
