"""``DataDir``: find, read, verify and fork the executions of a data directory, without an agent."""

from __future__ import annotations

import builtins
import os
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

import msgspec

from delite._checks import check_flag
from delite.datadir._execution import ExecutionView
from delite.datadir._views import Event, ExecutionSummary, HealthReport, Page
from delite.errors import (
    AmbiguousExecutionIdError,
    ExecutionIdConflictError,
    ExecutionNotFoundError,
    InvalidExecutionIdError,
    LogCorruptError,
    StoreError,
    UsageError,
)
from delite.log._codec import decode_payloads
from delite.log._framing import HEADER, FrameDamage, scan_frames
from delite.log._os import open_regular
from delite.log._reader import parse_log
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
from delite.store._ids import new_execution_id, validate_execution_id
from delite.store._layout import Layout
from delite.store._listing import list_page, log_ids
from delite.store._logfile import check_identity, read_log_file
from delite.store._query import WAITING

__all__ = ["WAITING", "DataDir", "Progress"]

Progress = Callable[[int, int], None]
"""Called as ``progress(done, total)`` during long work."""

_TERMINAL = (ExecutionCompleted, ExecutionCancelled)


class DataDir:
    """A data directory, for reading, auditing and forking its executions (the read side of ``delite``).

    Nothing here claims an execution or needs its tools, so it is safe to use while agents run. Listing
    keeps a derived index (``index.sqlite3``) that is brought up to date from the logs on every call and is
    never trusted over them.

    Example::

        data = DataDir("./data")
        page = data.list(status="waiting", metadata={"thread_id": "t-42"}, limit=20)
        for summary in page:  # a page is the sequence of its items (also ``page.items``)
            print(summary.id, summary.status, summary.cost)
        run = data.execution(data.resolve("9K3Q"))  # a unique suffix (or prefix) of an id is enough
        print(run.detail.answer, [s.model for s in run.steps])

    Args:
        path: the data directory (as given to ``Agent``).
    """

    def __init__(self, path: str | os.PathLike[str] = "./data") -> None:
        """Point at a data directory; nothing is read or created yet."""
        self.layout = Layout(path)
        self.path = self.layout.root

    def __repr__(self) -> str:
        """The path."""
        return f"DataDir({str(self.path)!r})"

    # -- finding executions ----------------------------------------------------------------------------------

    def ids(self) -> list[str]:
        """Every execution id, sorted (generated ids sort by creation time)."""
        return log_ids(self.layout)

    def resolve(self, id_or_prefix: str) -> str:
        """The full id of the one execution whose id is ``id_or_prefix``, or starts or ends with it.

        Generated ids start with their creation time, so executions made the same second share their first 8
        or so characters; their last characters are random, so a few of those name one execution. Matching
        is case-sensitive first, then case-insensitive when nothing matched. Every command of the ``delite``
        CLI resolves the ids it is given here.

        Raises:
            ExecutionNotFoundError: nothing matches (the error names this data directory).
            AmbiguousExecutionIdError: more than one execution matches.
            InvalidExecutionIdError: the text is empty or could not be part of an id.
        """
        if not isinstance(id_or_prefix, str) or not id_or_prefix:
            raise InvalidExecutionIdError(str(id_or_prefix), "must not be empty")
        text = validate_execution_id(id_or_prefix)
        if os.path.exists(self.layout.log(text)):
            return text
        ids = self.ids()
        matches = [i for i in ids if i.startswith(text) or i.endswith(text)]
        if not matches:
            folded = text.casefold()
            matches = [i for i in ids if i.casefold().startswith(folded) or i.casefold().endswith(folded)]
        if not matches:
            raise ExecutionNotFoundError(text, self._where())
        if len(matches) > 1:
            raise AmbiguousExecutionIdError(text, matches)
        return matches[0]

    def _where(self) -> str:
        """The data directory as an absolute path, for messages."""
        return os.path.abspath(self.path)

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

        Brings the index up to date first: only logs that changed since it last saw them are read.

        Args:
            status: one status or several (``Status`` values, ``unreadable``, ``empty``, or ``waiting`` for
                every suspended status).
            agent: only executions started by this ``agent_id``.
            metadata: only executions whose metadata has each of these keys with this value.
            since: only executions created at or after this time (seconds since the epoch).
            until: only executions created before this time.
            limit: at most this many (None for all).
            offset: skip this many of the matching executions first.
            progress: called as ``progress(done, total)`` while many logs are being indexed.
            parent: only the sub-agents' executions started by this execution.
        """
        return list_page(
            self.layout,
            status=status,
            agent=agent,
            metadata=metadata,
            parent=parent,
            since=since,
            until=until,
            limit=limit,
            offset=offset,
            progress=progress,
        )

    def children(self, execution_id: str) -> builtins.list[ExecutionSummary]:
        """The sub-agents' executions that ``execution_id`` started (by its tool calls), oldest first."""
        page = self.list(parent=validate_execution_id(execution_id), limit=None)
        return sorted(page.items, key=lambda s: (s.created_at, s.id))

    def reindex(self, progress: Progress | None = None) -> int:
        """Rebuild the listing index from every log; returns the number of executions indexed."""
        if not os.path.isdir(self.layout.executions):
            return 0
        from delite.datadir._index import ListingIndex  # noqa: PLC0415 - sqlite3 only when listing

        index = ListingIndex.open(self.layout)
        try:
            return index.rebuild(progress)
        finally:
            index.close()

    # -- reading one execution -------------------------------------------------------------------------------

    def execution(self, execution_id: str) -> ExecutionView:
        """Read one execution's log (without claiming it) and return a view of it.

        Raises:
            ExecutionNotFoundError: no such execution (give a full id; see :meth:`resolve` for prefixes).
            LogCorruptError: a record before the log's tail is damaged.
            UnsupportedFormatError: the log was written in a format this delite does not read.
            LogIdentityError: the log's records name another execution (a copy or a link).
            StoreError: the log cannot be read, or it is not a regular file (a symbolic link, a FIFO).
        """
        eid = validate_execution_id(execution_id)
        path = self.layout.log(eid)
        data, _st = read_log_file(eid, path, data_dir=self._where())
        contents = parse_log(data, path=path)
        check_identity(eid, path, contents.records)
        return ExecutionView(eid, contents, path=path)

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

        Args:
            execution_id: the execution (a full id).
            start: skip the first ``start`` records (yield from record ``start + 1`` on).
            poll: seconds between looks at the file.
            until_done: stop after a completion or cancellation record.
            timeout: stop after this many seconds without a new record (None: never).
            sleep: how to wait (a seam for tests).
        """
        eid = validate_execution_id(execution_id)
        path = self.layout.log(eid)
        try:
            f = os.fdopen(open_regular(path), "rb")  # held open across yields, closed in finally
        except FileNotFoundError:
            raise ExecutionNotFoundError(eid, self._where()) from None
        except OSError as e:
            raise StoreError.from_os_error("read the log", path, e) from e
        try:
            pos = 0
            seq = 0
            idle = 0.0
            while True:
                f.seek(pos)
                chunk = f.read()
                if pos == 0:
                    if len(chunk) < len(HEADER):
                        chunk = b""
                    else:
                        parse_log(chunk[: len(HEADER)], path=path)  # checks the header
                        pos = len(HEADER)
                        chunk = chunk[len(HEADER) :]
                records, consumed = _complete_records(chunk, pos, path)
                done = False
                for record, offset in records:
                    seq += 1
                    if seq > start:
                        data = msgspec.to_builtins(record)
                        yield Event(seq=seq, offset=offset, kind=data.get("kind", ""), at=record.at, record=data)
                    done = done or isinstance(record, _TERMINAL)
                pos += consumed
                if done and until_done:
                    return
                if records:
                    idle = 0.0
                    continue
                if timeout is not None and idle >= timeout:
                    return
                sleep(poll)
                idle += poll
        finally:
            f.close()

    # -- verifying -------------------------------------------------------------------------------------------

    def health(self, *, repair: bool = False, progress: Progress | None = None) -> HealthReport:
        """Verify every checksum of every log, report torn tails and damage, and check the index.

        Read-only unless ``repair``, which rebuilds what is derived (the index). Logs are never modified.
        """
        check_flag("repair", repair)
        from delite.datadir._health import check_health  # noqa: PLC0415 - sqlite3 only when needed

        return check_health(self.layout, repair=repair, progress=progress)

    # -- forking ---------------------------------------------------------------------------------------------

    def fork(self, execution_id: str, *, at: int, new_id: str | None = None) -> str:
        """Start a new execution from the first ``at`` steps of another; returns the new id.

        The new log holds the origin's first record, with the new id and ``forked_from``/``fork_step`` naming
        the origin, then the origin's records up to the end of step ``at`` (its model response and its tool
        calls' results, decisions and suspensions), leaving out completion, failure and cancellation. Resume
        it with an agent configured like the origin's to continue from there; the origin is not changed.
        ``at=0`` keeps only the input.

        The fork appears whole or not at all: it is written to a temporary file, synced, and linked to its
        name, so a crash at any point leaves no fork or the whole one, and forking again with the same id
        works after a crash. A fork is not started: nothing runs it until someone resumes it (a Runtime's
        recovery leaves it alone; :attr:`ExecutionState.dormant` is true until a process takes it on).

        Raises:
            UsageError: ``at`` is not a step of the origin.
            ExecutionIdConflictError: ``new_id`` exists already (409; a racer that forked first won).
            ExecutionAlreadyClaimedError: another process is creating an execution with ``new_id`` now (409).
            StoreError: the file system refused; no fork was made.
        """
        view = self.execution(execution_id)
        records = view.records
        origin = records[0] if records else None
        if origin is None:
            raise UsageError(f"execution {execution_id!r} has no complete record to fork from")
        if not isinstance(origin, ExecutionStarted):
            raise LogCorruptError(view.path, view.contents.offsets[0], "the first record is not execution-started")
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
        started = msgspec.structs.replace(
            origin,
            execution_id=eid,
            at=time.time(),
            forked_from=origin.execution_id,
            fork_step=at,
            idempotency_key=None,
            fork_resumes=sum(isinstance(r, ExecutionResumed) for r in kept),
        )
        from delite.store._file import FileStore  # noqa: PLC0415 - filelock only when writing

        try:
            FileStore(self.path).publish(eid, [started, *kept])
        except FileExistsError:
            detail = "an execution with this id exists already; choose another id for the fork"
            raise ExecutionIdConflictError(eid, "", detail) from None
        return eid


def _complete_records(chunk: bytes, base: int, path: str) -> tuple[list[tuple[AnyRecord, int]], int]:
    """The complete records at the start of ``chunk`` (which begins at file offset ``base``) and their size."""
    if not chunk:
        return [], 0
    scanned = scan_frames(chunk, 0)
    if isinstance(scanned, FrameDamage):
        raise LogCorruptError(path, base + scanned.offset, scanned.reason)
    frames = scanned.frames
    offsets = [base + fr.offset for fr in frames]
    records = decode_payloads([fr.payload for fr in frames], offsets, path=path)
    return list(zip(records, offsets, strict=True)), scanned.end
