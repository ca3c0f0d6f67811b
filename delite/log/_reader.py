"""Read a log file: check the header, verify every frame, decode the records, report a torn tail."""

from __future__ import annotations

import os
from typing import NamedTuple

from delite._gc import paused
from delite.errors import LogCorruptError, UnsupportedFormatError
from delite.log._codec import decode_payloads
from delite.log._framing import FORMAT, FORMAT_PREFIX, HEADER, FrameDamage, TornTail, scan_payloads
from delite.log._os import read_regular
from delite.log.records import AnyRecord

__all__ = ["LogContents", "parse_log", "read_log"]


class LogContents(NamedTuple):
    """A log's complete records, their byte offsets, where the good data ends, and any torn tail."""

    records: list[AnyRecord]
    offsets: list[int]
    end: int
    size: int
    torn: TornTail | None


def parse_log(data: bytes, *, path: str = "") -> LogContents:
    """Parse the bytes of a whole log.

    A torn tail (an incomplete or checksum-failing last frame, or a header cut short by a crash while the log
    was being created) is reported in ``torn`` and left out. Damage before the tail raises
    :class:`LogCorruptError` naming the offset; a header for another format raises
    :class:`UnsupportedFormatError`.
    """
    size = len(data)
    if size < len(HEADER) and HEADER.startswith(data):
        torn = TornTail(0, size, "incomplete header") if size else None
        return LogContents([], [], 0, size, torn)
    newline = data.find(b"\n", 0, 64)
    first = data[: newline + 1] if newline >= 0 else b""
    if first != HEADER:
        if first.startswith(FORMAT_PREFIX):
            found = first[:-1].decode("ascii", "replace")
            raise UnsupportedFormatError(path, found, FORMAT)
        raise LogCorruptError(path, 0, "not a delite log (bad header)")
    scanned = scan_payloads(data, len(HEADER))
    if isinstance(scanned, FrameDamage):
        raise LogCorruptError(path, scanned.offset, scanned.reason)
    offsets, payloads, end, torn = scanned
    with paused():
        records = decode_payloads(payloads, offsets, path=path)
    return LogContents(records, offsets, end, size, torn)


def read_log(path: str) -> LogContents:
    """Read and parse the log at ``path`` (never modifies it).

    Only a regular file is read: a symbolic link, a directory or a FIFO raises ``OSError`` without blocking.
    """
    data, _st = read_regular(os.fspath(path))
    return parse_log(data, path=os.fspath(path))
