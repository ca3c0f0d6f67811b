"""The store on local files: one append-only log per execution under a data directory."""

from __future__ import annotations

import contextlib
import hashlib
import os
import secrets
from collections.abc import Sequence

import filelock
import msgspec

from delite.errors import (
    ClaimTimeoutError,
    ExecutionAlreadyClaimedError,
    ExecutionNotFoundError,
    StoreError,
    UsageError,
)
from delite.log._os import fsync_dir
from delite.log.durability import Durability
from delite.log.framing import TornTail
from delite.log.reader import LogContents, parse_log, read_log
from delite.log.records import AnyRecord, Record
from delite.log.writer import LogWriter, publish_log
from delite.state.outcome import Outcome
from delite.store.base import ExecutionLog, Store
from delite.store.ids import validate_execution_id
from delite.store.layout import Layout
from delite.store.snapshot import load as load_snapshot
from delite.store.snapshot import save as save_snapshot

__all__ = ["FileExecutionLog", "FileStore"]

_key_codec = msgspec.json.Decoder(dict[str, str])


class FileExecutionLog(ExecutionLog):
    """A claimed execution backed by a log file and a ``filelock`` claim.

    When the claim found a snapshot that matches the log (``outcome`` is set), ``records`` are decoded from
    the bytes read at claim time only if something reads them.
    """

    def __init__(
        self,
        execution_id: str,
        records: list[AnyRecord] | None,
        torn: TornTail | None,
        writer: LogWriter,
        lock: filelock.BaseFileLock,
        *,
        snapshot_path: str = "",
        data: bytes = b"",
        outcome: Outcome | None = None,
    ) -> None:
        """Wrap an open writer and a held lock (``records`` None: decode ``data`` when first read)."""
        self.execution_id = execution_id
        self._records = records
        self._data = data
        self.torn = torn
        self.outcome = outcome
        self._writer = writer
        self._lock: filelock.BaseFileLock | None = lock
        self._snapshot_path = snapshot_path

    @property
    def records(self) -> list[AnyRecord]:
        """The records the log held when it was claimed."""
        if self._records is None:
            self._records = parse_log(self._data, path=self._writer.path).records
            self._data = b""
        return self._records

    @records.setter
    def records(self, records: list[AnyRecord]) -> None:
        self._records = records

    def save_outcome(self, outcome: Outcome) -> None:
        """Keep a snapshot of ``outcome`` for the log as it is now, checked against it on the next claim."""
        if self._lock is not None and self._snapshot_path:
            save_snapshot(self._snapshot_path, self._writer.path, self._writer.size, outcome)

    def append(self, records: Sequence[Record], *, barrier: bool = False) -> None:
        """Append records as one write."""
        if self._lock is None:
            raise UsageError(f"execution {self.execution_id!r} was released; claim it again to write")
        self._writer.append(records, barrier=barrier)

    @property
    def size(self) -> int:
        """Bytes of complete records in the log."""
        return self._writer.size

    def release(self) -> None:
        """Close the log and release the claim."""
        lock, self._lock = self._lock, None
        if lock is None:
            return
        try:
            self._writer.close()
        finally:
            lock.release()


