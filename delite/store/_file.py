"""The store on local files: one append-only log per execution under a data directory.

Every file it creates is ``0600`` and every directory ``0700``, whatever the umask. A log is read only as a
regular file (never through a symbolic link, never blocking on a FIFO), and claimed only when it is the
execution's own: one link, and a first record that names the id it is claimed under. Every failure of the
file system is a :class:`~delite.errors.StoreError` whose ``errno`` and ``filename`` are the cause's.
Reading needs no write access: a finished execution in a data directory that cannot be written is
"claimed" read-only (nothing to append, nothing to lock) and answers from its log.
"""

from __future__ import annotations

import contextlib
import errno
import io
import os
import stat
import threading
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING

import msgspec

from delite.errors import (
    ClaimTimeoutError,
    DeliteError,
    ExecutionAlreadyClaimedError,
    ExecutionIdConflictError,
    ExecutionNotFoundError,
    ExecutionStateError,
    StoreError,
    UsageError,
)
from delite.log import _digest, _os
from delite.log._durability import Durability
from delite.log._framing import TornTail
from delite.log._os import fsync_dir
from delite.log._reader import LogContents, parse_log, parse_stream
from delite.log._writer import LogWriter, publish_frames, publish_log, replace_log
from delite.log.records import AnyRecord, ExecutionCancelled, ExecutionCompleted, Record
from delite.state._fold import fold
from delite.state._model import ExecutionState
from delite.state._outcome import Outcome
from delite.store import _tally
from delite.store._base import ExecutionLog, Store, decode_stored
from delite.store._cancels import CancelWatch, bump
from delite.store._checkpoint import MIN_LOG_SIZE as MIN_CHECKPOINT_LOG
from delite.store._checkpoint import CheckpointWriter, Loaded, hash_prefix, next_save, same_prefix
from delite.store._checkpoint import load as load_checkpoint
from delite.store._claimlock import ClaimBusyError, ClaimLock, claim_lock, held, try_take
from delite.store._erase import Deleted, Refused, check_force, refusal
from delite.store._ids import validate_execution_id
from delite.store._layout import Layout
from delite.store._listing import log_ids
from delite.store._logfile import (
    check_identity,
    check_single_link,
    drop_stray_links,
    open_log_file,
    read_log_file,
    remove,
)
from delite.store._query import ListingQuery, Progress, check_binding, check_ids, check_key
from delite.store._records import (
    FramedRange,
    StoredPayload,
    check_range,
    count_records,
    frame_payloads,
    framed_range,
    stored_payloads,
)
from delite.store._snapshot import load as load_snapshot
from delite.store._snapshot import save as save_snapshot
from delite.store._tail import LogTail
from delite.store._views import ExecutionSummary, HealthReport, Page

if TYPE_CHECKING:
    from hashlib import _Hash

__all__ = ["FileExecutionLog", "FileStore"]

_key_codec = msgspec.json.Decoder(dict[str, str])
# Up to this many ids, a batched cancel check looks for each marker (one lstat each) rather than list them all.
_FEW = 16
# A data directory that cannot be written: reads go on without a claim.
_READ_ONLY_ERRNOS = frozenset({errno.EACCES, errno.EPERM, errno.EROFS})
KEPT_STATES = 64
"""How many states recovery scans of file stores keep in a process for the claims that follow them."""
KEPT_BYTES = 16 * 1024 * 1024
"""At most this many log bytes' worth of kept states (each held with those bytes, and larger than them in memory)."""
# Those states, by (data directory, execution id): a Runtime scans through its store, its agents claim through theirs.
_kept: dict[tuple[str, str], Loaded] = {}
_kept_lock = threading.Lock()


