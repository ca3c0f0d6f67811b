"""Append records to a log file.

Durability contract. Every append hands all its bytes to the kernel with ``write`` before it returns, so once
``append`` returns, a killed process loses nothing it appended. Whether it survives an operating-system crash
or power loss depends on the mode (:class:`~delite.log._durability.Durability`): in ``FULL`` the append also
returns only after ``fsync``; in ``NORMAL`` only appends marked as a barrier ``fsync`` (and so make every
earlier append durable too); in ``OFF`` nothing is synced. A new log is created with ``O_EXCL``, mode ``0600``
whatever the umask, its header synced and its directory synced (except in ``OFF``).

Failure contract. If ``write`` fails part-way (disk full, I/O error), the writer truncates the file back to the
end of the last complete record and raises :class:`~delite.errors.StoreError`: the log stays readable with
nothing after the last good record. If ``fsync`` fails, the kernel may already have dropped the unsynced
pages, so the writer is closed and raises; reopening the log re-reads what is really on disk.
"""

from __future__ import annotations

import contextlib
import errno
import os
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from delite.errors import LogIdentityError, RecordTooLargeError, StoreError
from delite.log import _digest, _os
from delite.log._codec import encode_record
from delite.log._durability import Durability
from delite.log._framing import HEADER, MAX_RECORD_SIZE, encode_frame
from delite.log.records import Record

if TYPE_CHECKING:
    from hashlib import _Hash

__all__ = ["LogWriter", "publish_frames", "publish_log", "replace_log"]

_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_NONBLOCK = getattr(os, "O_NONBLOCK", 0)
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)


def _store_error(action: str, path: str, e: OSError) -> StoreError:
    return StoreError.from_os_error(f"{action} the log", path, e)


def _frames(records: Sequence[Record]) -> tuple[bytes, int]:
    """The frames of ``records`` as one byte string, and the size of the last frame."""
    parts = []
    for record in records:
        payload = encode_record(record)
        if len(payload) > MAX_RECORD_SIZE:
            raise RecordTooLargeError(len(payload), MAX_RECORD_SIZE)
        parts.append(encode_frame(payload))
    return b"".join(parts), len(parts[-1]) if parts else 0


