"""A derived fold checkpoint of an unfinished execution, so a claim folds only the log's tail.

The file ``checkpoints/<id>.ckpt`` under the data directory holds the
:class:`~delite.state._model.ExecutionState` that folding the first ``log_size`` bytes of the log gives,
together with the SHA-256 of exactly those bytes::

    "delite-checkpoint/2 " crc32(body) as 8 hex digits " " len(body) LF
    body := JSON {"execution_id": str, "log_size": int, "log_sha256": hex, "state": ExecutionState,
                  "history": {"steps", "calls_count", "models", "turns_size", "calls_size", "crc32"} | null}
    then the history's turns (turns_size bytes, a JSON array) and calls (calls_size bytes, a JSON object)

``state`` holds only the latest model turn and its tool calls; every earlier turn and call is in the history
(:class:`~delite.state._model.History`), after the body, outside its CRC: a claim neither reads it through a
JSON parser nor checksums it. The state it returns checks the history's own CRC-32 and decodes it the first
time its ``turns`` or ``calls`` are read whole, and continuing the execution never does (it reads the latest
turn, the counts and the conversation). So a claim decodes the conversation, not the whole history.

The body is JSON, encoded by the same encoder as the log's records: every value in the state reads back exactly
as it reads back from the record it came from (a NaN as null, an integer key as text), so a state decoded from
a checkpoint is the state folding the log gives, not merely the state the writer held in memory. (msgpack
decoded about 10% faster, but keeps what JSON does not: NaN, integer keys.)

It is written while a run goes (by the claim that appends, from the state the engine keeps, see
:meth:`delite.store._file.FileExecutionLog.offer_state`), each time the log has grown to :data:`GROWTH` times
the size the last one covered and at least :data:`MIN_LOG_SIZE` bytes, so the bytes written for checkpoints
stay proportional to the log. The writer keeps a running SHA-256 of what it appended, so it never reads the
log back. Written ``0600`` without ``fsync`` (tmp file + rename): losing one costs only speed.

It is never trusted over the log. :func:`load` returns the state only when all of this holds, and is a miss
otherwise (the caller then reads, verifies and folds the whole log as usual):

- the file is well formed: this format, its own CRC-32 over the body (accidents), a body that decodes;
- it names the execution being claimed, and the state it holds is not finished (a finished log has a
  snapshot instead) and names it too;
- the log is at least ``log_size`` bytes and its first ``log_size`` bytes hash, streamed a chunk at a time,
  to ``log_sha256``: a strong hash, so no change to those bytes (a damaged or edited record, another log)
  can hide behind a checkpoint;
- the log's first record, read from the hashed bytes with its checksum verified, names the execution.

The caller then verifies, decodes and folds every frame after ``log_size`` onto the state, and treats any
failure of that fold as a miss too. What the hash binding cannot prove is that the state in the file is the
fold of those bytes: that holds because only delite writes it (the data directory is ``0700``), as for the
derived usage totals of a snapshot. Deleting the ``checkpoints`` directory is always safe. A new format gets a
new version in the first line; an unknown version is a miss, rewritten as the run goes on.

A sealed store (:mod:`delite.store._sealed`) never gets one: its claims open every record anyway, and a
checkpoint would hold its content in plain text.
"""

from __future__ import annotations

import copy
import hashlib
import hmac
import os
import zlib
from typing import TYPE_CHECKING, Final

import msgspec

from delite._gc import settled
from delite.errors import LogCorruptError
from delite.log import _os
from delite.log._framing import HEADER
from delite.log.records import ExecutionStarted, ModelResponded
from delite.state._model import CallState, ExecutionState, History
from delite.store._snapshot import frame_line, frame_record, unframed_rest

if TYPE_CHECKING:
    from hashlib import _Hash

__all__ = [
    "CHECKPOINT_FORMAT",
    "GROWTH",
    "MIN_LOG_SIZE",
    "SUFFIX",
    "Loaded",
    "hash_prefix",
    "leftovers",
    "load",
    "save",
    "verify",
]

SUFFIX: Final = ".ckpt"
"""The suffix of a checkpoint file (``checkpoints/<id>.ckpt``); one being written is ``<id>.ckpt.<pid>-<hex>.tmp``."""

