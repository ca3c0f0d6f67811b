"""``DataDir``: find, read, verify and fork the executions of a store, without an agent.

Everything goes through the store seam (:class:`~delite.store.LogStore` for one execution's records,
:class:`~delite.store.ExecutionIndex` for questions across them), so it works the same on a data directory
(a :class:`~delite.store.FileStore`), a :class:`~delite.store.MemoryStore` or any other store. Byte-level
features (following a log file by offset, verifying its bytes, the SQLite listing index) are the file
store's own, used when the store is one.
"""

from __future__ import annotations

import builtins
import os
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, closing, contextmanager, nullcontext
from datetime import timedelta
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

import msgspec

from delite._checks import check_flag
from delite.datadir._execution import ExecutionView
from delite.datadir._fork import check_free, conflict, copied, copy_children, place, rename
from delite.datadir._health import check_store_health
from delite.datadir._retention import RetentionReport, check_delete, check_gc, delete_tree, gc, parse_duration
from delite.errors import LogCorruptError, UsageError
from delite.log.records import (
    AnyRecord,
    ExecutionCancelled,
    ExecutionCompleted,
    ExecutionFailed,
    ExecutionResumed,
    ExecutionStarted,
    ModelCallFailed,
    ModelResponded,
)
from delite.store._base import Store
from delite.store._derive import event
from delite.store._ids import new_execution_id, resolve_execution_id, validate_execution_id
from delite.store._layout import Layout
from delite.store._open import open_store
from delite.store._query import WAITING, ListingQuery, Progress
from delite.store._records import FramedRange
from delite.store._sealed import SealedStore
from delite.store._views import Event, ExecutionSummary, HealthReport, Page

if TYPE_CHECKING:
    from delite.store._file import FileStore

__all__ = ["WAITING", "DataDir", "Progress"]

_TERMINAL = (ExecutionCompleted, ExecutionCancelled)

Batches = Callable[[], Sequence[tuple[AnyRecord, int | None]]]
"""Returns the complete records appended since it was last called, each with its byte offset (or None)."""