class LogWriter:
    """The single writer of one log file; the caller holds the execution's claim."""

    __slots__ = ("_broken", "_durability", "_fd", "_size", "_unsynced", "digest", "last_offset", "path")

    def __init__(self, path: str, fd: int, size: int, durability: Durability, *, last_offset: int = -1) -> None:
        """Wrap an open file descriptor positioned at ``size`` (use :meth:`create` or :meth:`open`)."""
        self.path = path
        self._fd = fd
        self._size = size
        self.last_offset = last_offset
        """Where the log's last complete record starts (-1: none, or not known)."""
        self._durability = durability
        self._unsynced = False
        self._broken = False
        self.digest: _Hash | None = None
        """A running SHA-256 of the log's bytes, kept up to date by :meth:`append` once the owner sets one."""

    @classmethod
    def create(cls, path: str, durability: Durability, records: Sequence[Record] = ()) -> LogWriter:
        """Create a new log holding ``records`` (``FileExistsError`` if one exists) and make it durable.

        The header and the first records go down in one write and one ``fsync``, then the directory is synced.
        """
        frames, last = _frames(records)
        data = HEADER + frames
        # 0600 whatever the umask, never through a symbolic link; an existing file is FileExistsError.
        try:
            fd = _os.open_private(path, os.O_WRONLY | os.O_APPEND)
        except FileExistsError:
            raise
        except OSError as e:
            raise _store_error("create", path, e) from e
        try:
            _os.write_all(fd, data)
            if durability is not Durability.OFF:
                _os.fsync(fd)
                _os.fsync_dir(os.path.dirname(path) or ".")
        except OSError as e:
            os.close(fd)
            with contextlib.suppress(OSError):
                os.unlink(path)
            raise _store_error("create", path, e) from e
        writer = cls(path, fd, len(data), durability, last_offset=len(data) - last if records else -1)
        writer.digest = _digest.sha256(data)
        return writer

    @classmethod
    def open(
        cls,
        path: str,
        good_size: int,
        durability: Durability,
        *,
        last_offset: int = -1,
        expect: os.stat_result | None = None,
    ) -> LogWriter:
        """Open an existing log for appending, first cutting off anything after ``good_size`` (a torn tail).

        Never through a symbolic link. With ``expect`` (the ``stat`` of the file the caller read), the file
        opened must be that same file, else :class:`~delite.errors.LogIdentityError`.
        """
        try:
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | _NOFOLLOW | _NONBLOCK | _CLOEXEC)
        except OSError as e:
            raise _store_error("open", path, e) from e
        if expect is not None:
            try:
                st = os.fstat(fd)
            except OSError as e:
                os.close(fd)
                raise _store_error("open", path, e) from e
            if (st.st_dev, st.st_ino) != (expect.st_dev, expect.st_ino):
                os.close(fd)
                name = os.path.basename(path).removesuffix(".log")
                raise LogIdentityError(name, path, "the file was replaced while it was being opened")
        try:
            # An empty file (a crash right after the log was created) has no tail to cut but needs its header.
            if os.fstat(fd).st_size != good_size or good_size < len(HEADER):
                os.ftruncate(fd, good_size)
                if good_size < len(HEADER):
                    os.ftruncate(fd, 0)
                    _os.write_all(fd, HEADER)
                    good_size = len(HEADER)
                if durability is not Durability.OFF:
                    _os.fsync(fd)
        except OSError as e:
            os.close(fd)
            raise _store_error("repair", path, e) from e
        return cls(path, fd, good_size, durability, last_offset=last_offset)

    @property
    def size(self) -> int:
        """Bytes in the log, all of them complete records."""
        return self._size

    def append(self, records: Sequence[Record], *, barrier: bool = False) -> int:
        """Append records as one ``write``; sync per the durability mode. Returns the offset of the first.

        ``barrier`` marks an append that must be durable before the caller acts on the outside world (a tool
        intent, a suspension, the end of a run); ``NORMAL`` syncs only at barriers.
        """
        if self._broken:
            raise StoreError("the log writer is closed after an earlier failure; reopen the execution", self.path)
        data, last = _frames(records)
        start = self._size
        try:
            _os.write_all(self._fd, data)
        except OSError as e:
            self._rollback(start)
            raise _store_error("append to", self.path, e) from e
        except BaseException:
            # Interrupted part-way (KeyboardInterrupt in the write loop): cut the partial frame off too, so a
            # later append on this writer cannot bury it as damage in the middle of the log.
            self._rollback(start)
            raise
        self._size = start + len(data)
        if self.digest is not None:
            self.digest.update(data)
        if last:
            self.last_offset = self._size - last
        mode = self._durability
        if mode is Durability.FULL or (barrier and mode is Durability.NORMAL):
            self.sync()
        elif mode is Durability.NORMAL:
            self._unsynced = True
        return start

    def digest_after(self, records: Sequence[Record]) -> str | None:
        """The SHA-256 (hex) the log's bytes would have with ``records`` appended; None if no running hash is kept.

        Nothing is written: what a terminal record's :class:`~delite.log.records.Tally` binds to, computed before
        it is appended with the records that precede it. Raises as :meth:`append` would on a record it refuses.
        """
        if self.digest is None:
            return None
        digest = self.digest.copy()
        if records:
            digest.update(_frames(records)[0])
        return digest.hexdigest()

    def syncs(self, *, barrier: bool) -> bool:
        """Whether :meth:`append` with this ``barrier`` calls ``fsync`` (per the durability mode)."""
        mode = self._durability
        return mode is Durability.FULL or (barrier and mode is Durability.NORMAL)

    def sync(self) -> None:
        """``fsync`` now, whatever the mode (``OFF`` included)."""
        try:
            _os.fsync(self._fd)
        except OSError as e:
            self._broken = True
            self.close()
            raise _store_error("sync", self.path, e) from e
        self._unsynced = False

    def close(self) -> None:
        """Close the file; in ``NORMAL``, sync first what is not yet synced (a failure is a ``StoreError``)."""
        if self._fd < 0:
            return
        try:
            if self._unsynced and not self._broken:
                _os.fsync(self._fd)
        except OSError as e:
            self._broken = True
            raise _store_error("sync", self.path, e) from e
        finally:
            os.close(self._fd)
            self._fd = -1

    def _rollback(self, size: int) -> None:
        try:
            os.ftruncate(self._fd, size)
        except OSError:
            # The reader will cut the partial frame as a torn tail; this writer must not append after it.
            self._broken = True