CHECKPOINT_FORMAT: Final = "delite-checkpoint/2"
_PREFIX: Final = CHECKPOINT_FORMAT.encode() + b" "
MIN_LOG_SIZE: Final = 64 * 1024
"""No checkpoint below this log size: such a log is read, verified and folded in about a millisecond."""
GROWTH: Final = 1.25
"""A new checkpoint is written once the log is this many times the size the last one covered."""
# A log prefix is hashed this many bytes at a time.
_CHUNK: Final = 1 << 20


class _HistoryHead(msgspec.Struct, kw_only=True):
    steps: int
    calls_count: int
    models: list[str]
    turns_size: int
    calls_size: int
    crc32: int


class _Body(msgspec.Struct, kw_only=True):
    execution_id: str
    log_size: int
    log_sha256: str
    state: ExecutionState
    history: _HistoryHead | None = None


_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(_Body)


class Loaded:
    """A checkpoint that matched: the state of the first ``size`` bytes, their running hash, the first record."""

    __slots__ = ("digest", "first", "size", "state")

    def __init__(self, state: ExecutionState, size: int, digest: _Hash, first: ExecutionStarted) -> None:
        """Hold what :func:`load` found."""
        self.state = state
        self.size = size
        self.digest = digest
        self.first = first


def save(path: str, execution_id: str, log_size: int, digest: _Hash, state: ExecutionState) -> bool:
    """Write a checkpoint of ``state``, the fold of the log's first ``log_size`` bytes whose hash is ``digest``.

    ``digest`` is not changed (a copy is finalised). False when nothing was written: failures are not errors,
    a missing checkpoint only makes the next claim slower. The file is created ``0600``, never synced.

    Once encoded, ``state`` holds its history as the checkpoint does (:meth:`ExecutionState._hold_history`): the
    same value, its earlier turns and calls kept as the JSON just written rather than as objects, so the next
    checkpoint encodes only what came since and a long run's memory stays that of its JSON.
    """
    try:
        pieces, held = _encode(execution_id, log_size, digest.copy().hexdigest(), state)
        state._hold_history(*held)  # noqa: SLF001 - the checkpoint's half of the history's protocol
        _os.make_private_dir(os.path.dirname(path))
        _os.replace_private(path, *pieces, unlink_first=True)
    except (OSError, TypeError, ValueError, OverflowError, LogCorruptError):  # an unencodable value (an int
        return False  # over 64 bits), a history that does not decode: none
    return True


def _encode(
    execution_id: str, log_size: int, sha256: str, state: ExecutionState
) -> tuple[list[bytes | memoryview], tuple[History | None, list[ModelResponded], dict[str, CallState]]]:
    """The bytes of a checkpoint of ``state`` (in pieces), and the parts :meth:`ExecutionState._encode_history` gave.

    The body's ``state`` holds the latest turn and its calls, the history after the body the others.
    """
    held = history, turns, calls = state._encode_history()  # noqa: SLF001
    latest = copy.copy(state)  # the same values but for the turns and calls the history does not hold
    latest._history = None  # noqa: SLF001 - this module writes what ExecutionState._attach_history reads
    latest._turns = turns  # noqa: SLF001
    latest._calls = calls  # noqa: SLF001
    rest: tuple[memoryview, ...] = ()
    head = None
    if history is not None:
        rest = (memoryview(history.turns), memoryview(history.calls))
        size_t, size_c = len(rest[0]), len(rest[1])
        crc = zlib.crc32(rest[1], zlib.crc32(rest[0]))
        head = _HistoryHead(
            steps=history.steps,
            calls_count=history.calls_count,
            models=history.models,
            turns_size=size_t,
            calls_size=size_c,
            crc32=crc,
        )
    body = _encoder.encode(
        _Body(execution_id=execution_id, log_size=log_size, log_sha256=sha256, state=latest, history=head)
    )
    return [frame_line(_PREFIX, body, sized=True), body, *rest], held


