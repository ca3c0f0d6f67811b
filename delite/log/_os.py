"""The few OS calls the log depends on, behind one small module so tests can inject faults here.

Also the two rules every file delite touches follows: it creates files ``0600`` and directories ``0700``
whatever the process's umask (:func:`open_private`, :func:`make_private_dir`), and it reads a log only if
it is a regular file, never through a symbolic link and never blocking on a FIFO (:func:`read_regular`).
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = [
    "DIR_MODE",
    "FILE_MODE",
    "create_private",
    "fsync",
    "fsync_dir",
    "link",
    "make_private_dir",
    "open_private",
    "open_regular",
    "read_prefix",
    "read_regular",
    "replace_private",
    "write_all",
]

FILE_MODE = 0o600
"""The mode of every file delite creates: read and write for the owner only."""
DIR_MODE = 0o700
"""The mode of every directory delite creates."""

_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_NONBLOCK = getattr(os, "O_NONBLOCK", 0)
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)


def write_all(fd: int, data: bytes | memoryview) -> None:
    """Write every byte of ``data``, looping over short writes. Raises ``OSError`` on failure."""
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        if written <= 0:  # pragma: no cover - os.write raises rather than returning 0 on regular files
            raise OSError(errno.EIO, "write returned 0")
        view = view[written:]


def fsync(fd: int) -> None:
    """Flush a file's data and metadata to stable storage."""
    os.fsync(fd)


def fsync_dir(path: str) -> None:
    """Make a directory entry (a newly created file) durable."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def open_private(path: str, flags: int) -> int:
    """Create ``path`` (``O_EXCL``, never through a symbolic link) with mode ``0600`` whatever the umask."""
    fd = os.open(path, flags | os.O_CREAT | os.O_EXCL | _NOFOLLOW | _CLOEXEC, FILE_MODE)
    try:
        if hasattr(os, "fchmod") and stat.S_IMODE(os.fstat(fd).st_mode) != FILE_MODE:
            os.fchmod(fd, FILE_MODE)  # a umask cannot add bits, but a default ACL can
    except BaseException:
        os.close(fd)
        raise
    return fd


def replace_private(path: str, *data: bytes | memoryview, unlink_first: bool = False) -> None:
    """Make ``data`` (its pieces one after the other) the file at ``path``, whole or not at all, without ``fsync``.

    For derived files. The bytes go to a ``0600`` temporary file next to it, ``<path>.<pid>-<hex>.tmp``, renamed
    over ``path``; a failure removes the temporary file and raises ``OSError``. ``unlink_first``: remove the old
    file before the rename, so that for a moment there is none. On ext4 a rename over an existing file starts
    writing the new file's data out at once (``auto_da_alloc``, meant for editors that do not ``fsync``): 5 ms
    for a 7 MB fold checkpoint here, against 0.5 ms when the old one is removed first.
    """

    def publish(tmp: str) -> None:
        if unlink_first:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
        os.replace(tmp, path)

    _through_temporary(path, data, publish)


def create_private(path: str, *data: bytes | memoryview) -> bool:
    """:func:`replace_private` that never replaces: the file is given its name with a hard link.

    Returns False, leaving the file there as it is, when ``path`` exists (another process made it meanwhile).
    No reader ever opens a part of the file. ``OSError`` where the file system refuses (no hard links).
    """
    made = True

    def publish(tmp: str) -> None:
        nonlocal made
        try:
            os.link(tmp, path)
        except FileExistsError:
            made = False
        os.unlink(tmp)

    _through_temporary(path, data, publish)
    return made


def _through_temporary(path: str, data: tuple[bytes | memoryview, ...], publish: Callable[[str], None]) -> None:
    """Write ``data`` to a ``0600`` temporary file beside ``path``, then ``publish(tmp)``; the temporary never stays."""
    tmp = f"{path}.{os.getpid()}-{os.urandom(4).hex()}.tmp"
    fd = open_private(tmp, os.O_WRONLY)
    try:
        try:
            for piece in data:
                write_all(fd, piece)
        finally:
            os.close(fd)
        publish(tmp)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def make_private_dir(path: str | os.PathLike[str]) -> bool:
    """Create a directory with mode ``0700`` whatever the umask; False if it exists already (left as it is)."""
    try:
        os.mkdir(path, DIR_MODE)
    except FileExistsError:
        return False
    if stat.S_IMODE(os.stat(path).st_mode) != DIR_MODE:
        os.chmod(path, DIR_MODE)
    return True


def _refuse(path: str, st: os.stat_result) -> OSError:
    kind = stat.S_IFMT(st.st_mode)
    if kind == stat.S_IFDIR:
        return IsADirectoryError(errno.EISDIR, "a directory, not a log file", path)
    names = {stat.S_IFIFO: "a FIFO", stat.S_IFSOCK: "a socket", stat.S_IFCHR: "a character device"}
    what = names.get(kind, "a block device" if kind == stat.S_IFBLK else "not a regular file")
    return OSError(errno.EINVAL, f"{what}, not a log file", path)


def open_regular(path: str) -> int:
    """Open a regular file for reading: never through a symbolic link, never blocking (a FIFO is refused).

    Raises ``OSError``: ``FileNotFoundError`` if there is nothing there, ``ELOOP`` for a symbolic link,
    ``EISDIR`` for a directory and ``EINVAL`` for any other file that is not a regular file.
    """
    try:
        fd = os.open(path, os.O_RDONLY | _NOFOLLOW | _NONBLOCK | _CLOEXEC)
    except OSError as e:
        if e.errno == errno.ELOOP and _NOFOLLOW and os.path.islink(path):
            raise OSError(errno.ELOOP, "a symbolic link, refused (one log, one identity)", path) from None
        raise
    try:
        st = os.fstat(fd)
    except BaseException:
        os.close(fd)
        raise
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        raise _refuse(path, st)
    return fd


def read_prefix(path: str, size: int) -> bytes:
    """The first ``size`` bytes of the regular file at ``path`` (fewer if it is shorter; see :func:`open_regular`)."""
    fd = open_regular(path)
    try:
        chunks = []
        pos = 0
        while pos < size:
            chunk = os.pread(fd, min(size - pos, 1 << 20), pos)
            if not chunk:
                break
            pos += len(chunk)
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def read_regular(path: str) -> tuple[bytes, os.stat_result]:
    """The whole content of the regular file at ``path`` and its ``fstat`` (see :func:`open_regular`)."""
    fd = open_regular(path)
    with open(fd, "rb", buffering=0) as f:  # closes fd; FileIO.readall sizes its buffer from fstat
        st = os.fstat(fd)
        return f.read(), st


def link(src: str, dst: str) -> None:
    """Give ``src`` a second name ``dst``, atomically; ``FileExistsError`` if ``dst`` exists (never overwrites)."""
    os.link(src, dst)
