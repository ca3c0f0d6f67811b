"""The bytes on disk: the header, the frames and the ``FORMAT`` constant.

A log file is the header line followed by frames, back to back::

    "delite-log/1" LF
    frame := length:u32le | length_crc:u32le | payload_crc:u32le | payload[length]

``length_crc`` is CRC-32 of the four length bytes and ``payload_crc`` CRC-32 of the payload, so a damaged
length is told apart from a short file: a frame whose header verifies but whose payload runs past the end of
the file was cut by a crash (a torn tail), while a header that does not verify is damage. See
``docs/log-format.md`` for the contract.
"""

import struct
import zlib
from typing import Final, NamedTuple

__all__ = [
    "FORMAT",
    "FORMAT_PREFIX",
    "FRAME_HEADER_SIZE",
    "HEADER",
    "MAX_RECORD_SIZE",
    "Frame",
    "ScanResult",
    "TornTail",
    "encode_frame",
    "last_frame_start",
    "scan_frames",
    "scan_payloads",
]

# The format this code writes. Readers accept exactly this format: a log whose header names another
# ``delite-log/N`` is refused with UnsupportedFormatError (an older reader never guesses at a newer layout);
# a newer delite that changes the layout bumps N and keeps reading /1 files.
FORMAT: Final = "delite-log/1"
FORMAT_PREFIX: Final = b"delite-log/"
HEADER: Final = FORMAT.encode() + b"\n"
FRAME_HEADER_SIZE: Final = 12
# A hard cap on one record. A length field above it is damage, never an allocation.
MAX_RECORD_SIZE: Final = 64 * 1024 * 1024

_HEAD = struct.Struct("<III")
_LEN = struct.Struct("<I")
_crc32 = zlib.crc32


class Frame(NamedTuple):
    """One verified frame: where it starts in the file and its payload."""

    offset: int
    payload: bytes


class TornTail(NamedTuple):
    """An incomplete or checksum-failing last frame: the signature of a crash in the middle of an append."""

    offset: int
    length: int
    reason: str


class ScanResult(NamedTuple):
    """What a scan found: the good frames, where they end, and a torn tail if there is one."""

    frames: list[Frame]
    end: int
    torn: TornTail | None


class FrameDamage(NamedTuple):
    """Damage before the tail: the offset of the bad frame and what is wrong with it."""

    offset: int
    reason: str


def encode_frame(payload: bytes) -> bytes:
    """Frame one payload. The caller checks the size limit."""
    length = len(payload)
    return _HEAD.pack(length, _crc32(_LEN.pack(length)), _crc32(payload)) + payload


def last_frame_start(data: bytes, start: int = 0) -> int | None:
    """Where the frame that ends exactly at the end of ``data`` starts (``start`` or later), found from the end.

    Every payload is JSON, in which no byte below 0x20 occurs (the encoder escapes them), and a length field
    below 16 MiB ends in a zero byte. So, scanning back from the end, each zero byte is where a length field may
    end: the first candidate whose length reaches exactly the end of ``data`` and whose length checksum verifies
    is the frame. Its payload checksum is the caller's to verify. None if there is no such frame (a torn tail,
    bytes that are not frames, or a last record of 16 MiB or more).
    """
    size = len(data)
    end = size
    while True:
        zero = data.rfind(b"\x00", start + 3, end)
        if zero < 0:
            return None
        at = zero - 3
        if at + FRAME_HEADER_SIZE <= size:
            length, length_crc, _ = _HEAD.unpack_from(data, at)
            if at + FRAME_HEADER_SIZE + length == size and _crc32(data[at : at + 4]) == length_crc:
                return at
        end = zero


def scan_frames(data: bytes, start: int) -> ScanResult | FrameDamage:
    """Walk the frames of ``data`` from ``start`` and verify every checksum.

    Returns the complete frames and a torn tail (an incomplete last frame, a last frame whose payload fails
    its checksum, or a tail of zero bytes as a power loss may leave), or :class:`FrameDamage` for damage
    anywhere before the tail. Never reads past ``data`` and never allocates from a length field.
    """
    scanned = scan_payloads(data, start)
    if isinstance(scanned, FrameDamage):
        return scanned
    offsets, payloads, end, torn = scanned
    return ScanResult(list(map(Frame, offsets, payloads)), end, torn)


def scan_payloads(data: bytes, start: int) -> tuple[list[int], list[bytes], int, TornTail | None] | FrameDamage:
    """:func:`scan_frames` as parallel lists ``(offsets, payloads, end, torn)``: the reader's fast path."""
    offsets: list[int] = []
    payloads: list[bytes] = []
    add_offset = offsets.append
    add_payload = payloads.append
    unpack = _HEAD.unpack_from
    crc32 = _crc32
    # Lengths repeat, so the checksum of each distinct length field is computed once per scan.
    length_crcs: dict[int, int] = {}
    size = len(data)
    pos = start
    while pos < size:
        if size - pos < FRAME_HEADER_SIZE:
            return offsets, payloads, pos, TornTail(pos, size - pos, "incomplete frame header")
        length, length_crc, payload_crc = unpack(data, pos)
        expected = length_crcs.get(length)
        if expected is None:
            expected = length_crcs[length] = crc32(data[pos : pos + 4])
        if expected != length_crc:
            if not data[pos:].strip(b"\x00"):
                return offsets, payloads, pos, TornTail(pos, size - pos, "zero-filled tail")
            return FrameDamage(pos, "frame header checksum mismatch")
        if length > MAX_RECORD_SIZE:
            return FrameDamage(pos, f"frame length {length} exceeds the limit")
        body = pos + FRAME_HEADER_SIZE
        end = body + length
        if end > size:
            return offsets, payloads, pos, TornTail(pos, size - pos, "incomplete frame payload")
        payload = data[body:end]
        if crc32(payload) != payload_crc:
            if end == size:
                return offsets, payloads, pos, TornTail(pos, size - pos, "last frame fails its checksum")
            return FrameDamage(pos, "payload checksum mismatch")
        add_offset(pos)
        add_payload(payload)
        pos = end
    return offsets, payloads, pos, None
