"""A finished log answered from the tally its terminal record carries, without decoding or folding the rest.

When a run finishes, the engine writes into its terminal record (a completion or a cancellation) a
:class:`~delite.log.records.Tally`: the counts and totals it held, and the SHA-256 of the log as it is with
that record written (the hash itself left out). A claim of a finished log that has no snapshot (lost in a
crash of the machine, deleted, or the log copied without it) reads the outcome from there when all of this
holds, and reads and folds the log as always otherwise:

- the file begins with this format's header, and its last bytes are one whole frame (found from the end, see
  :func:`~delite.log._framing.last_frame_start`) whose checksums verify and whose record is a completion or a
  cancellation with a tally of this version (:data:`~delite.log.records.TALLY_VERSION`) that has a hash;
- the tally's hash equals the SHA-256 of every byte before that frame followed by the frame of the terminal
  record with the hash left out (compared in constant time): no byte of the log, the terminal record and its
  counts included, differs from what the engine wrote, so every frame verifies and the log folds to the
  tally's counts;
- the log's first record (its checksum verified) is the start of this execution.

The answer, output and input come from the log's own first and last records, not from derived data. What
stays derived (the counts and totals) is covered by the hash, as in a snapshot (:mod:`._snapshot`); unlike a
snapshot, it lives in the log and cannot be lost or left behind by a copy.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Final

import msgspec

from delite.errors import DeliteError
from delite.log import _os
from delite.log._codec import encode_record
from delite.log._digest import compare_digest, sha256
from delite.log._framing import HEADER, encode_frame, last_frame_start
from delite.log.records import TALLY_VERSION, ExecutionCancelled, ExecutionCompleted, ExecutionStarted
from delite.state._outcome import Outcome, tallied_outcome
from delite.store._snapshot import frame_record, read_ends

if TYPE_CHECKING:
    from delite.store._views import ExecutionSummary

__all__ = ["MIN_LOG_SIZE", "TAIL", "answer", "ends_tallied", "summary", "tells", "told", "verified"]

MIN_LOG_SIZE: Final = 64 * 1024
"""Smaller logs are read and folded as usual (about a millisecond), as they get no snapshot either."""
TAIL: Final = 64 * 1024
"""How many of a log's last bytes are searched for its terminal frame (a larger final answer: read as usual)."""


def _terminal(data: bytes, start: int) -> tuple[int, ExecutionCompleted | ExecutionCancelled] | None:
    """The last frame of ``data`` (searched from ``start``) if it holds a terminal record with a tally hash."""
    at = last_frame_start(data, start)
    if at is None:
        return None
    found = frame_record(data, at)
    if found is None:
        return None
    record = found[0]
    if not isinstance(record, ExecutionCompleted | ExecutionCancelled):
        return None
    tally = record.tally
    if tally is None or tally.log_sha256 is None or tally.version != TALLY_VERSION:
        return None
    return at, record


def _digest(data: bytes, at: int, last: ExecutionCompleted | ExecutionCancelled) -> bytes:
    """The hash a tally holds: the log's bytes up to ``at``, then the terminal record's frame without the hash."""
    digest = sha256(memoryview(data)[:at])
    tally = last.tally
    if tally is not None:
        unhashed = msgspec.structs.replace(last, tally=msgspec.structs.replace(tally, log_sha256=None))
        try:
            digest.update(encode_frame(encode_record(unhashed)))
        except DeliteError:  # a record this version would not write: no tally of it can be believed
            return b""
    return digest.hexdigest().encode()


def ends_tallied(fd: int, size: int) -> bool:
    """Whether the log of ``size`` bytes open at ``fd`` ends with a terminal record carrying a tally hash.

    Reads only the last :data:`TAIL` bytes: a claim asks before it reads a log whole (only a finished log is).
    """
    start = max(len(HEADER), size - TAIL)
    try:
        tail = os.pread(fd, size - start, start)
    except OSError:
        return False
    return len(tail) == size - start and _terminal(tail, 0) is not None


def tells(log_path: str, size: int, last_offset: int, outcome: Outcome) -> bool:
    """Whether a claim of this finished log will be answered by its tally, with exactly ``outcome``.

    Asked before a snapshot is saved (:meth:`~delite.store._file.FileExecutionLog.save_outcome`): when the log
    answers for itself, a snapshot would only repeat it, at the cost of a file written at the end of every
    run, so none is. True when the log at ``log_path`` is ``size`` bytes, at least :data:`MIN_LOG_SIZE`, its
    last frame starts at ``last_offset`` within its last :data:`TAIL` bytes (where a claim looks) and holds a
    terminal record with a tally of this version that has a hash, and that record and the first one tell
    ``outcome`` (:func:`~delite.state._outcome.tallied_outcome`). The hash is left to the claim (the writer
    computed it from the bytes it wrote): one that fails makes the claim fold the log, as a lost snapshot
    does. A few ``pread`` calls, however long the log.
    """
    if size < MIN_LOG_SIZE or not max(len(HEADER), size - TAIL) <= last_offset < size:
        return False
    try:
        fd = _os.open_regular(log_path)
    except OSError:
        return False
    try:
        ends = read_ends(fd, size, last_offset)
    except OSError:
        return False
    finally:
        os.close(fd)
    if ends is None:
        return False
    head, tail = ends
    found = _terminal(tail, 0)
    first = frame_record(head, len(HEADER))
    if found is None or found[0] != 0 or first is None:
        return False
    return tallied_outcome(first[0], found[1]) == outcome


def verified(
    data: bytes, execution_id: str
) -> tuple[int, ExecutionStarted, ExecutionCompleted | ExecutionCancelled] | None:
    """Where the terminal record of the log ``data`` starts, its first record and the terminal one, once checked.

    None unless all of the above holds: then the tally of the terminal record can be believed.
    """
    if not data.startswith(HEADER):
        return None
    found = _terminal(data, max(len(HEADER), len(data) - TAIL))
    if found is None:
        return None
    at, last = found
    expected = last.tally.log_sha256 if last.tally is not None else None
    if expected is None:
        return None
    if not compare_digest(_digest(data, at, last), expected.encode("utf-8", "surrogatepass")):
        return None
    first = frame_record(data, len(HEADER))
    if first is None or not isinstance(first[0], ExecutionStarted) or first[0].execution_id != execution_id:
        return None
    return at, first[0], last


def told(data: bytes, execution_id: str) -> tuple[int, Outcome] | None:
    """Where the terminal record of the log ``data`` starts and the outcome its tally tells, or None (see above)."""
    found = verified(data, execution_id)
    if found is None:
        return None
    at, first, last = found
    outcome = tallied_outcome(first, last)
    return None if outcome is None else (at, outcome)


def summary(data: bytes, execution_id: str) -> ExecutionSummary | None:
    """The listing summary of the finished log ``data`` from its tally, or None (read and fold it instead)."""
    from delite.store._derive import summary_of_tally  # noqa: PLC0415 - listings only (a claim needs none of it)

    found = verified(data, execution_id)
    if found is None:
        return None
    _at, first, last = found
    return summary_of_tally(execution_id, first, last, log_bytes=len(data))


def answer(data: bytes, execution_id: str) -> Outcome | None:
    """The outcome :func:`told` gives for a log of at least :data:`MIN_LOG_SIZE` bytes, else None."""
    if len(data) < MIN_LOG_SIZE:
        return None
    found = told(data, execution_id)
    return None if found is None else found[1]