class DataDir(AbstractContextManager["DataDir"]):
    """A store's executions, for reading, auditing and forking them (the read side of ``delite``).

    Nothing here claims an execution or needs its tools, so it is safe to use while agents run. Give it a
    data directory's path (it opens a file store there, creating nothing to read) or any
    :class:`~delite.store.Store`, or a ``postgresql://`` URL (see :func:`~delite.store.open_store`). A data
    directory's listing keeps a derived index (``index.sqlite3``) that is
    brought up to date from the logs on every call and is never trusted over them.

    Example::

        data = DataDir("./data")
        page = data.list(status="waiting", metadata={"thread_id": "t-42"}, limit=20)
        for summary in page:  # a page is the sequence of its items (also ``page.items``)
            print(summary.id, summary.status, summary.cost)
        run = data.execution(data.resolve("9K3Q"))  # a unique suffix (or prefix) of an id is enough
        print(run.detail.answer, [s.model for s in run.steps])

    Who owns the store: ``DataDir(path)`` (or ``DataDir(url)``) opens its own and closes it in :meth:`close` (or
    at the end of a ``with`` block, which gives the DataDir); ``DataDir(store)`` borrows the store and never
    closes it.

    Args:
        target: the data directory or the URL (as given to ``Agent``), or a store.
    """

    def __init__(self, target: str | os.PathLike[str] | Store = "./data") -> None:
        """Point at a data directory or a store; nothing is read or created yet."""
        from delite.store._file import FileStore  # noqa: PLC0415 - filelock only when a DataDir is made

        if isinstance(target, Store):
            self.store: Store = target
            self._owned = False
        elif isinstance(target, str | os.PathLike):
            self.store = open_store(target)
            self._owned = True
        else:
            kind = type(target).__name__
            raise UsageError(f"DataDir takes a data directory's path or a Store (or a postgresql:// URL), not {kind}")
        # A sealed file store is still a data directory: its listing and health are the files' (folded from
        # the records' shells, no key needed); its records are read through the seal.
        self._sealed = isinstance(self.store, SealedStore)
        files = self.store.inner if isinstance(self.store, SealedStore) else self.store
        self._files: FileStore | None = files if isinstance(files, FileStore) else None
        self.layout: Layout | None = self._files.layout if self._files is not None else None
        """The data directory's layout when the store is a file store, else None."""
        self.path: Path | None = Path(self.layout.root) if self.layout is not None else None
        """The data directory when the store is a file store, else None."""

    def __repr__(self) -> str:
        """The path, or the store."""
        return f"DataDir({str(self.path)!r})" if self.path is not None else f"DataDir({self.store!r})"

    def close(self) -> None:
        """Close the store if this DataDir opened it (from a path); a store it was given is left open."""
        if self._owned:
            self.store.close()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        """Close the store if this DataDir opened it."""
        self.close()

    # -- finding executions ----------------------------------------------------------------------------------

    def ids(self) -> builtins.list[str]:
        """Every execution id, sorted (generated ids sort by creation time)."""
        return self.store.list_ids()

    def resolve(self, id_or_prefix: str) -> str:
        """The full id of the one execution whose id is ``id_or_prefix``, or starts or ends with it.

        Generated ids start with their creation time, so executions made the same second share their first 8
        or so characters; their last characters are random, so a few of those name one execution. Matching
        is case-sensitive first, then case-insensitive when nothing matched. Every command of the ``delite``
        CLI resolves the ids it is given here.

        Raises:
            ExecutionNotFoundError: nothing matches (the error names the data directory, for a file store).
            AmbiguousExecutionIdError: more than one execution matches.
            InvalidExecutionIdError: the text is empty or could not be part of an id.
        """
        return resolve_execution_id(id_or_prefix, exists=self.store.exists, ids=self.ids, where=self._where())

    def _where(self) -> str | None:
        """The data directory as an absolute path, for messages (None for a store without one)."""
        return os.path.abspath(self.path) if self.path is not None else None

    def list(
        self,
        *,
        status: str | Iterable[str] | None = None,
        agent: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        since: float | None = None,
        until: float | None = None,
        limit: int | None = 50,
        offset: int = 0,
        progress: Progress | None = None,
        parent: str | None = None,
    ) -> Page:
        """List executions, newest first, one page at a time.

        A data directory brings its index up to date first: only logs that changed since it last saw them
        are read.

        Args:
            status: one status or several (``Status`` values, ``unreadable``, ``empty``, or ``waiting`` for
                every suspended status).
            agent: only executions started by this ``agent_id``.
            metadata: only executions whose metadata has each of these keys with this value.
            since: only executions created at or after this time (seconds since the epoch).
            until: only executions created before this time.
            limit: at most this many (None for all).
            offset: skip this many of the matching executions first.
            progress: called as ``progress(done, total)`` while many logs are being indexed (a file store).
            parent: only the sub-agents' executions started by this execution.
        """
        query = ListingQuery(
            status=status,
            agent=agent,
            metadata=metadata,
            parent=parent,
            since=since,
            until=until,
            limit=limit,
            offset=offset,
        )
        if self._files is not None:
            return self._files.query_executions(query, progress=progress)
        return self.store.query_executions(query)

    def children(self, execution_id: str) -> builtins.list[ExecutionSummary]:
        """The sub-agents' executions that ``execution_id`` started (by its tool calls), oldest first."""
        page = self.list(parent=validate_execution_id(execution_id), limit=None)
        return sorted(page.items, key=lambda s: (s.created_at, s.id))

    def reindex(self, progress: Progress | None = None) -> int:
        """Rebuild a data directory's listing index from every log; returns the number of executions indexed.

        Only a file store keeps an index to rebuild; for any other store this does nothing and returns 0.
        """
        return self._files.reindex(progress) if self._files is not None else 0

    # -- reading one execution -------------------------------------------------------------------------------

    def execution(self, execution_id: str) -> ExecutionView:
        """Read one execution (without claiming it) and return a view of it.

        Raises:
            ExecutionNotFoundError: no such execution (give a full id; see :meth:`resolve` for prefixes).
            LogCorruptError: a record before the log's tail is damaged.
            UnsupportedFormatError: the log was written in a format this delite does not read.
            LogIdentityError: the log's records name another execution (a copy or a link).
            StoreError: the log cannot be read, or it is not a regular file (a symbolic link, a FIFO).
        """
        eid = validate_execution_id(execution_id)
        path = self.layout.log(eid) if self.layout is not None else ""
        return ExecutionView(self.store.read(eid), path=path)

    def follow(
        self,
        execution_id: str,
        *,
        start: int = 0,
        poll: float = 0.25,
        until_done: bool = True,
        timeout: float | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> Iterator[Event]:
        """Yield the execution's records as events, waiting for new ones as they are appended.

        A file store is followed by byte offset (each look reads only the bytes appended since the last);
        any other store by ranged reads after the last sequence number seen.

        Args:
            execution_id: the execution (a full id).
            start: skip the first ``start`` records (yield from record ``start + 1`` on).
            poll: seconds between looks.
            until_done: stop after a completion or cancellation record.
            timeout: stop after this many seconds without a new record (None: never).
            sleep: how to wait (a seam for tests).
        """
        eid = validate_execution_id(execution_id)
        source: AbstractContextManager[Batches]
        if self._files is not None and not self._sealed:
            source = _tail_batches(self._files, eid)
        else:
            self.store.head(eid)  # not found: raise now, as the file store does
            source = nullcontext(_ranged_batches(self.store, eid))
        with source as batches:
            seq = 0
            idle = 0.0
            while True:
                found = batches()
                done = False
                for record, offset in found:
                    seq += 1
                    if seq > start:
                        yield event(seq, record, offset)
                    done = done or isinstance(record, _TERMINAL)
                if done and until_done:
                    return
                if found:
                    idle = 0.0
                    continue
                if timeout is not None and idle >= timeout:
                    return
                sleep(poll)
                idle += poll

    # -- verifying -------------------------------------------------------------------------------------------

    def health(self, *, repair: bool = False, progress: Progress | None = None) -> HealthReport:
        """Verify every execution: its records decode and fold, its identity is right, the listing agrees.

        On a data directory this also verifies every checksum of every log, reports torn tails, bad entries,
        loose permissions and snapshots, and checks the SQLite index. Read-only unless ``repair``, which
        rebuilds what is derived (a data directory's index; other stores have nothing to rebuild). Logs are
        never modified.
        """
        check_flag("repair", repair)
        if self._files is not None:
            return self._files.health(repair=repair, progress=progress)
        return check_store_health(self.store, progress=progress)

    # -- retention and erasure ------------------------------------------------------------------------------

    def gc(
        self,
        older_than: float | timedelta | str,
        *,
        statuses: str | Iterable[str] | None = None,
        dry_run: bool = False,
        force: bool = False,
    ) -> RetentionReport:
        """Delete the finished executions whose last record is older than ``older_than``; what was freed.

        Each is removed whole with everything kept for it (see :meth:`~delite.store.Store.delete_execution`:
        derived files, the listing's entry, its idempotency keys and cancel request); a crash in the middle
        leaves every execution whole or gone. Forks of a deleted execution are copies and stay (the report
        lists them); so do backups and copies made with ``delite copy``. An execution a live process holds is
        left and listed as refused.

        Args:
            older_than: seconds, a ``timedelta`` or text such as ``"30d"``, ``"12h"``, ``"90m"``.
            statuses: the statuses to delete (default: ``completed``, ``failed`` and ``cancelled``); others
                (``running``, ``waiting``...) only with ``force``.
            dry_run: only report what would be deleted.
            force: also delete executions that are not finished, and those a live process holds.

        Raises:
            UsageError: a bad duration or status, an unfinished status without ``force`` (nothing is removed).
            StoreError: the store cannot delete, or failed.
        """
        seconds = parse_duration(older_than)
        check_gc(dry_run=dry_run, force=force)
        summaries = builtins.list(self.list(limit=None).items)
        return gc(self.store, summaries, older_than=seconds, statuses=statuses, dry_run=dry_run, force=force)

    def delete(self, execution_id: str, *, children: bool = False, force: bool = False) -> RetentionReport:
        """Erase one execution (and, with ``children``, its sub-agents' executions); what was removed.

        Every execution concerned is checked before anything is removed; sub-agents' executions go first,
        each whole or not at all (see :meth:`~delite.store.Store.delete_execution`). Forks of a deleted
        execution are copies and stay (the report lists them), as do backups and copies made with
        ``delite copy``; without ``children``, the sub-agents' executions stay too (listed as ``children``).

        Raises:
            ExecutionNotFoundError: there is no such execution.
            ExecutionNotFinishedError: one of them is running, suspended or unreadable (without ``force``).
            ExecutionAlreadyClaimedError: a live process holds one of them (without ``force``).
            InvalidExecutionIdError, UsageError: a bad id or flag (nothing is read).
        """
        eid = check_delete(execution_id, children=children, force=force)
        summaries = builtins.list(self.list(limit=None).items)
        return delete_tree(self.store, summaries, eid, children=children, force=force, where=self._where())

    # -- forking ---------------------------------------------------------------------------------------------

    def fork(self, execution_id: str, *, at: int, new_id: str | None = None) -> str:
        """Start a new execution from the first ``at`` steps of another; returns the new id.

        The new log holds the origin's first record, with the new id and ``forked_from``/``fork_step`` naming
        the origin, then the origin's records up to the end of step ``at`` (its model response and its tool
        calls' results, decisions and suspensions), leaving out completion, failure and cancellation. Resume
        it with an agent configured like the origin's to continue from there. ``at=0`` keeps only the input.
        A fork is a top-level execution, even of a sub-agent's execution (it has no parent to resume it).

        Nothing of the origin's tree is changed or shared. The sub-agents' executions started by the copied
        tool calls (and theirs, down the tree) are copied too, whole, under the ids the fork derives for them
        (``<new id>:<call id>``, as ``delegate`` names them), and the copied records name those copies: a fork
        made while a sub-agent waits for an answer lists ``<new id>:<call id>/<call>``, answering it writes in
        the fork's copy, and resuming the fork continues that copy. Each copy names the fork's execution as
        its parent and the child it copies in ``forked_from``; deleting the origin's tree leaves them, and
        ``delete(new_id, children=True)`` removes them with the fork.

        The fork appears whole or not at all: it is written to a temporary file, synced, and linked to its
        name, so a crash at any point leaves no fork or the whole one, and forking again with the same id
        works after a crash. Sub-agents' copies are written first, the fork last: a crash in between leaves
        copies with no fork above them, which forking again with the same id completes. A fork is not started:
        nothing runs it until someone resumes it (a Runtime's recovery leaves it alone;
        :attr:`ExecutionState.dormant` is true until a process takes it on, and for each copy until its
        parent's call does).

        Raises:
            UsageError: ``at`` is not a step of the origin, or a sub-agent's id there is a digest that cannot
                be traced back to its call (the message says which steps can be forked; nothing is written).
            ExecutionIdConflictError: ``new_id``, or an id a sub-agent's copy needs, exists already (409; a
                racer that forked first won). Nothing is written.
            ExecutionAlreadyClaimedError: another process is creating an execution with ``new_id`` now (409).
            StoreError: the store refused (for a data directory, the file system); no fork was made.
        """
        view = self.execution(execution_id)
        records = view.records
        origin = records[0] if records else None
        if origin is None:
            raise UsageError(f"execution {execution_id!r} has no complete record to fork from")
        if not isinstance(origin, ExecutionStarted):
            offset = view.offsets[0] if view.offsets else -1
            raise LogCorruptError(view.path, offset, "the first record is not execution-started")
        steps = view.state.steps
        if isinstance(at, bool) or not isinstance(at, int) or not 0 <= at <= steps:
            raise UsageError(f"--at must be a step from 0 to {steps} for execution {execution_id!r}, not {at!r}")
        eid = validate_execution_id(new_id) if new_id is not None else new_execution_id()
        kept: list[AnyRecord] = []
        for record in records[1:]:
            if isinstance(record, ModelResponded | ModelCallFailed) and record.step > at:
                break
            if isinstance(record, ExecutionCompleted | ExecutionCancelled | ExecutionFailed):
                continue
            kept.append(record)
        # The copied calls' sub-agents get copies of their own, which the copied records name (see _fork).
        names, children = copy_children(self.store, self._child_ids, origin.execution_id, eid, kept)
        now = time.time()
        copies = [(child, copied(child, names, now)) for child in children]
        kept = rename(kept, names)
        started = msgspec.structs.replace(
            origin,
            execution_id=eid,
            at=now,
            parent_id=None,  # a fork of a sub-agent's execution is not its parent's: nothing would resume it
            parent_call=None,
            forked_from=origin.execution_id,
            fork_step=at,
            idempotency_key=None,
            fork_resumes=sum(isinstance(r, ExecutionResumed) for r in kept),
        )
        if copies:
            # Every id is checked before anything is written; the copies go first (deepest first), the fork
            # last, so the fork never names a copy that is not there yet.
            if self.store.exists(eid):
                raise conflict(eid)
            for child, records in copies:
                check_free(self.store, child, records)
            for child, records in reversed(copies):
                place(self.store, child, records, eid)
        self.store.create(eid, [started, *kept])
        return eid

    def _child_ids(self, execution_id: str) -> builtins.list[str]:
        """The ids of the executions ``execution_id`` started as sub-agents, by the listing."""
        return [s.id for s in self.list(parent=execution_id, limit=None).items]


@contextmanager
def _tail_batches(store: FileStore, execution_id: str) -> Iterator[Batches]:
    """The file store's byte-offset reader, as a source of new ``(record, offset)`` batches."""
    with closing(store.tail(execution_id)) as tail:
        yield tail.more


def _ranged_batches(store: Store, execution_id: str) -> Batches:
    """New ``(record, offset)`` batches from ranged reads after the last sequence number seen."""
    seen = 0

    def more() -> list[tuple[AnyRecord, int | None]]:
        nonlocal seen
        got = store.read(execution_id, after=seen)
        seen = got.last
        offsets: list[int | None] = list(got.offsets) if isinstance(got, FramedRange) else [None] * len(got.records)
        return list(zip(got.records, offsets, strict=True))

    return more
