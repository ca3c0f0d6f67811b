"""A derived snapshot of a finished execution, so resuming it costs a hash rather than a fold.

The file ``snapshots/<id>.snap`` under the data directory holds the :class:`~delite.state._outcome.Outcome` of
an execution together with the size and the SHA-256 hash of the exact log bytes it was computed from::

    "delite-snapshot/2 " crc32(body) as 8 hex digits LF
    body := JSON {"log_size": int, "log_sha256": hex, "last_offset": int, "outcome": {...}}

It is never trusted over the log. :func:`load` returns the outcome only when all of this holds, and is a
miss otherwise (the caller then reads, verifies and folds the log as usual):

- the snapshot is well formed (its own CRC-32 only catches accidents: it is not what binds it);
- the log is, byte for byte, the one the snapshot describes: same size and same SHA-256 over every byte,
  header included. A strong hash, unlike a CRC, cannot be matched by a different log, so no change to the log
  (a damaged or an edited record) can hide behind a snapshot;
- what a reader is answered with is in the log itself: the first record names this execution and its
  input, and the last record (at ``last_offset``, its checksum verified) is the terminal record whose answer,
  output or cancellation the outcome reports. So whoever can write a snapshot file but not the log cannot
  make ``run()`` on a finished execution return an answer the log does not hold.

What stays derived (usage totals, step and record counts) is covered by the hash binding only.

A file store writes one only for a finished log that cannot answer for itself: one whose terminal record's
tally tells the outcome (:func:`delite.store._tally.tells`) gets none, since a claim answers from the tally at
about the same cost.

Snapshots are written ``0600`` without ``fsync`` (tmp file + rename): losing one costs only speed.
Deleting the ``snapshots`` directory is always safe. A snapshot format gets a new version in its first
line; an unknown version (``delite-snapshot/1``, bound by a CRC, included) is a miss and is rewritten on
the next finished run, so there is nothing to migrate. ``delite health`` reports snapshots that do not
match their log; ``health --repair`` deletes them.
"""

import os
import struct
import zlib
from typing import TYPE_CHECKING, Any, Final

import msgspec

from delite.log import _digest, _os
from delite.log._codec import decode_record
from delite.log._framing import FRAME_HEADER_SIZE, HEADER, MAX_RECORD_SIZE
from delite.log.records import ExecutionCancelled, ExecutionCompleted, ExecutionStarted
from delite.state._model import Status
from delite.state._outcome import Outcome

if TYPE_CHECKING:
    from hashlib import _Hash

__all__ = [
    "MIN_LOG_SIZE",
    "SNAPSHOT_FORMAT",
    "frame_record",
    "framed",
    "load",
    "log_digest",
    "read_ends",
    "save",
    "unframed",
    "verify",
]

SNAPSHOT_FORMAT: Final = "delite-snapshot/2"
_PREFIX: Final = SNAPSHOT_FORMAT.encode() + b" "
# A snapshot holds one outcome; anything larger than this is not one of ours (or is damaged).
_MAX_SIZE: Final = 16 * 1024 * 1024
# Below this size a log is read, verified and folded (about 1.5 ms for 64 KiB) faster than the snapshot
# file is created on most file systems, so small executions get none.
MIN_LOG_SIZE = 64 * 1024
_HEAD = struct.Struct("<III")
# A log is hashed for a snapshot this many bytes at a time.
_CHUNK = 1 << 20


class _Body(msgspec.Struct, frozen=True, kw_only=True):
    log_size: int
    log_sha256: str
    last_offset: int
    outcome: Outcome


_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(_Body)


def framed(prefix: bytes, body: bytes) -> bytes:
    """A derived file's bytes: its format line ``prefix`` + the body's CRC-32 as 8 hex digits + LF, then the body."""
    return prefix + f"{zlib.crc32(body):08x}\n".encode() + body


def unframed(raw: bytes, prefix: bytes) -> memoryview | str:
    """The body of a derived file written by :func:`framed`, or why not (``"other-format"``, ``"damaged"``).

    The CRC-32 only catches accidents; what binds a derived file to its log is the SHA-256 in its body.
    """
    first_line = len(prefix) + 9  # the prefix, 8 hex digits and LF
    if len(raw) < first_line or not raw.startswith(prefix) or raw[first_line - 1 : first_line] != b"\n":
        return "other-format"
    body = memoryview(raw)[first_line:]
    try:
        crc = int(raw[len(prefix) : first_line - 1], 16)
    except ValueError:
        return "damaged"
    return body if zlib.crc32(body) == crc else "damaged"