class FileExecutionLog(ExecutionLog):
    """A claimed execution backed by a log file and a claim lock (``delite.store._claimlock``).

    When the claim found a snapshot that matches the log (``outcome`` is set), ``records`` are decoded from
    the bytes read at claim time only if something reads them.
    """

    torn: TornTail | None
    """The torn tail (a crash's incomplete last write) that this claim cut off, if any."""

    def __init__(
        self,
        execution_id: str,
        records: list[AnyRecord] | None,
        torn: TornTail | None,
        writer: LogWriter | None,
        lock: ClaimLock | None,
        *,
        snapshot_path: str = "",
        data: bytes = b"",
        size: int | None = None,
        outcome: Outcome | None = None,
        path: str = "",
        read_only: OSError | None = None,
        checkpoint_path: str = "",
        checkpointed: Checkpointed | None = None,
    ) -> None:
        """Wrap an open writer and a held lock (``records`` None: decode ``data`` when first read).

        ``size`` is the log's size when ``data`` does not hold its bytes (they were read a chunk at a time).
        ``checkpoint_path`` is where :meth:`offer_state` keeps a fold checkpoint (none: ""); ``checkpointed``
        the state a checkpoint and the log's tail gave at the claim (then ``records`` are read when first read).

        With ``read_only`` (why the data directory cannot be written), there is neither: the execution is
        finished, so there is nothing to append, and the log is only read.
        """
        self.execution_id = execution_id
        self._records = records
        self._data = data
        self.torn = torn
        self.outcome = outcome
        self._writer = writer
        self._lock: ClaimLock | None = lock
        self._snapshot_path = snapshot_path
        self._path = writer.path if writer is not None else path
        self._read_only = read_only
        self._read_size = len(data) if size is None else size
        self._read_head: int | None = None if records is None else len(records)
        self._appended = 0
        self._checkpoint_path = checkpoint_path if writer is not None else ""
        self._checkpoint: CheckpointWriter | None = None
        self._next_checkpoint = MIN_CHECKPOINT_LOG
        self._checkpointed = checkpointed
        self._checkpointed_state = checkpointed.state if checkpointed is not None else None
        if checkpointed is not None:
            self._read_head = checkpointed.state.records
            self._read_size = checkpointed.end
            self._next_checkpoint = next_save(checkpointed.covered)

    @property
    def read_only(self) -> bool:
        """Whether this claim can only read (a finished execution in a data directory that cannot be written)."""
        return self._read_only is not None

    @property
    def records(self) -> list[AnyRecord]:
        """The records the log held when it was claimed."""
        if self._records is None:
            if self._checkpointed is not None:  # only the tail was read: read the log as it was at the claim
                self._records = _read_prefix(self._path, self._checkpointed.end).records
            else:
                self._records = parse_log(self._data, path=self._path).records
            self._data = b""
        return self._records

    @records.setter
    def records(self, records: list[AnyRecord]) -> None:
        self._records = records

    @property
    def head(self) -> int:
        """The sequence of the last record: those read at the claim plus those appended since."""
        if self._read_head is None:
            if self._records is not None:
                self._read_head = len(self._records)
            else:
                self._read_head = count_records(self._data, path=self._path)
        return self._read_head + self._appended

    def state(self) -> ExecutionState:
        """The fold of the records at the claim: from the checkpoint and the tail the claim read, the first time."""
        found, self._checkpointed_state = self._checkpointed_state, None
        return found if found is not None else fold(self.records)

    def first_record(self) -> AnyRecord | None:
        """The log's first record (read with the checkpoint's prefix, when the claim used one)."""
        if self._checkpointed is not None and self._records is None:
            return self._checkpointed.first
        return super().first_record()

    def finished_outcome(self) -> Outcome | None:
        """None when the claim used a checkpoint (only an unfinished log does), else the log's own."""
        if self._checkpointed is not None:
            return None
        return super().finished_outcome()

    def digest_after(self, records: Sequence[Record]) -> str | None:
        """The SHA-256 of the log file once ``records`` are appended, from the writer's running hash (None: none)."""
        w = self._writer
        if w is None or self._lock is None:
            return None
        try:
            return w.digest_after(records)
        except DeliteError:  # a record the append will refuse: it raises there, as it would without a tally
            return None

    def offer_state(self, state: ExecutionState) -> None:
        """Keep a fold checkpoint of ``state`` when the log has grown enough since the last one.

        Only when ``state`` has folded exactly the records in the log (its count is the log's head), the
        execution is not finished, and the writer kept a running hash of the log's bytes. Never synced; a
        failure to write one is not an error.
        """
        w = self._writer
        if w is None or w.size < self._next_checkpoint or not self._checkpoint_path or self._lock is None:
            return
        digest = w.digest
        if digest is None or state.records != self.head or state.status.is_terminal:
            return
        if self._checkpoint is None:
            self._checkpoint = CheckpointWriter(self._checkpoint_path, self.execution_id)
        if os.path.lexists(self._path):  # not deleted under a live owner (a forced deletion)
            self._checkpoint.save(w.size, digest, state)
        self._next_checkpoint = next_save(w.size, self._checkpoint.body_size)

    def save_outcome(self, outcome: Outcome) -> None:
        """Keep a snapshot of ``outcome`` for the log as it is now, checked against it on the next claim.

        None is kept when the log answers for itself, its terminal record's tally telling ``outcome`` (see
        :func:`._tally.tells`): a snapshot left from an earlier outcome is then removed, so that it is not read
        in vain. A finished execution's fold checkpoint is of no more use (a claim of a finished log never
        reads it): it is removed.
        """
        w = self._writer
        if self._lock is not None and self._snapshot_path and w is not None:
            if outcome.status.is_terminal and _tally.tells(w.path, w.size, w.last_offset, outcome):
                if os.path.lexists(self._snapshot_path):
                    with contextlib.suppress(OSError):
                        os.unlink(self._snapshot_path)
            else:
                save_snapshot(self._snapshot_path, w.path, w.size, outcome, last_offset=w.last_offset, running=w.digest)
            if self._checkpoint_path and outcome.status.is_terminal and w.size >= MIN_CHECKPOINT_LOG:
                with contextlib.suppress(OSError):
                    os.unlink(self._checkpoint_path)

    def append(self, records: Sequence[Record], *, barrier: bool = False, expected: int | None = None) -> None:
        """Append records as one write (fenced by ``expected``, see :meth:`ExecutionLog.append`).

        The claim's lock is the file store's real fence: no other process can append while it is held.
        """
        if self._read_only is not None:
            e = self._read_only
            raise StoreError(
                f"execution {self.execution_id!r} is finished and its data directory cannot be written: "
                f"nothing can be appended ({e.strerror})",
                self._path,
                errno=e.errno,
                strerror=e.strerror,
            )
        if self._lock is None or self._writer is None:
            raise UsageError(f"execution {self.execution_id!r} was released; claim it again to write")
        self._fence(expected)
        self._writer.append(records, barrier=barrier)
        self._appended += len(records)

    def waits(self, *, barrier: bool) -> bool:
        """Whether the append ``fsync``s (``full``; ``normal`` at a barrier): a ``write`` alone does not wait."""
        writer = self._writer
        return writer is None or writer.syncs(barrier=barrier)

    @property
    def size(self) -> int:
        """Bytes of complete records in the log."""
        return self._writer.size if self._writer is not None else self._read_size

    def release(self) -> None:
        """Close the log and release the claim."""
        lock, self._lock = self._lock, None
        if lock is None:
            return
        try:
            if self._writer is not None:
                self._writer.close()
        finally:
            lock.release()


