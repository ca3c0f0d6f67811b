"""Read a log file: check the header, verify every frame, decode the records, report a torn tail."""

import os
from collections.abc import Callable
from typing import NamedTuple

import msgspec

from delite._gc import paused
from delite.errors import LogCorruptError, UnsupportedFormatError
from delite.log._codec import _decoder, decode_payloads
from delite.log._framing import (
    FORMAT,
    FORMAT_PREFIX,
    FRAME_HEADER_SIZE,
    HEADER,
    MAX_RECORD_SIZE,
    FrameDamage,
    TornTail,
    scan_payloads,
)
from delite.log._os import read_regular
from delite.log.records import AnyRecord

_decode = _decoder.decode

__all__ = ["CHUNK_SIZE", "LogContents", "parse_log", "parse_stream", "read_log"]

CHUNK_SIZE = 1 << 20
"""How many bytes :func:`parse_stream` reads at a time (a frame larger than this is read whole)."""


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
    _check_header(data, path)
    scanned = scan_payloads(data, len(HEADER))
    if isinstance(scanned, FrameDamage):
        raise LogCorruptError(path, scanned.offset, scanned.reason)
    offsets, payloads, end, torn = scanned
    with paused():
        records = decode_payloads(payloads, offsets, path=path)
    return LogContents(records, offsets, end, size, torn)


# The header line is looked for in a log's first bytes, this many.
_HEADER_WINDOW = 64


def _check_header(data: bytes, path: str) -> None:
    """Raise unless ``data`` (a log's first :data:`_HEADER_WINDOW` bytes or more) starts with the header."""
    newline = data.find(b"\n", 0, _HEADER_WINDOW)
    first = data[: newline + 1] if newline >= 0 else b""
    if first != HEADER:
        if first.startswith(FORMAT_PREFIX):
            found = first[:-1].decode("ascii", "replace")
            raise UnsupportedFormatError(path, found, FORMAT)
        raise LogCorruptError(path, 0, "not a delite log (bad header)")


def parse_stream(read: Callable[[int], bytes], *, path: str = "", start: int = 0) -> LogContents:
    """:func:`parse_log` over a file read in chunks (``read(n)`` returns up to ``n`` bytes, ``b""`` at the end).

    The same result and the same errors as :func:`parse_log` on the whole file, without holding the whole file:
    every frame's checksums are verified as it is reached, each chunk's records are decoded and its bytes let
    go. A frame cut by a chunk boundary is completed from the next read before it is judged, so a torn tail is
    still only ever the end of the file, and damage anywhere is still reported before a record this version
    cannot read (the first such record is remembered while the walk goes on to the end).

    With ``start`` (where a frame starts, past the header), ``read`` goes on from that offset of the file: only
    the frames from there are read, and the offsets, ``end`` and ``size`` are still the file's.
    """
    buf = b""
    if start:
        buf = read(CHUNK_SIZE)
        pos = 0
    else:
        while len(buf) < _HEADER_WINDOW:  # enough bytes to judge the header (or the whole file)
            chunk = read(CHUNK_SIZE)
            if not chunk:
                return parse_log(buf, path=path)  # the whole file is in hand: exactly the one-piece parse
            buf += chunk
        _check_header(buf, path)
        pos = len(HEADER)  # where the walk goes on in ``buf``
    records: list[AnyRecord] = []
    offsets: list[int] = []
    undecodable: tuple[list[bytes], list[int]] | None = None
    base = start  # where ``buf`` starts in the file
    eof = False
    with paused():
        while True:
            scanned = scan_payloads(buf, pos)
            if isinstance(scanned, FrameDamage):
                raise LogCorruptError(path, base + scanned.offset, scanned.reason)
            found, payloads, end, torn = scanned
            if undecodable is None and payloads:
                try:
                    records += map(_decode, payloads)
                except msgspec.DecodeError:
                    undecodable = payloads, [base + o for o in found]
            offsets += [base + o for o in found]
            if eof:
                break
            if torn is None:
                keep = b""
                need = CHUNK_SIZE
            else:  # an unfinished frame at the end of the chunk: read on before judging it
                keep = buf[torn.offset :]
                need = max(CHUNK_SIZE, _frame_size(keep) - len(keep))
            chunk = read(need)
            if not chunk:
                eof = True
                if torn is None:
                    break
            base += len(buf) - len(keep)
            buf = keep + chunk
            pos = 0
    if undecodable is not None:
        # The walk found no damage: the record that cannot be read is the error, named by its offset.
        decode_payloads(*undecodable, path=path)
    size = base + len(buf)
    tail = None if torn is None else TornTail(base + torn.offset, torn.length, torn.reason)
    return LogContents(records, offsets, base + end, size, tail)


def _frame_size(data: bytes) -> int:
    """The whole size of the frame that ``data`` starts (its header unchecked), or a header's if it is too short."""
    if len(data) < FRAME_HEADER_SIZE:
        return FRAME_HEADER_SIZE
    return FRAME_HEADER_SIZE + min(int.from_bytes(data[:4], "little"), MAX_RECORD_SIZE)


def read_log(path: str) -> LogContents:
    """Read and parse the log at ``path`` (never modifies it).

    Only a regular file is read: a symbolic link, a directory or a FIFO raises ``OSError`` without blocking.
    """
    data, _st = read_regular(os.fspath(path))
    return parse_log(data, path=os.fspath(path))