class FileStore(Store):
    """Execution logs as files under ``root`` (see :class:`~delite.store.layout.Layout`)."""

    def __init__(self, root: str | os.PathLike[str], *, durability: Durability | str = Durability.FULL) -> None:
        """Point at a data directory; nothing is created until the first write."""
        self.layout = Layout(root)
        self.durability = Durability(durability)
        self._ready = False

    def _ensure(self) -> None:
        if not self._ready:
            try:
                self.layout.ensure()
            except OSError as e:
                raise StoreError(f"cannot create the data directory: {e.strerror}", str(self.layout.root)) from e
            self._ready = True

    def exists(self, execution_id: str) -> bool:
        """Whether the execution's log exists."""
        return os.path.exists(self.layout.log(validate_execution_id(execution_id)))

    def list_ids(self) -> list[str]:
        """Every execution id, sorted (generated ids sort by creation time)."""
        try:
            names = os.listdir(self.layout.executions)
        except FileNotFoundError:
            return []
        return sorted(n[:-4] for n in names if n.endswith(".log"))

    def read(self, execution_id: str) -> LogContents:
        """Read an execution's log without claiming it."""
        path = self.layout.log(validate_execution_id(execution_id))
        try:
            return read_log(path)
        except FileNotFoundError:
            raise ExecutionNotFoundError(execution_id) from None

    def _lock(self, execution_id: str) -> filelock.BaseFileLock:
        return filelock.FileLock(self.layout.claim(execution_id), thread_local=False)

    def claim(
        self, execution_id: str, *, create: Sequence[Record] | None = None, timeout: float = 0.0
    ) -> FileExecutionLog:
        """Lock the execution, then read it and repair a torn tail (or create it)."""
        validate_execution_id(execution_id)
        self._ensure()
        path = self.layout.log(execution_id)
        if create is None and not os.path.exists(path):
            raise ExecutionNotFoundError(execution_id)
        lock = self._lock(execution_id)
        try:
            lock.acquire(timeout=timeout, blocking=timeout > 0)
        except filelock.Timeout:
            if timeout > 0:
                raise ClaimTimeoutError(execution_id, timeout) from None
            raise ExecutionAlreadyClaimedError(execution_id) from None
        try:
            if create is not None and not os.path.exists(path):
                writer = LogWriter.create(path, self.durability, create)
                log = FileExecutionLog(
                    execution_id,
                    list(create),  # type: ignore[arg-type]
                    None,
                    writer,
                    lock,
                    snapshot_path=self.layout.snapshot(execution_id),
                )
                log.created = True
                return log
            with open(path, "rb") as f:
                data = f.read()
            snap = self.layout.snapshot(execution_id)
            outcome = load_snapshot(snap, data)
            if outcome is not None:
                # The log is exactly the one the snapshot was made from: nothing to repair, decode lazily.
                writer = LogWriter.open(path, len(data), self.durability)
                return FileExecutionLog(
                    execution_id, None, None, writer, lock, snapshot_path=snap, data=data, outcome=outcome
                )
            contents = parse_log(data, path=path)
            if not contents.records:
                return self._finish_creation(execution_id, contents, create, lock=lock, snap=snap)
            writer = LogWriter.open(path, contents.end, self.durability)
            return FileExecutionLog(execution_id, contents.records, contents.torn, writer, lock, snapshot_path=snap)
        except BaseException:
            lock.release()
            raise

    def _finish_creation(
        self,
        execution_id: str,
        contents: LogContents,
        create: Sequence[Record] | None,
        *,
        lock: filelock.BaseFileLock,
        snap: str,
    ) -> FileExecutionLog:
        """Write the first records into a log that a crash cut short while it was being created.

        Such a log holds no complete record: the execution was never started (no caller was told it was), so
        it is started now, or, without ``create``, there is no such execution.
        """
        if create is None:
            raise ExecutionNotFoundError(execution_id)
        path = self.layout.log(execution_id)
        writer = LogWriter.open(path, contents.end, self.durability)
        try:
            writer.append(create, barrier=True)
            if self.durability is not Durability.OFF:
                fsync_dir(os.path.dirname(path))  # the crash may have come before the name was made durable
        except BaseException:
            writer.close()
            raise
        log = FileExecutionLog(execution_id, list(create), contents.torn, writer, lock, snapshot_path=snap)  # type: ignore[arg-type]
        log.created = True
        return log

    def is_claimed(self, execution_id: str) -> bool:
        """Try the lock without waiting: held means claimed."""
        validate_execution_id(execution_id)
        if not os.path.exists(self.layout.claim(execution_id)):
            return False
        lock = self._lock(execution_id)
        try:
            lock.acquire(timeout=0, blocking=False)
        except filelock.Timeout:
            return True
        lock.release()
        return False

    def bind_key(self, key: str, execution_id: str, fingerprint: str) -> tuple[str, str]:
        """Bind with a hard link (atomic, fails if the key exists) of a fully written, synced file."""
        self._ensure()
        keys = str(self.layout.keys)
        path = os.path.join(keys, hashlib.sha256(key.encode()).hexdigest() + ".json")
        if not os.path.exists(path):
            body = msgspec.json.encode({"key": key, "execution_id": execution_id, "fingerprint": fingerprint})
            tmp = os.path.join(keys, f".tmp-{os.getpid()}-{secrets.token_hex(8)}")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            try:
                os.write(fd, body)
                if self.durability is not Durability.OFF:
                    os.fsync(fd)
            finally:
                os.close(fd)
            try:
                os.link(tmp, path)
                if self.durability is not Durability.OFF:
                    fsync_dir(keys)
            except FileExistsError:
                pass
            finally:
                os.unlink(tmp)
        with open(path, "rb") as f:
            bound = _key_codec.decode(f.read())
        return str(bound["execution_id"]), str(bound["fingerprint"])

    def request_cancel(self, execution_id: str) -> None:
        """Drop a cancel marker that the owner checks at each step boundary."""
        self._ensure()
        path = self.layout.cancel_signal(validate_execution_id(execution_id))
        fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o644)
        os.close(fd)

    def cancel_requested(self, execution_id: str) -> bool:
        """Whether a cancel marker exists."""
        return os.path.exists(self.layout.cancel_signal(execution_id))

    def clear_cancel(self, execution_id: str) -> None:
        """Remove the cancel marker."""
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.layout.cancel_signal(execution_id))

    def publish(self, execution_id: str, records: Sequence[Record]) -> None:
        """Create an execution holding ``records``, whole or not at all, without claiming it for a run.

        Used for forks: under the execution's claim lock, the log is written to a temporary file, synced and
        linked to its name (see :func:`delite.log.writer.publish_log`), so a crash leaves no log or the whole
        one, and a later attempt with the same id works.

        Raises:
            FileExistsError: the execution exists already.
            ExecutionAlreadyClaimedError: another process holds its claim (it is being created or run).
            StoreError: the file system refused; nothing was created.
        """
        validate_execution_id(execution_id)
        self._ensure()
        lock = self._lock(execution_id)
        try:
            lock.acquire(timeout=0, blocking=False)
        except filelock.Timeout:
            raise ExecutionAlreadyClaimedError(execution_id) from None
        try:
            publish_log(self.layout.log(execution_id), records, self.durability)
        finally:
            lock.release()
