"""The few OS calls the log depends on, behind one small module so tests can inject faults here."""

from __future__ import annotations

import os

__all__ = ["fsync", "fsync_dir", "link", "write_all"]


def write_all(fd: int, data: bytes) -> None:
    """Write every byte of ``data``, looping over short writes. Raises ``OSError`` on failure."""
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        if written <= 0:  # pragma: no cover - os.write raises rather than returning 0 on regular files
            raise OSError("write returned 0")
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


def link(src: str, dst: str) -> None:
    """Give ``src`` a second name ``dst``, atomically; ``FileExistsError`` if ``dst`` exists (never overwrites)."""
    os.link(src, dst)