def log_digest(data: bytes) -> str:
    """The SHA-256 of a log's bytes, in hex: what binds a snapshot to the log it was made from."""
    return _digest.sha256(data).hexdigest()


def _record_at(data: bytes, offset: int) -> tuple[Any, int] | None:
    """The record whose frame starts at ``offset`` (every checksum verified) and where it ends, or None."""
    if offset < len(HEADER):
        return None
    return frame_record(data, offset)


def frame_record(data: bytes, offset: int) -> tuple[Any, int] | None:
    """:func:`_record_at` for bytes that hold only part of a log (``offset`` is where the frame starts in them)."""
    if offset + FRAME_HEADER_SIZE > len(data):
        return None
    length, length_crc, payload_crc = _HEAD.unpack_from(data, offset)
    end = offset + FRAME_HEADER_SIZE + length
    if zlib.crc32(data[offset : offset + 4]) != length_crc or end > len(data):
        return None
    payload = data[offset + FRAME_HEADER_SIZE : end]
    if zlib.crc32(payload) != payload_crc:
        return None
    try:
        return decode_record(payload), end
    except Exception:  # noqa: BLE001 - anything undecodable is a miss, never an error
        return None


def _told_by_log(data: bytes, last_offset: int, outcome: Outcome, execution_id: str | None) -> bool:
    """Whether the log's own first and last records say what ``outcome`` answers with."""
    first = _record_at(data, len(HEADER))
    last = _record_at(data, last_offset)
    if first is None or last is None or last[1] != len(data):
        return False
    return _told(first[0], last[0], outcome, execution_id)


def _told(started: Any, terminal: Any, outcome: Outcome, execution_id: str | None) -> bool:
    """Whether a log's first record ``started`` and last record ``terminal`` say what ``outcome`` answers with."""
    if execution_id is not None and outcome.execution_id != execution_id:
        return False
    if not isinstance(started, ExecutionStarted):
        return False
    if started.execution_id != outcome.execution_id or started.input != outcome.input:
        return False
    if isinstance(terminal, ExecutionCompleted):
        same_output = msgspec.json.encode(terminal.output) == msgspec.json.encode(outcome.output)
        return outcome.status is Status.COMPLETED and terminal.answer == outcome.answer and same_output
    if isinstance(terminal, ExecutionCancelled):
        return outcome.status is Status.CANCELLED and outcome.answer is None and outcome.output is None
    return False


def _digest_told(
    log_path: str, log_size: int, last_offset: int, outcome: Outcome, running: "_Hash | None" = None
) -> str | None:
    """The SHA-256 of the log at ``log_path`` if it is ``log_size`` bytes and its records tell ``outcome``.

    What :func:`_told_by_log` and :func:`log_digest` find in the whole file, read a chunk at a time: the
    bytes hashed are the bytes the first and the last record are decoded from, and the file is never all
    held at once (a snapshot is saved at the end of a run, when its state is in memory already).

    ``running``: the SHA-256 of the first ``log_size`` bytes as the writer that appended them kept it (see
    :attr:`delite.log._writer.LogWriter.digest`). The file is then not hashed again: only its size, its first
    frame and its last one are read (a log of 10,000 steps is 5 MB, 4 ms to read and hash).
    """
    if not len(HEADER) <= last_offset < log_size or log_size - last_offset > FRAME_HEADER_SIZE + MAX_RECORD_SIZE:
        return None
    digest = _digest.sha256()
    head = bytearray()  # the header and the first frame, once its length is known
    head_size = len(HEADER) + FRAME_HEADER_SIZE
    tail = bytearray()  # the last frame: from last_offset to the end
    fd = _os.open_regular(log_path)
    try:
        if running is not None:
            return _told_at(fd, log_size, last_offset, outcome, running)
        pos = 0
        while pos < log_size:
            chunk = os.pread(fd, min(_CHUNK, log_size - pos), pos)
            if not chunk:
                return None  # shorter than log_size
            digest.update(chunk)
            if len(head) < head_size:  # ``head`` holds the file's bytes up to len(head); ``chunk`` starts at pos
                head += chunk[len(head) - pos : head_size - pos]
                if len(head) == head_size == len(HEADER) + FRAME_HEADER_SIZE:  # the first frame's length, read
                    length = int.from_bytes(head[len(HEADER) : len(HEADER) + 4], "little")
                    head_size += min(length, MAX_RECORD_SIZE)
                    head += chunk[len(head) - pos : head_size - pos]
            end = pos + len(chunk)
            if end > last_offset:
                tail += chunk[max(last_offset - pos, 0) :]
            pos = end
        if os.pread(fd, 1, log_size):
            return None  # longer than log_size
    finally:
        os.close(fd)
    return digest.hexdigest() if _frames_tell(bytes(head), bytes(tail), outcome) else None