def _decode(raw: bytes) -> _Body | str:
    """The checkpoint's body, or why not (``"other-format"``, ``"damaged"``).

    Its state carries its history, not decoded (see :meth:`~delite.state.ExecutionState._attach_history`).
    """
    parts = unframed_rest(raw, _PREFIX)
    if isinstance(parts, str):
        return parts
    body, rest = parts
    try:
        with settled():  # thousands of objects, none in a cycle, that live on
            decoded = _decoder.decode(body)
    except (msgspec.DecodeError, ValueError, TypeError):
        return "damaged"
    head = decoded.history
    if head is None:
        return "damaged" if len(rest) else decoded
    if head.steps < 1 or head.calls_count < 0 or min(head.turns_size, head.calls_size) < 2:
        return "damaged"
    if head.turns_size + head.calls_size != len(rest):
        return "damaged"
    turns, calls = rest[: head.turns_size], rest[head.turns_size :]
    history = History(head.steps, head.calls_count, msgspec.Raw(turns), msgspec.Raw(calls), head.models, head.crc32)
    decoded.state._attach_history(history)  # noqa: SLF001
    return decoded


def hash_prefix(fd: int | bytes, size: int) -> tuple[_Hash, bytes] | None:
    """The running SHA-256 of the first ``size`` bytes at ``fd`` and the first chunk read, or None if shorter.

    ``fd`` may be the log's bytes instead of a descriptor (a listing has read them already).
    """
    if isinstance(fd, bytes):
        if len(fd) < size:
            return None
        return hashlib.sha256(memoryview(fd)[:size]), fd[:_CHUNK]
    digest = hashlib.sha256()
    head = b""
    pos = 0
    while pos < size:
        chunk = os.pread(fd, min(_CHUNK, size - pos), pos)
        if not chunk:
            return None
        if not pos:
            head = chunk
        digest.update(chunk)
        pos += len(chunk)
    return digest, head


def verify(path: str, fd: int | bytes, execution_id: str) -> Loaded | str:
    """The checkpoint at ``path`` if it matches the log open at ``fd`` (or these bytes of it), else why not.

    Why not: ``"missing"``, ``"unreadable"``, ``"other-format"``, ``"damaged"``, ``"foreign"`` (it names
    another execution, or holds a finished one) or ``"stale"`` (the log's first bytes are not the ones it
    covers: another log, a log that changed, or one shorter than it covers).
    """
    try:
        raw, _st = _os.read_regular(path)
    except FileNotFoundError:
        return "missing"
    except OSError:
        return "unreadable"
    body = _decode(raw)
    if isinstance(body, str):
        return body
    state = body.state
    if body.execution_id != execution_id or state.execution_id != execution_id or state.status.is_terminal:
        return "foreign"
    if body.log_size <= len(HEADER) or state.records < 1 or not _is_hex_digest(body.log_sha256):
        return "damaged"
    try:
        hashed = hash_prefix(fd, body.log_size)
    except OSError:
        return "unreadable"
    if hashed is None or not hmac.compare_digest(hashed[0].hexdigest(), body.log_sha256):
        return "stale"
    first = frame_record(hashed[1], len(HEADER))
    if first is None or not isinstance(first[0], ExecutionStarted) or first[0].execution_id != execution_id:
        return "stale"
    return Loaded(state, body.log_size, hashed[0], first[0])


def _is_hex_digest(text: str) -> bool:
    return len(text) == 64 and all(c in "0123456789abcdef" for c in text)


def load(path: str, fd: int | bytes, execution_id: str) -> Loaded | None:
    """:func:`verify`, None for any miss (whatever the file holds, it is never an error: the log is read)."""
    try:
        found = verify(path, fd, execution_id)
    except Exception:  # noqa: BLE001 - a derived file that trips anything is a miss, never an error
        return None
    return None if isinstance(found, str) else found


def leftovers(directory: str | os.PathLike[str]) -> dict[str, list[str]]:
    """The temporary files of checkpoints being written (or left by a killed writer) in ``directory``, by id."""
    found: dict[str, list[str]] = {}
    try:
        names = os.listdir(directory)
    except OSError:
        return found
    for name in names:
        if name.endswith(".tmp") and SUFFIX + "." in name:
            found.setdefault(name[: name.rindex(SUFFIX + ".")], []).append(os.path.join(directory, name))
    return found