class FileStore(Store):
    """Execution logs as files under ``root`` (see :class:`~delite.store._layout.Layout`).

    Beyond the store interfaces it has what only files have: reads with byte offsets and torn tails
    (:class:`~delite.store.FramedRange`), :meth:`tail` (follow a log by byte offset), :meth:`health` (the bytes,
    entries, permissions, snapshots and index of the data directory) and :meth:`reindex`.
    """

    def __init__(self, root: str | os.PathLike[str], *, durability: Durability | str = Durability.FULL) -> None:
        """Point at a data directory; nothing is created until the first write."""
        self.layout = Layout(root)
        try:
            self.durability = Durability(durability)
        except ValueError:
            choices = ", ".join(repr(d.value) for d in Durability)
            raise UsageError(f"durability must be one of {choices}, not {durability!r:.80}") from None
        self._ready = False
        self._cancels = CancelWatch(self.layout.signals)
        self._finding = threading.local()

    def __repr__(self) -> str:
        """The data directory."""
        return f"FileStore({self.layout.root!r})"

    def recoverable(self, *, agent: str | None = None, limit: int | None = None) -> list[ExecutionSummary]:
        """As :meth:`Store.recoverable`; the states listing them folded from fold checkpoints are kept for a claim.

        A claim of one of them in this process (a Runtime resuming what it found, through any store on the same
        data directory) then hashes the log's first bytes against the kept hash instead of decoding the
        checkpoint and folding its tail again. At most :data:`KEPT_STATES` states of logs of :data:`KEPT_BYTES`
        in all are kept in a process, the oldest let go first; one is used once, by the first claim of its id.
        """
        self._finding.keep = True
        try:
            return super().recoverable(agent=agent, limit=limit)
        finally:
            self._finding.keep = False

    def _keep(self, execution_id: str, found: Loaded) -> None:
        key = (self._where(), execution_id)
        if found.size > KEPT_BYTES:
            return
        with _kept_lock:
            _kept.pop(key, None)
            _kept[key] = found
            while len(_kept) > KEPT_STATES or sum(f.size for f in _kept.values()) > KEPT_BYTES:
                del _kept[next(iter(_kept))]

    def _take_kept(self, execution_id: str) -> Loaded | None:
        if not _kept:
            return None
        with _kept_lock:
            return _kept.pop((self._where(), execution_id), None)

    def _where(self) -> str:
        """The data directory as an absolute path, for messages."""
        return os.path.abspath(self.layout.root)

    def _ensure(self) -> None:
        if not self._ready:
            try:
                self.layout.ensure()
            except OSError as e:
                raise StoreError.from_os_error("create the data directory", self.layout.root, e) from e
            self._ready = True

    def exists(self, execution_id: str) -> bool:
        """Whether the execution's log exists (any entry under its name, even one that cannot be used)."""
        return os.path.lexists(self.layout.log(validate_execution_id(execution_id)))

    def list_ids(self) -> list[str]:
        """Every execution id, sorted (generated ids sort by creation time)."""
        return log_ids(self.layout)

    def read(self, execution_id: str, *, after: int | None = None, limit: int | None = None) -> FramedRange:
        """Read an execution's log without claiming it (no write access needed); see :meth:`LogStore.read`.

        The whole file is read and checked, whatever the range: a log file has no index by sequence number. It
        is read a chunk at a time, each frame verified as it is reached.
        The result also carries the file's byte offsets and torn tail (file-store features).
        """
        check_range(after, limit)
        eid = validate_execution_id(execution_id)
        path = self.layout.log(eid)
        f, _st = open_log_file(eid, path, data_dir=self._where())
        with f:
            contents = _read_stream(f, path)  # a chunk at a time: the file's bytes are never all held at once
        check_identity(eid, path, contents.records)
        return framed_range(eid, contents, after=after, limit=limit)

    def _lock(self, execution_id: str) -> ClaimLock:
        return claim_lock(self.layout.claim(execution_id))

    def claim(
        self, execution_id: str, *, create: Sequence[Record] | None = None, timeout: float = 0.0
    ) -> FileExecutionLog:
        """Lock the execution, then read it and repair a torn tail (or create it).

        Raises:
            LogIdentityError: the log is a link, or its records name another execution.
            StoreError: the file system failed (``errno`` and ``filename`` are the cause's).
        """
        validate_execution_id(execution_id)
        path = self.layout.log(execution_id)
        if create is None and not os.path.lexists(path):
            raise ExecutionNotFoundError(execution_id, self._where())
        try:
            if not self._ready:
                self.layout.ensure()
                self._ready = True
        except OSError as e:
            if create is not None and not os.path.lexists(path):
                raise StoreError.from_os_error("create the data directory", self.layout.root, e) from e
            return self._read_only_claim(execution_id, path, e)
        lock = self._lock(execution_id)
        try:
            if timeout > 0:
                lock.acquire(timeout=timeout)
            elif not try_take(lock):
                raise ExecutionAlreadyClaimedError(execution_id)
        except ClaimBusyError:
            raise ClaimTimeoutError(execution_id, timeout) from None
        except OSError as e:
            if e.errno in _READ_ONLY_ERRNOS and os.path.lexists(path):
                return self._read_only_claim(execution_id, path, e)
            where = self.layout.claim(execution_id)
            raise StoreError.from_os_error(f"claim execution {execution_id!r}", where, e) from e
        try:
            return self._claimed(execution_id, path, create, lock)
        except BaseException:
            lock.release()
            raise

    def _claimed(
        self, execution_id: str, path: str, create: Sequence[Record] | None, lock: ClaimLock
    ) -> FileExecutionLog:
        """Read (or create) the log of an execution whose lock is held."""
        snap = self.layout.snapshot(execution_id)
        ckpt = self.layout.checkpoint(execution_id)
        if create is not None and not os.path.lexists(path):
            writer = LogWriter.create(path, self.durability, create)
            log = FileExecutionLog(
                execution_id,
                list(create),  # type: ignore[arg-type]
                None,
                writer,
                lock,
                snapshot_path=snap,
                checkpoint_path=ckpt,
            )
            log.created = True
            return log
        f, st = open_log_file(execution_id, path, data_dir=self._where())
        try:
            if st.st_nlink > 1 and drop_stray_links(path):  # a creator killed between linking and unlinking its tmp
                f.close()
                f, st = open_log_file(execution_id, path, data_dir=self._where())
            check_single_link(execution_id, path, st)
            if not os.path.lexists(snap):
                kept = self._take_kept(execution_id)
                if kept is not None:
                    found = self._checkpointed(execution_id, path, f, st=st, lock=lock, snap=snap, ckpt=ckpt, kept=kept)
                    if found is not None:
                        return found
                if os.path.lexists(ckpt):
                    found = self._checkpointed(execution_id, path, f, st=st, lock=lock, snap=snap, ckpt=ckpt)
                    if found is not None:
                        return found
                f.seek(0)
                if not (st.st_size >= _tally.MIN_LOG_SIZE and _tally.ends_tallied(f.fileno(), st.st_size)):
                    # Nothing to check the bytes against: read, verify and decode the log a chunk at a time, so the
                    # file's bytes are never all held at once (a long unfinished run, the case a crash leaves).
                    digest = _digest.sha256()
                    contents = _read_stream(f, path, digest=digest)
                    return self._claimed_log(
                        execution_id,
                        path,
                        contents,
                        st=st,
                        create=create,
                        lock=lock,
                        snap=snap,
                        data=b"",
                        digest=digest,
                    )
                # A finished log that lost its snapshot: read whole, and answered below by its terminal record's
                # tally if that checks out against the bytes (see ``._tally``), else read as any other.
            data = _read_all(f, path)
        finally:
            f.close()
        outcome = load_snapshot(snap, data, execution_id=execution_id) or _tally.answer(data, execution_id)
        if outcome is not None:
            return self._answered(execution_id, path, data, outcome, st=st, lock=lock, snap=snap)
        contents = parse_log(data, path=path)
        whole = None if _finished(contents.records) else _digest.sha256(data[: contents.end])
        return self._claimed_log(
            execution_id, path, contents, st=st, create=create, lock=lock, snap=snap, data=data, digest=whole
        )

    def _answered(
        self,
        execution_id: str,
        path: str,
        data: bytes,
        outcome: Outcome,
        *,
        st: os.stat_result,
        lock: ClaimLock,
        snap: str,
    ) -> FileExecutionLog:
        """The claim of a log whose outcome a snapshot or its tally gave, checked against ``data``, the log's bytes.

        The log is exactly the one they describe: nothing to repair, its records decoded only if read. A
        finished execution's fold checkpoint left behind (its process killed between the terminal record and
        removing it) is removed here, as :meth:`FileExecutionLog.save_outcome` would have.
        """
        try:
            writer = LogWriter.open(path, len(data), self.durability, expect=st)
        except StoreError as e:
            if e.errno not in _READ_ONLY_ERRNOS or not outcome.status.is_terminal:
                raise
            lock.release()
            return FileExecutionLog(
                execution_id, None, None, None, None, data=data, outcome=outcome, path=path, read_only=e
            )
        if outcome.status.is_terminal:
            with contextlib.suppress(OSError):
                os.unlink(self.layout.checkpoint(execution_id))
        return FileExecutionLog(execution_id, None, None, writer, lock, snapshot_path=snap, data=data, outcome=outcome)

    def _checkpointed(
        self,
        execution_id: str,
        path: str,
        f: io.FileIO,
        *,
        st: os.stat_result,
        lock: ClaimLock,
        snap: str,
        ckpt: str,
        kept: Loaded | None = None,
    ) -> FileExecutionLog | None:
        """The claim of an unfinished log from its fold checkpoint and the frames after it; None on any miss.

        The checkpoint is used only when it matches the log's first bytes exactly (see
        :mod:`delite.store._checkpoint`); the frames after them are read, verified, decoded and folded onto
        its state here. A tail that cannot be read or folded, or that finishes the execution, is a miss: the
        whole log is then read as if there were no checkpoint (and any damage reported as usual).

        ``kept``: a state a listing of this store folded from the checkpoint and the log's bytes a moment ago (see
        :meth:`recoverable`), used instead of the file's when the log still begins with exactly those bytes,
        which saves decoding the checkpoint, hashing the log and folding the frames the listing folded.
        """
        if kept is not None:
            try:
                if kept.data is None or not same_prefix(f.fileno(), kept.data):
                    return None
            except OSError:
                return None
            found: Loaded | None = kept
        else:
            found = load_checkpoint(ckpt, f.fileno(), execution_id, log_path=path)
        if found is None:
            return None
        digest = found.digest.copy()

        def read(n: int) -> bytes:
            chunk = f.read(n)
            digest.update(chunk)
            return chunk

        try:
            f.seek(found.size)
            tail = parse_stream(read, path=path, start=found.size)
            if _finished(tail.records):
                return None
            state = fold(tail.records, found.state)
        except (DeliteError, OSError):
            return None
        if tail.end != tail.size:  # a torn tail, cut off below: the running hash covers the good bytes only
            digest = found.digest.copy()
            try:
                digest.update(os.pread(f.fileno(), tail.end - found.size, found.size))
            except OSError:
                return None
        last = tail.offsets[-1] if tail.offsets else -1
        writer = LogWriter.open(path, tail.end, self.durability, last_offset=last, expect=st)
        writer.digest = digest
        checkpointed = Checkpointed(state=state, covered=found.size, end=tail.end, first=found.first)
        return FileExecutionLog(
            execution_id,
            None,
            tail.torn,
            writer,
            lock,
            snapshot_path=snap,
            checkpoint_path=ckpt,
            checkpointed=checkpointed,
        )

    def _claimed_log(
        self,
        execution_id: str,
        path: str,
        contents: LogContents,
        *,
        st: os.stat_result,
        create: Sequence[Record] | None,
        lock: ClaimLock,
        snap: str,
        data: bytes,
        digest: _Hash | None = None,
    ) -> FileExecutionLog:
        """The claim of a log whose records were read (``data``: its bytes, if they were read whole).

        ``digest`` is the running SHA-256 of the bytes read (``contents.size`` of them), kept by the writer
        for fold checkpoints; a torn tail is cut off, so its bytes are taken out again by hashing anew.
        """
        check_identity(execution_id, path, contents.records)
        if not contents.records:
            return self._finish_creation(execution_id, contents, create, lock=lock, snap=snap)
        last = contents.offsets[-1]
        try:
            writer = LogWriter.open(path, contents.end, self.durability, last_offset=last, expect=st)
        except StoreError as e:
            if e.errno not in _READ_ONLY_ERRNOS or not _finished(contents.records):
                raise
            lock.release()
            return FileExecutionLog(
                execution_id,
                contents.records,
                contents.torn,
                None,
                None,
                data=data,
                size=contents.size,
                path=path,
                read_only=e,
            )
        if digest is not None and not _finished(contents.records):
            writer.digest = digest if contents.end == contents.size else _hash_log(path, contents.end)
        return FileExecutionLog(
            execution_id,
            contents.records,
            contents.torn,
            writer,
            lock,
            snapshot_path=snap,
            checkpoint_path=self.layout.checkpoint(execution_id),
        )

    def _read_only_claim(self, execution_id: str, path: str, cause: OSError) -> FileExecutionLog:
        """A finished execution read without a claim, because the data directory cannot be written.

        Anything else needs to be written to, so it is refused with a ``StoreError`` carrying the cause.
        """
        data, st = read_log_file(execution_id, path, data_dir=self._where())
        check_single_link(execution_id, path, st)
        snapshot = self.layout.snapshot(execution_id)
        outcome = load_snapshot(snapshot, data, execution_id=execution_id) or _tally.answer(data, execution_id)
        if outcome is not None and outcome.status.is_terminal:
            return FileExecutionLog(
                execution_id, None, None, None, None, data=data, outcome=outcome, path=path, read_only=cause
            )
        contents = parse_log(data, path=path)
        check_identity(execution_id, path, contents.records)
        if not _finished(contents.records):
            where = cause.filename if isinstance(cause.filename, str) else self.layout.root
            raise StoreError.from_os_error(f"claim execution {execution_id!r}", where, cause) from cause
        return FileExecutionLog(
            execution_id, contents.records, contents.torn, None, None, data=data, path=path, read_only=cause
        )

    def _finish_creation(
        self,
        execution_id: str,
        contents: LogContents,
        create: Sequence[Record] | None,
        *,
        lock: ClaimLock,
        snap: str,
    ) -> FileExecutionLog:
        """Write the first records into a log that a crash cut short while it was being created.

        Such a log holds no complete record: the execution was never started (no caller was told it was), so
        it is started now, or, without ``create``, there is no such execution.
        """
        if create is None:
            raise ExecutionNotFoundError(execution_id, self._where())
        path = self.layout.log(execution_id)
        writer = LogWriter.open(path, contents.end, self.durability)
        try:
            writer.append(create, barrier=True)
            if self.durability is not Durability.OFF:
                try:
                    fsync_dir(os.path.dirname(path))  # the crash may have come before the name was made durable
                except OSError as e:
                    raise StoreError.from_os_error("sync the directory of", path, e) from e
        except BaseException:
            writer.close()
            raise
        log = FileExecutionLog(execution_id, list(create), contents.torn, writer, lock, snapshot_path=snap)  # type: ignore[arg-type]
        log.created = True
        return log

    def is_claimed(self, execution_id: str) -> bool:
        """Whether a live process holds the claim, asked so that no concurrent claim fails (see ``_claimlock``)."""
        validate_execution_id(execution_id)
        return held(self.layout.claim(execution_id))

    def bind_key(self, key: str, execution_id: str, fingerprint: str) -> tuple[str, str]:
        """Bind with a hard link (atomic, fails if the key exists) of a fully written, synced file.

        A key that is bound already is only read (no write access needed). The temporary file is removed on
        every path; every failure is a :class:`~delite.errors.StoreError`.
        """
        keys = self.layout.keys
        path = os.path.join(
            keys, _digest.sha256(check_binding(key, execution_id, fingerprint).encode()).hexdigest() + ".json"
        )
        if not os.path.lexists(path):
            self._ensure()
            self._write_key(keys, path, {"key": key, "execution_id": execution_id, "fingerprint": fingerprint})
        return self._read_key(path)

    def _read_key(self, path: str) -> tuple[str, str]:
        try:
            raw, _st = _os.read_regular(path)
            bound = _key_codec.decode(raw)
        except OSError as e:
            raise StoreError.from_os_error("read the idempotency key", path, e) from e
        except msgspec.DecodeError as e:
            raise StoreError(f"the idempotency key file is damaged: {e}", path) from e
        return str(bound["execution_id"]), str(bound["fingerprint"])

    def _write_key(self, keys: str, path: str, binding: dict[str, str]) -> None:
        body = msgspec.json.encode(binding)
        tmp = os.path.join(keys, f".tmp-{os.getpid()}-{os.urandom(8).hex()}")
        created = False
        try:
            fd = _os.open_private(tmp, os.O_WRONLY)
            created = True
            try:
                _os.write_all(fd, body)
                if self.durability is not Durability.OFF:
                    _os.fsync(fd)
            finally:
                os.close(fd)
            with contextlib.suppress(FileExistsError):  # a racer bound it first: theirs holds
                os.link(tmp, path)
                if self.durability is not Durability.OFF:
                    fsync_dir(keys)
        except OSError as e:
            raise StoreError.from_os_error("bind the idempotency key", tmp if created else keys, e) from e
        finally:
            if created:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)

    def lookup_key(self, key: str) -> tuple[str, str] | None:
        """Read the key's binding file, if there is one (no write access needed)."""
        path = os.path.join(self.layout.keys, _digest.sha256(check_key(key).encode()).hexdigest() + ".json")
        if not os.path.lexists(path):
            return None
        return self._read_key(path)

    def request_cancel(self, execution_id: str) -> None:
        """Drop a cancel marker that the owner checks at each step boundary."""
        path = self.layout.cancel_signal(validate_execution_id(execution_id))
        self._ensure()
        try:
            os.close(_os.open_private(path, os.O_WRONLY))
        except FileExistsError:
            pass  # asked already
        except OSError as e:
            raise StoreError.from_os_error("request a cancel", path, e) from e
        try:
            bump(self.layout.signals)  # after the marker: an owner that reads the new value sees it
        except OSError as e:
            raise StoreError.from_os_error("request a cancel", self.layout.signals, e) from e

    def cancel_requested(self, execution_id: str) -> bool:
        """Whether a cancel marker exists.

        Only a regular file is a marker (:meth:`request_cancel` makes one): anything else under its name (a
        FIFO, a directory, a symbolic link) is a bad entry that ``health`` reports, never a cancellation.
        No system call is made while no cancel was requested since the last look (see :mod:`._cancels`).
        """
        cancels = self._cancels
        # The common case: known to have none at this generation (no system call, validated when first looked).
        if isinstance(execution_id, str) and cancels.known_clear(execution_id):
            return False
        return cancels.requested(validate_execution_id(execution_id), self._has_marker)

    def _has_marker(self, execution_id: str) -> bool:
        try:
            st = os.lstat(self.layout.cancel_signal(execution_id))
        except OSError:
            return False
        return stat.S_ISREG(st.st_mode)

    def cancels_requested(self, execution_ids: Iterable[str]) -> set[str]:
        """Which of these have a cancel marker: a look per id for a few, one listing of the markers for many.

        Those known to have none since the last look are not looked for (see :mod:`._cancels`).
        """
        generation, wanted = self._cancels.unknown(set(check_ids(execution_ids)))
        found = self._markers(wanted)
        self._cancels.saw_none(generation, wanted - found)
        return found

    def _markers(self, wanted: set[str]) -> set[str]:
        if not wanted:
            return set()
        if len(wanted) <= _FEW:
            return {eid for eid in wanted if self._has_marker(eid)}
        try:
            names = os.listdir(self.layout.signals)
        except FileNotFoundError:
            return set()
        except OSError as e:
            raise StoreError.from_os_error("list the cancel requests", self.layout.signals, e) from e
        named = {n[: -len(".cancel")] for n in names if n.endswith(".cancel")} & wanted
        return {eid for eid in named if self._has_marker(eid)}  # only regular files are markers

    def clear_cancel(self, execution_id: str) -> None:
        """Remove the cancel marker (a bad entry under its name is left for ``health`` to report)."""
        path = self.layout.cancel_signal(validate_execution_id(execution_id))
        if self._has_marker(execution_id):
            remove(path, "clear the cancel request")

    def query_executions(self, query: ListingQuery, *, progress: Progress | None = None) -> Page:
        """List from the SQLite listing index, brought up to date from the logs first (see :mod:`._listing`).

        ``progress(done, total)`` is called while many logs are being indexed (a file-store extra).
        """
        from delite.store._listing import list_page  # noqa: PLC0415 - sqlite3 only when listing

        keep = self._keep if getattr(self._finding, "keep", False) else None
        return list_page(self.layout, query, progress=progress, keep=keep)

    def create(self, execution_id: str, records: Sequence[Record]) -> None:
        """Create an execution holding ``records``, whole or not at all (see :meth:`LogStore.create`).

        Under the execution's claim lock, the log is written to a temporary file, synced and linked to its
        name (see :func:`delite.log._writer.publish_log`), so a crash leaves no log or the whole one, and a
        later attempt with the same id works.
        """
        validate_execution_id(execution_id)
        if not records:
            raise UsageError(f"execution {execution_id!r} must be created with at least one record")
        self._publish(execution_id, lambda path: publish_log(path, records, self.durability))

    def read_payloads(self, execution_id: str) -> list[StoredPayload]:
        """The log's complete records as the exact payload bytes of their frames, with their CRC-32.

        Read as :meth:`read` reads (the whole log checked and decoded, a torn tail left out), without claiming
        it; see :meth:`LogStore.read_payloads`.
        """
        eid = validate_execution_id(execution_id)
        path = self.layout.log(eid)
        data, _st = read_log_file(eid, path, data_dir=self._where())
        records, payloads = stored_payloads(data, path=path)
        check_identity(eid, path, records)
        return payloads

    def create_payloads(self, execution_id: str, payloads: Sequence[StoredPayload]) -> None:
        """Create the log from stored payloads, framing their exact bytes, whole or not at all.

        Every checksum and sequence number is verified and every payload decoded before anything is written,
        and the first record must name this execution; see :meth:`LogStore.create_payloads`.
        """
        eid = validate_execution_id(execution_id)
        records = decode_stored(eid, payloads)
        if not records:
            raise UsageError(f"execution {eid!r} must be created with at least one record")
        check_identity(eid, f"copy of {eid}", records)
        frames = frame_payloads(payloads)
        self._publish(eid, lambda path: publish_frames(path, frames, self.durability))

    def _publish(self, execution_id: str, write: Callable[[str], None]) -> None:
        """Create the execution's log with ``write(path)``, under its claim lock; the log must not exist yet.

        When it exists, the temporary name a creator killed mid-way left on it is removed first (so a copy or a
        fork run again after a SIGKILL leaves a log that can be claimed), then the conflict is raised.
        """
        if os.path.lexists(self.layout.log(execution_id)):
            drop_stray_links(self.layout.log(execution_id))
            raise _exists(execution_id)
        self._ensure()
        lock = self._lock(execution_id)
        try:
            taken = try_take(lock)
        except OSError as e:  # the lock file cannot be created: a full disk, a read-only directory
            where = self.layout.claim(execution_id)
            raise StoreError.from_os_error(f"claim execution {execution_id!r}", where, e) from e
        if not taken:
            raise ExecutionAlreadyClaimedError(execution_id)
        try:
            write(self.layout.log(execution_id))
        except FileExistsError:
            raise _exists(execution_id) from None
        finally:
            lock.release()

    def rewrite(self, log: ExecutionLog, records: Sequence[Record]) -> None:
        """Replace every record of an execution ``log`` holds the claim of, whole or not at all (``delite rekey``).

        The new log is renamed over the old one (see :func:`delite.log._writer.replace_log`); the snapshot and
        the fold checkpoint, derived from the old bytes, are removed first, and the listing index sees a new
        file. Release ``log``
        right after: it still points at the old file.

        Raises:
            UsageError: ``log`` is not a live claim of this store, or ``records`` is empty.
            StoreError: the file system refused; the old log is left as it was.
        """
        if not isinstance(log, FileExecutionLog) or log._lock is None or log._writer is None:  # noqa: SLF001
            raise UsageError("rewrite takes a live, writable claim of this store")
        if not records:
            raise UsageError(f"execution {log.execution_id!r} must keep at least one record")
        eid = validate_execution_id(log.execution_id)
        log._checkpoint_path = ""  # noqa: SLF001 - the claim's old bytes: no checkpoint of them from now on
        remove(self.layout.snapshot(eid), "remove the snapshot")
        remove(self.layout.checkpoint(eid), "remove the fold checkpoint")
        replace_log(self.layout.log(eid), records, self.durability)

    def delete_execution(self, execution_id: str, *, force: bool = False) -> Deleted:
        """Remove the execution's log and every file kept for it, crash-safe (see :mod:`._file_erase`).

        The log is renamed to a tombstone in one step (the execution is then gone for every reader), then its
        index row, key files, cancel marker, tombstone and claim lock file are removed. See
        :meth:`Store.delete_execution`; the bytes freed count the log, its snapshot and its key files.
        """
        from delite.store._file_erase import Eraser  # noqa: PLC0415 - only when deleting

        eid = validate_execution_id(execution_id)
        check_force(force)
        with Eraser(self, force=force) as eraser:
            return eraser.delete(eid)

    def delete_executions(
        self, execution_ids: Iterable[str], *, force: bool = False
    ) -> tuple[list[Deleted], list[Refused]]:
        """Delete in batches (key files read once, one directory sync a batch); see :meth:`Store.delete_executions`."""
        from delite.store._file_erase import Eraser  # noqa: PLC0415 - only when deleting

        ids = check_ids(execution_ids)
        check_force(force)
        deleted: list[Deleted] = []
        refused: list[Refused] = []
        with Eraser(self, force=force) as eraser:
            for eid in ids:
                try:
                    deleted.append(eraser.delete(eid))
                except ExecutionNotFoundError:
                    continue
                except ExecutionStateError as e:
                    refused.append(refusal(eid, e))
        return deleted, refused

    # -- file-store features: byte offsets, health of the bytes, the SQLite listing index -----------------------

    def tail(self, execution_id: str) -> LogTail:
        """Open the execution's log to follow it by byte offset (only appended bytes are read at each look)."""
        eid = validate_execution_id(execution_id)
        return LogTail(eid, self.layout.log(eid), data_dir=self._where())

    def health(self, *, repair: bool = False, progress: Progress | None = None) -> HealthReport:
        """Verify every checksum of every log, torn tails, bad entries, permissions, snapshots and the index.

        Read-only unless ``repair``, which rebuilds what is derived (the index, stale snapshots); logs are
        never modified. See :func:`delite.store._file_health.check_health`.
        """
        from delite.store._file_health import check_health  # noqa: PLC0415 - sqlite3 only when needed

        return check_health(self.layout, repair=repair, progress=progress)

    def reindex(self, progress: Progress | None = None) -> int:
        """Rebuild the SQLite listing index from every log; returns the number of executions indexed."""
        if not os.path.isdir(self.layout.executions):
            return 0
        from delite.store._index import ListingIndex  # noqa: PLC0415 - sqlite3 only when listing

        index = ListingIndex.open(self.layout)
        try:
            return index.rebuild(progress)
        finally:
            index.close()