def _told_at(fd: int, log_size: int, last_offset: int, outcome: Outcome, running: "_Hash") -> str | None:
    """:func:`_digest_told` with the hash known: the file's size, its first and last frames are checked."""
    ends = read_ends(fd, log_size, last_offset)
    if ends is None:
        return None
    return running.copy().hexdigest() if _frames_tell(*ends, outcome) else None


def read_ends(fd: int, log_size: int, last_offset: int) -> tuple[bytes, bytes] | None:
    """The log's header and first frame, and its bytes from ``last_offset`` on; None unless it is ``log_size`` long.

    Read from the log open at ``fd`` (a few ``pread`` calls, however long the log); the frames are not checked.
    """
    if os.fstat(fd).st_size != log_size:
        return None
    start = len(HEADER) + FRAME_HEADER_SIZE
    head = os.pread(fd, start, 0)
    if len(head) == start:  # then the first frame, as long as it says it is
        length = min(int.from_bytes(head[len(HEADER) : len(HEADER) + 4], "little"), MAX_RECORD_SIZE)
        head += os.pread(fd, min(length, log_size - start), start)
    return head, os.pread(fd, log_size - last_offset, last_offset)


def _frames_tell(head: bytes, tail: bytes, outcome: Outcome) -> bool:
    """Whether a log's header and first frame (``head``) and its last frame (``tail``) tell ``outcome``."""
    first = _record_at(head, len(HEADER))
    last = frame_record(tail, 0)
    return first is not None and last is not None and last[1] == len(tail) and _told(first[0], last[0], outcome, None)


def verify(path: str, log_data: bytes, *, execution_id: str | None = None) -> tuple[Outcome | None, str]:
    """``(outcome, "")`` if the snapshot at ``path`` describes exactly ``log_data``, else ``(None, why)``.

    ``why`` is ``"missing"``, ``"unreadable"``, ``"other-format"``, ``"damaged"``, ``"stale"`` (not the log's
    bytes: another log, or a log that changed) or ``"mismatch"`` (bound to the log's bytes, yet it disagrees
    with the log's own first or last record: only tampering or a bug makes one).
    """
    try:
        raw, _st = _os.read_regular(path)
    except FileNotFoundError:
        return None, "missing"
    except OSError:
        return None, "unreadable"
    if len(raw) > _MAX_SIZE:
        return None, "other-format"
    body = unframed(raw, _PREFIX)
    if isinstance(body, str):
        return None, body
    try:
        snap = _decoder.decode(body)
    except msgspec.DecodeError:
        return None, "damaged"
    if snap.log_size != len(log_data) or not _digest.compare_digest(log_digest(log_data), snap.log_sha256):
        return None, "stale"
    if not _told_by_log(log_data, snap.last_offset, snap.outcome, execution_id):
        return None, "mismatch"
    return snap.outcome, ""


def load(path: str, log_data: bytes, *, execution_id: str | None = None) -> Outcome | None:
    """The outcome stored at ``path`` if it describes exactly ``log_data`` (the whole log file), else None.

    ``execution_id``, when given, must be the execution the snapshot and the log name.
    """
    return verify(path, log_data, execution_id=execution_id)[0]


def save(
    path: str,
    log_path: str,
    log_size: int,
    outcome: Outcome,
    *,
    last_offset: int | None = None,
    running: "_Hash | None" = None,
) -> bool:
    """Write a snapshot of ``outcome`` for the first ``log_size`` bytes of the log; False if it could not.

    ``last_offset`` is where the log's last (terminal) record starts; without it nothing is written. The log
    is read back and hashed here, so the snapshot describes the bytes on disk, unless ``running`` is the hash
    of exactly those bytes that the writer kept as it appended them (its first and last records are still
    read back and checked). If the log is no longer
    ``log_size`` bytes long, or smaller than :data:`MIN_LOG_SIZE`, nothing is written. Failures are not
    errors: a missing snapshot only makes the next resume slower. The file is created ``0600``.
    """
    if log_size < MIN_LOG_SIZE or last_offset is None:
        return False
    try:
        digest = _digest_told(log_path, log_size, last_offset, outcome, running)
        if digest is None:
            return False
        body = _encoder.encode(_Body(log_size=log_size, log_sha256=digest, last_offset=last_offset, outcome=outcome))
        _os.make_private_dir(os.path.dirname(path))
        _os.replace_private(path, framed(_PREFIX, body))
    except OSError:
        return False
    return True