def publish_log(path: str, records: Sequence[Record], durability: Durability) -> None:
    """Create the log at ``path`` holding ``records``, whole or not at all (a fork is written this way).

    The bytes go to a temporary file in the same directory (``.<name>.<pid>.<hex>.tmp``, which is not a log),
    which is synced, then given the log's name with a hard link (atomic, and it fails if the name exists:
    nothing is ever overwritten), then the directory is synced and the temporary name removed. A crash at
    any point leaves either no log at ``path`` or the whole one. Temporary files that a crash left for the
    same ``path`` are removed first: the caller holds the execution's claim, so no one else is writing them.

    Raises:
        FileExistsError: a log exists at ``path`` already.
        StoreError: the file system refused (disk full, I/O error); nothing is left at ``path``.
    """
    publish_frames(path, _frames(records)[0], durability)


def publish_frames(path: str, frames: bytes, durability: Durability) -> None:
    """:func:`publish_log` for records already framed (``frames``: the bytes after the header), kept exactly.

    ``delite copy`` creates a log this way from another store's payloads, so the bytes are the source's.
    """
    _remove_leftovers(path)
    if os.path.lexists(path):
        raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), path)
    _write_then_publish(path, HEADER + frames, durability, action="create", publish=_os.link)


def replace_log(path: str, records: Sequence[Record], durability: Durability) -> None:
    """Replace the log at ``path`` with one holding ``records``, whole or not at all (``delite rekey``).

    The new log is written to a temporary file in the same directory, synced, then renamed over the old one
    (atomic: a crash leaves the old log or the new one, never a mix) and the directory synced. The caller
    holds the execution's claim.

    Raises:
        StoreError: the file system refused (disk full, I/O error); the old log is left as it was.
    """
    data = HEADER + _frames(records)[0]
    _remove_leftovers(path)  # a rewrite killed mid-way left its temporary file: the claim is ours
    _write_then_publish(path, data, durability, action="rewrite", publish=os.replace)


def _remove_leftovers(path: str) -> None:
    """Remove the temporary files a killed write left for ``path`` (the caller holds the execution's claim)."""
    folder, name = os.path.split(path)
    folder = folder or "."
    prefix = f".{name}."
    for leftover in os.listdir(folder):
        if leftover.startswith(prefix) and leftover.endswith(".tmp"):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(os.path.join(folder, leftover))


def _write_then_publish(
    path: str, data: bytes, durability: Durability, *, action: str, publish: Callable[[str, str], None]
) -> None:
    """Write ``data`` to a temporary file beside ``path``, sync it, ``publish(tmp, path)``, sync the folder.

    ``publish`` is :func:`os.replace` (atomic overwrite) or a hard link (atomic, refuses an existing name:
    its ``FileExistsError`` passes through). Any other refusal becomes a ``StoreError`` naming ``action``; the
    temporary file never stays.
    """
    folder, name = os.path.split(path)
    folder = folder or "."
    tmp = os.path.join(folder, f".{name}.{os.getpid()}.{os.urandom(6).hex()}.tmp")
    try:
        fd = _os.open_private(tmp, os.O_WRONLY)
    except OSError as e:
        raise _store_error(action, path, e) from e
    try:
        try:
            _os.write_all(fd, data)
            if durability is not Durability.OFF:
                _os.fsync(fd)
        finally:
            os.close(fd)
        publish(tmp, path)
        if durability is not Durability.OFF:
            _os.fsync_dir(folder)
    except FileExistsError:
        raise
    except OSError as e:
        raise _store_error(action, path, e) from e
    finally:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