def _exists(execution_id: str) -> ExecutionIdConflictError:
    detail = "an execution with this id exists already; choose another id"
    return ExecutionIdConflictError(execution_id, "", detail)


def _finished(records: Sequence[AnyRecord]) -> bool:
    """Whether the log ends with a terminal record: nothing can be appended to it any more."""
    return bool(records) and isinstance(records[-1], ExecutionCompleted | ExecutionCancelled)


def _read_all(f: io.FileIO, path: str) -> bytes:
    """The whole of an open log file (a failed read is a :class:`StoreError` naming the file)."""
    try:
        return f.readall()
    except OSError as e:
        raise StoreError.from_os_error("read the log", path, e) from e


def _read_stream(f: io.FileIO, path: str, *, digest: _Hash | None = None) -> LogContents:
    """An open log file's contents, read and verified a chunk at a time (see :func:`parse_stream`).

    ``digest``, when given, is updated with every byte read.
    """
    read: Callable[[int], bytes] = f.read
    if digest is not None:
        update = digest.update

        def hashed(n: int) -> bytes:
            chunk = f.read(n)
            update(chunk)
            return chunk

        read = hashed
    try:
        return parse_stream(read, path=path)
    except DeliteError:
        raise  # damage, a torn header, a format it cannot read: said as the whole-file parse says it
    except OSError as e:  # the read itself failed
        raise StoreError.from_os_error("read the log", path, e) from e


def _read_prefix(path: str, size: int) -> LogContents:
    """The records of the log's first ``size`` bytes (those a claim held when it read only the log's tail)."""
    try:
        data = _os.read_prefix(path, size)
    except OSError as e:
        raise StoreError.from_os_error("read the log", path, e) from e
    return parse_log(data, path=path)


def _hash_log(path: str, size: int) -> _Hash | None:
    """The running SHA-256 of the log's first ``size`` bytes (None if they cannot be read)."""
    try:
        fd = _os.open_regular(path)
        try:
            hashed = hash_prefix(fd, size)
        finally:
            os.close(fd)
    except OSError:
        return None
    return None if hashed is None else hashed[0]


class Checkpointed:
    """What a claim found from a fold checkpoint: state, bytes covered, where the log ends, the first record.

    A plain class, not a ``NamedTuple``: one would compile its string annotations when this module is imported.
    """

    __slots__ = ("covered", "end", "first", "state")

    def __init__(self, *, state: ExecutionState, covered: int, end: int, first: AnyRecord) -> None:
        """Hold what the claim found."""
        self.state = state
        self.covered = covered
        self.end = end
        self.first = first
