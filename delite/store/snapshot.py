"""A derived snapshot of a finished execution, so resuming it costs a checksum rather than a fold.

The file ``snapshots/<id>.snap`` under the data directory holds the :class:`~delite.state.outcome.Outcome` of
an execution together with the size and the CRC-32 of the log it was computed from::

    "delite-snapshot/1 " crc32(body) as 8 hex digits LF
    body := JSON {"log_size": int, "log_crc": int, "outcome": {...}}

It is never trusted over the log. :func:`load` returns the outcome only when the snapshot's own checksum holds
and the log, byte for byte, is the one the snapshot describes (same size, same CRC-32 over every byte, header
included); anything else (no file, another snapshot format, a stale, torn or damaged snapshot, a log that
grew or was damaged since) is a miss, and the caller reads, verifies and folds the log as usual. A damaged
record can therefore never hide behind a snapshot: it changes the log's checksum.

Snapshots are written without ``fsync`` (tmp file + rename): losing one costs only speed. Deleting the
``snapshots`` directory is always safe. A future snapshot format gets a new version in its first line; an
unknown version is a miss and is rewritten on the next finished run, so there is nothing to migrate.
"""

from __future__ import annotations

import contextlib
import os
import zlib
from typing import Final

import msgspec

from delite.state.outcome import Outcome

__all__ = ["MIN_LOG_SIZE", "SNAPSHOT_FORMAT", "load", "save"]

SNAPSHOT_FORMAT: Final = "delite-snapshot/1"
_PREFIX: Final = SNAPSHOT_FORMAT.encode() + b" "
# A snapshot holds one outcome; anything larger than this is not one of ours (or is damaged).
_MAX_SIZE: Final = 16 * 1024 * 1024
# Below this size a log is read, verified and folded (about 1.5 ms for 64 KiB) faster than the snapshot
# file is created on most file systems, so small executions get none.
MIN_LOG_SIZE = 64 * 1024


class _Body(msgspec.Struct, frozen=True, kw_only=True):
    log_size: int
    log_crc: int
    outcome: Outcome


_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(_Body)


def load(path: str, log_data: bytes) -> Outcome | None:
    """The outcome stored at ``path`` if it describes exactly ``log_data`` (the whole log file), else None."""
    try:
        with open(path, "rb") as f:
            raw = f.read(_MAX_SIZE + 1)
    except OSError:
        return None
    newline = raw.find(b"\n")
    if newline < 0 or len(raw) > _MAX_SIZE or not raw.startswith(_PREFIX):
        return None
    body = raw[newline + 1 :]
    try:
        crc = int(raw[len(_PREFIX) : newline], 16)
    except ValueError:
        return None
    if zlib.crc32(body) != crc:
        return None
    try:
        snap = _decoder.decode(body)
    except msgspec.DecodeError:
        return None
    if snap.log_size != len(log_data) or zlib.crc32(log_data) != snap.log_crc:
        return None
    return snap.outcome


def save(path: str, log_path: str, log_size: int, outcome: Outcome) -> bool:
    """Write a snapshot of ``outcome`` for the first ``log_size`` bytes of the log; False if it could not.

    The log is read back and checksummed here, so the snapshot describes the bytes on disk. If the log is no
    longer ``log_size`` bytes long, or smaller than :data:`MIN_LOG_SIZE`, nothing is written. Failures are
    not errors: a missing snapshot only makes the next resume slower.
    """
    if log_size < MIN_LOG_SIZE:
        return False
    tmp = f"{path}.{os.getpid()}.tmp"
    try:
        with open(log_path, "rb") as f:
            data = f.read(log_size + 1)
        if len(data) != log_size:
            return False
        body = _encoder.encode(_Body(log_size=log_size, log_crc=zlib.crc32(data), outcome=outcome))
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(tmp, "wb") as f:
            f.write(_PREFIX + f"{zlib.crc32(body):08x}\n".encode() + body)
        os.replace(tmp, path)
    except OSError:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        return False
    return True
