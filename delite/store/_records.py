"""What the record-level store reads: records with their sequence numbers.

Sequence numbers count an execution's complete records from 1 (the ``execution-started`` record); 0 is
"before the first record", the head of an empty log. They are the same in every store, so a reader can
page with ``after`` and a writer can fence its append with ``expected`` (see :class:`delite.store.LogStore`).
"""

import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

from delite.errors import LogCorruptError, RecordTooLargeError, UsageError
from delite.log._framing import HEADER, MAX_RECORD_SIZE, FrameDamage, TornTail, encode_frame, scan_payloads
from delite.log._reader import LogContents, parse_log
from delite.log.records import AnyRecord

__all__ = [
    "FramedRange",
    "RecordRange",
    "SequencedRecord",
    "StoredPayload",
    "check_range",
    "count_records",
    "frame_payloads",
    "framed_range",
    "stored_payloads",
]


class SequencedRecord(NamedTuple):
    """One record and its sequence number in its execution's log."""

    seq: int
    record: AnyRecord


class StoredPayload(NamedTuple):
    """One record as every store keeps it: its sequence number, its payload bytes and their CRC-32.

    The payload is the record's JSON exactly as the file store frames it; ``crc`` is ``zlib.crc32(payload)``,
    the frame's payload checksum. Copies between stores move these, so the bytes and checksums are identical
    in every store (see :meth:`delite.store.LogStore.read_payloads`).
    """

    seq: int
    payload: bytes
    crc: int


@dataclass(frozen=True, slots=True)
class RecordRange:
    """Consecutive records of one execution, as one read returned them.

    ``records[i]`` has sequence number ``after + i + 1``; ``head`` is the sequence of the log's last complete
    record when it was read (so ``last == head`` means the read reached the end).
    """

    execution_id: str
    records: list[AnyRecord]
    after: int
    head: int

    @property
    def last(self) -> int:
        """The sequence of the last record returned (``after`` when none was)."""
        return self.after + len(self.records)

    @property
    def entries(self) -> list[SequencedRecord]:
        """The records with their sequence numbers."""
        return [SequencedRecord(self.after + i, r) for i, r in enumerate(self.records, start=1)]


@dataclass(frozen=True, slots=True)
class FramedRange(RecordRange):
    """A range read from a framed log (the file store's, the memory store's), with what only bytes have.

    ``offsets[i]`` is the byte offset of ``records[i]``; ``end`` is where the complete records of the log end,
    ``size`` how many bytes it held, and ``torn`` the incomplete tail a crash left, if any. None of it is part
    of the store interface: a store that keeps rows has no offsets and no torn tails.
    """

    offsets: list[int]
    end: int
    size: int
    torn: TornTail | None


def check_range(after: int | None, limit: int | None) -> int:
    """Check a ranged read's bounds (a :class:`~delite.errors.UsageError` if bad); returns ``after`` as an int."""
    for name, value in (("after", after), ("limit", limit)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
            raise UsageError(f"{name} must be a whole number, 0 or more, or None; not {value!r}")
    return after or 0


def framed_range(
    execution_id: str, contents: LogContents, *, after: int | None = None, limit: int | None = None
) -> FramedRange:
    """The records of a parsed log after sequence ``after``, at most ``limit`` of them."""
    start = check_range(after, limit)
    stop = None if limit is None else start + limit
    return FramedRange(
        execution_id=execution_id,
        records=contents.records[start:stop],
        after=start,
        head=len(contents.records),
        offsets=contents.offsets[start:stop],
        end=contents.end,
        size=contents.size,
        torn=contents.torn,
    )


def count_records(data: bytes, *, path: str = "") -> int:
    """How many complete records the bytes of a whole log hold, checked but not decoded."""
    if len(data) <= len(HEADER):
        return 0
    scanned = scan_payloads(data, len(HEADER))
    if isinstance(scanned, FrameDamage):
        return len(parse_log(data, path=path).records)  # raises the damage as reading would
    return len(scanned[0])


def stored_payloads(data: bytes, *, path: str = "") -> tuple[list[AnyRecord], list[StoredPayload]]:
    """The complete records of a whole log's bytes, and the exact payload bytes of their frames with their CRC-32.

    Checked as a read checks (the header, damage before the tail, every record decoded); a torn tail is left out.
    """
    contents = parse_log(data, path=path)
    if not contents.records:
        return [], []
    scanned = scan_payloads(data, len(HEADER))
    if isinstance(scanned, FrameDamage):  # parse_log raised it already: the bytes are the same
        raise LogCorruptError(path, scanned.offset, scanned.reason)
    return contents.records, [StoredPayload(seq, p, zlib.crc32(p)) for seq, p in enumerate(scanned[1], start=1)]


def frame_payloads(payloads: Sequence[StoredPayload]) -> bytes:
    """The frames of stored payloads (their exact bytes), as one byte string; the caller verified them."""
    for p in payloads:
        if len(p.payload) > MAX_RECORD_SIZE:
            raise RecordTooLargeError(len(p.payload), MAX_RECORD_SIZE)
    return b"".join(encode_frame(bytes(p.payload)) for p in payloads)
