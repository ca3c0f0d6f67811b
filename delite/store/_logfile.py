"""Open an execution's log file as the one log of one execution (no filelock: the read side uses it too).

One log, one identity: a log is read only as a regular file, never through a symbolic link and never blocking
on a FIFO; it is the log of the id it is opened under only if its first record names that id; and it is
claimed only if it has a single name (no hard link makes it reachable under another id).
"""

from __future__ import annotations

import errno
import io
import os
from collections.abc import Sequence

from delite.errors import ExecutionNotFoundError, LogIdentityError, StoreError
from delite.log import _os
from delite.log._shell import unsealed_shell
from delite.log.records import AnyRecord, ExecutionStarted

__all__ = ["check_identity", "check_single_link", "drop_stray_links", "open_log_file", "read_log_file", "remove"]


def read_log_file(execution_id: str, path: str, *, data_dir: str | None = None) -> tuple[bytes, os.stat_result]:
    """The bytes of an execution's log file and its ``stat``, read safely (see :func:`~delite.log._os.open_regular`).

    Raises:
        ExecutionNotFoundError: there is no such file (naming ``data_dir``, where it was looked for).
        LogIdentityError: it is a symbolic link.
        StoreError: it cannot be read, or it is not a regular file (a directory, a FIFO); ``errno`` and
            ``filename`` say why and where.
    """
    try:
        return _os.read_regular(path)
    except OSError as e:
        raise _unreadable(execution_id, path, data_dir, e) from (None if isinstance(e, FileNotFoundError) else e)


def _unreadable(execution_id: str, path: str, data_dir: str | None, e: OSError) -> Exception:
    """The error for a log that could not be opened or read: not found, a link, or the file system's failure."""
    if isinstance(e, FileNotFoundError):
        return ExecutionNotFoundError(execution_id, data_dir)
    if e.errno == errno.ELOOP:
        return LogIdentityError(execution_id, path, "it is a symbolic link", errno=errno.ELOOP)
    return StoreError.from_os_error("read the log", path, e)


def open_log_file(execution_id: str, path: str, *, data_dir: str | None = None) -> tuple[io.FileIO, os.stat_result]:
    """An execution's log file open for reading, and its ``stat``: :func:`read_log_file` without the read.

    The caller reads it (in chunks, or whole) and closes it. Raises what :func:`read_log_file` raises.
    """
    try:
        fd = _os.open_regular(path)
    except OSError as e:
        raise _unreadable(execution_id, path, data_dir, e) from (None if isinstance(e, FileNotFoundError) else e)
    f = io.FileIO(fd, "rb", closefd=True)
    try:
        return f, os.fstat(fd)
    except OSError as e:
        f.close()
        raise StoreError.from_os_error("read the log", path, e) from e


def check_identity(execution_id: str, path: str, records: Sequence[AnyRecord]) -> None:
    """Raise :class:`~delite.errors.LogIdentityError` if the log's first record names another execution."""
    first = unsealed_shell(records[0]) if records else None
    if isinstance(first, ExecutionStarted) and first.execution_id != execution_id:
        raise LogIdentityError(
            execution_id, path, f"its records name execution {first.execution_id!r} (a copy or a link)"
        )


def check_single_link(execution_id: str, path: str, st: os.stat_result) -> None:
    """Raise :class:`~delite.errors.LogIdentityError` if the log file has more than one name (a hard link)."""
    if st.st_nlink > 1:
        raise LogIdentityError(
            execution_id, path, f"the file has {st.st_nlink} hard links; a log must be reachable under one id"
        )


def drop_stray_links(path: str) -> bool:
    """Remove the temporary names a killed creator left on the log at ``path``; whether any was removed.

    A log is created under a temporary name (``.<name>.<pid>.<hex>.tmp``, see
    :func:`delite.log._writer.publish_frames`), linked to its own name, then the temporary name is removed: a
    process killed between the last two steps leaves the log with a second name, which claims refuse (a log
    must be reachable under one id). Only a temporary name of this log that is the same file is removed, so
    this is safe at any time, with or without the claim.
    """
    try:
        st = os.lstat(path)
    except OSError:
        return False
    if st.st_nlink < 2:
        return False
    folder, name = os.path.split(path)
    prefix = f".{name}."
    removed = False
    try:
        names = os.listdir(folder or ".")
    except OSError:
        return False
    for entry in names:
        if not (entry.startswith(prefix) and entry.endswith(".tmp")):
            continue
        candidate = os.path.join(folder, entry)
        try:
            if os.path.samestat(os.lstat(candidate), st):
                os.unlink(candidate)
                removed = True
        except FileNotFoundError:
            continue
        except OSError:
            return removed  # left for the claim to report
    return removed


def remove(path: str, doing: str) -> None:
    """Remove a file that may be gone already; any other failure is a :class:`StoreError` saying what was done."""
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    except OSError as e:
        raise StoreError.from_os_error(doing, path, e) from e
