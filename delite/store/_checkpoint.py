"""A derived fold checkpoint of an unfinished execution, so a claim folds only the log's tail.

The file ``checkpoints/<id>.ckpt`` under the data directory holds the
:class:`~delite.state._model.ExecutionState` that folding the first ``log_size`` bytes of the log gives,
together with the SHA-256 of exactly those bytes. It grows by appending: a run adds one *save* each time its
log has grown by :data:`INTERVAL` bytes (at least), holding only what changed, so saves are cheap enough to be
frequent and a claim folds at most about that many bytes of log::

    "delite-checkpoint/3" LF
    save*
    save := "S " crc32(M + B) as 8 hex digits " " len(M) " " len(T) " " len(C) " " len(B) LF  M T C B

- ``M``: the messages added to the conversation's settled part since the previous save, a JSON array (empty:
  none). The settled part is every message before the latest turn's tool results; the fold never changes it.
- ``T`` and ``C``: the model turns (a JSON array) and their tool calls (a JSON object by call id) that moved
  into the history since the previous save, both empty or both not: the pieces of a
  :class:`~delite.state._model.History`, which a claim neither reads, decodes nor checksums. Their CRC-32,
  running over every piece of the file in order, is in the body. They are read from the file the first time
  the history is needed (reading ``turns`` or ``calls`` whole, or the next save), checked against it, and if
  the file no longer holds them (deleted, replaced or damaged since the claim) rebuilt from the log's bytes
  the checkpoint covers (see :class:`_HistoryLoader`).
- ``B``: the body, JSON ``{"execution_id", "log_size", "log_sha256", "state", "history": {"steps",
  "calls_count", "models", "crc32"} | null, "settled": int}``. ``state`` holds only the conversation after its
  settled part (``settled`` messages, all in the saves up to this one), the latest model turn and its calls.

The last save whose bytes are all there and whose CRC-32 matches is the checkpoint; the saves before it must all
match too. A save cut short (a writer killed while appending, or a reader racing it) is left out; a mismatch
before the last save is damage (a miss). The first save of a claim, and one made once the file has doubled
since it was last written whole, writes the file whole (tmp file + rename): a new claim never appends after
bytes it did not write, and the file stays within about twice what it holds.

Every value is JSON encoded by the same encoder as the log's records: every value in the state reads back exactly
as it reads back from the record it came from (a NaN as null, an integer key as text), so a state decoded from
a checkpoint is the state folding the log gives, not merely the state the writer held in memory. (msgpack
decoded about 10% faster, but keeps what JSON does not: NaN, integer keys.)

It is written while a run goes (by the claim that appends, from the state the engine keeps, see
:meth:`delite.store._file.FileExecutionLog.offer_state`), from a log of :data:`MIN_LOG_SIZE` bytes on. The
writer keeps a running SHA-256 of what it appended, so it never reads the log back. Written ``0600`` without
``fsync``: losing one costs only speed.

It is never trusted over the log. :func:`load` returns the state only when all of this holds, and is a miss
otherwise (the caller then reads, verifies and folds the whole log as usual):

- the file is well formed: this format, every save's CRC-32, sizes that add up, a body that decodes, a
  conversation of the length the body says;
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

import copy
import functools
import os
import zlib
from typing import TYPE_CHECKING, Any, Final, NamedTuple

import msgspec

from delite._gc import settled
from delite.errors import LogCorruptError
from delite.log import _digest, _os
from delite.log._framing import HEADER
from delite.log._reader import parse_log
from delite.log.records import ExecutionStarted
from delite.state._fold import fold
from delite.state._model import ExecutionState, History, Pieces, history_crc
from delite.store._snapshot import frame_record

if TYPE_CHECKING:
    from hashlib import _Hash

__all__ = [
    "CHECKPOINT_FORMAT",
    "INTERVAL",
    "MIN_LOG_SIZE",
    "SUFFIX",
    "CheckpointWriter",
    "Loaded",
    "hash_prefix",
    "leftovers",
    "load",
    "next_save",
    "verify",
]

SUFFIX: Final = ".ckpt"
"""The suffix of a checkpoint file (``checkpoints/<id>.ckpt``); one being written is ``<id>.ckpt.<pid>-<hex>.tmp``."""

CHECKPOINT_FORMAT: Final = "delite-checkpoint/3"
_MAGIC: Final = CHECKPOINT_FORMAT.encode() + b"\n"
MIN_LOG_SIZE: Final = 64 * 1024
"""No checkpoint below this log size: such a log is read, verified and folded in about a millisecond."""
INTERVAL: Final = 16 * 1024
"""A new save once the log has grown by this many bytes since the last (or by four bodies, if more): see
:func:`next_save`."""
# A log's first record is read from at most this many bytes.
_CHUNK: Final = 1 << 20
# A log prefix is hashed, or compared with bytes kept, this many bytes at a time.
_READ_CHUNK: Final = 1 << 16
# The checkpoint file is read this many bytes at a time at least (see _Window).
_WINDOW: Final = 1 << 18
# A save's first line is at most this long ("S ", 8 hex digits, four sizes).
_LINE_MAX: Final = 2 + 8 + 4 * 21 + 1


class _HistoryHead(msgspec.Struct, kw_only=True):
    steps: int
    calls_count: int
    models: list[str]
    crc32: int


class _Body(msgspec.Struct, kw_only=True):
    execution_id: str
    log_size: int
    log_sha256: str
    state: ExecutionState
    history: _HistoryHead | None = None
    settled: int = 0


_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(_Body)
_messages_decoder = msgspec.json.Decoder(list[dict[str, Any]])


class Loaded:
    """A checkpoint that matched: the state of the first ``size`` bytes, their running hash, the first record.

    ``data``: those bytes themselves, where a listing that read them keeps the state for a claim (which then
    compares the log with them instead of hashing it again).
    """

    __slots__ = ("data", "digest", "first", "size", "state")

    def __init__(
        self, state: ExecutionState, size: int, digest: "_Hash", first: ExecutionStarted, data: bytes | None = None
    ) -> None:
        """Hold what :func:`load` found."""
        self.state = state
        self.size = size
        self.digest = digest
        self.first = first
        self.data = data


def _settled_count(state: ExecutionState) -> int:
    """How many of the state's messages are settled: every one before the latest turn's tool results.

    The fold only ever appends messages, or inserts a tool result among those of the latest turn (from
    ``_results.start`` on), so the messages before that never change again.
    """
    tail = state._results  # noqa: SLF001 - the fold's own bookkeeping says where results may still go
    return len(state.messages) if tail is None else min(tail.start, len(state.messages))


def next_save(log_size: int, body_size: int = 0) -> int:
    """The log size at which to save next, after a save at ``log_size`` whose body was ``body_size`` bytes.

    At a fixed interval, so a claim folds at most about :data:`INTERVAL` bytes of log; further apart when the
    body is large (a save costs at least its body), so the bytes written for saves stay proportional to the log.
    """
    return max(MIN_LOG_SIZE, log_size + max(INTERVAL, 4 * body_size))


def _save_pieces(m: bytes, t: bytes, c: bytes, body: bytes) -> list[bytes]:
    """One save's bytes, in pieces (its line, then the parts)."""
    crc = zlib.crc32(body, zlib.crc32(m))
    return [f"S {crc:08x} {len(m)} {len(t)} {len(c)} {len(body)}\n".encode(), m, t, c, body]


class CheckpointWriter:
    """The fold checkpoint of one claimed execution, written as its run goes (see the module's text).

    One per claim: it remembers what the file holds (what it wrote), so that a save appends only what changed.
    Failures are not errors: a missing checkpoint only makes the next claim slower.
    """

    def __init__(self, path: str, execution_id: str) -> None:
        """Write ``checkpoints/<id>.ckpt`` at ``path``; the first save writes the file whole."""
        self.path = path
        self.execution_id = execution_id
        self._size = 0  # the file's size as this writer left it (0: write it whole next time)
        self._whole = 0  # its size when last written whole
        self._messages: list[dict[str, Any]] | None = None  # the conversation whose settled part is written
        self._settled = 0  # how many of its messages are in the file
        self._anchor: object = None  # the last of them, to tell that the conversation is still the same list
        self._pieces = 0  # how many pieces of the state's history are in the file
        self._last_piece: object = None  # the last of them, to tell that the history is still the one written
        self.body_size = 0
        """The size of the last save's body (what a save costs at least)."""

    def save(self, log_size: int, digest: "_Hash", state: ExecutionState) -> bool:
        """Save ``state``, the fold of the log's first ``log_size`` bytes whose hash is ``digest`` (not changed).

        Once saved, ``state`` holds its history as the file does (:meth:`ExecutionState._hold_history`): the
        same value, its earlier turns and calls kept as the JSON just written rather than as objects, so the
        next save encodes only what came since and a long run's memory stays that of its JSON. False when
        nothing was written.
        """
        try:
            return self._save(log_size, digest.copy().hexdigest(), state)
        except (OSError, TypeError, ValueError, OverflowError, LogCorruptError):  # an unencodable value (an int
            self._size = 0  # over 64 bits), a history that does not decode: none, and the next save starts over
            return False

    def _save(self, log_size: int, sha256: str, state: ExecutionState) -> bool:
        history, turns, calls = state._encode_history()  # noqa: SLF001 - the checkpoint's half of the protocol
        messages = state.messages
        settled = _settled_count(state)
        whole = not self._size or self._size > 2 * self._whole or not self._continues(history, messages, settled)
        if whole and history is not None:  # one piece each in a file written whole, held as bytes of their own
            history = _compacted(history)  # (not views into a checkpoint file read at the claim, kept alive)
        done = 0 if whole else self._pieces
        t = c = b""
        if history is not None and len(history.turns) > done:
            t, c = bytes(history.turns[done]), bytes(history.calls[done])
        start = 0 if whole else self._settled
        m = _encoder.encode(messages[start:settled]) if settled > start else b""
        latest = copy.copy(state)  # the same values but for what the saves up to this one hold
        latest._history = None  # noqa: SLF001 - this module writes what ExecutionState._attach_history reads
        latest._turns = turns  # noqa: SLF001
        latest._calls = calls  # noqa: SLF001
        latest.messages = messages[settled:]
        head = None
        if history is not None:
            head = _HistoryHead(
                steps=history.steps, calls_count=history.calls_count, models=history.models, crc32=history.crc32
            )
        body = _encoder.encode(
            _Body(
                execution_id=self.execution_id,
                log_size=log_size,
                log_sha256=sha256,
                state=latest,
                history=head,
                settled=settled,
            )
        )
        pieces = _save_pieces(m, t, c, body)
        if whole:
            _os.make_private_dir(os.path.dirname(self.path))
            _os.replace_private(self.path, _MAGIC, *pieces, unlink_first=True)
            self._size = self._whole = len(_MAGIC) + sum(map(len, pieces))
        else:
            size, self._size = self._size, 0  # unknown until the save is all there
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_NOFOLLOW | os.O_CLOEXEC)
            try:
                _os.write_all(fd, b"".join(pieces))
            finally:
                os.close(fd)
            self._size = size + sum(map(len, pieces))
        state._hold_history(history, turns, calls)  # noqa: SLF001
        self._messages = messages
        self._settled = settled
        self._anchor = messages[settled - 1] if settled else None
        self._pieces = len(history.turns) if history is not None else 0
        self._last_piece = history.turns[-1] if history is not None else None
        self.body_size = len(body)
        return True

    def _continues(self, history: History | None, messages: list[dict[str, Any]], settled: int) -> bool:
        """Whether the file holds the start of this state: its settled messages and history pieces, as written."""
        if messages is not self._messages or settled < self._settled:
            return False
        if self._settled and messages[self._settled - 1] is not self._anchor:
            return False
        if history is None:
            return not self._pieces
        grown = len(history.turns) - self._pieces
        if grown not in (0, 1):
            return False
        return not self._pieces or history.turns[self._pieces - 1] is self._last_piece


def _compacted(history: History) -> History:
    """The same history in one piece of turns and one of calls."""
    turns = (_joined(history.turns, b"[", b"]"),)
    calls = (_joined(history.calls, b"{", b"}"),)
    return History(history.steps, history.calls_count, turns, calls, history.models, history_crc(turns, calls))


def _joined(pieces: tuple[bytes | memoryview, ...], opening: bytes, closing: bytes) -> bytes:
    """JSON arrays (or objects) as one: ``[a,b]`` and ``[c]`` give ``[a,b,c]``; any may be empty.

    Made in one allocation; a single piece that is already bytes of its own is returned as it is (the first
    save after a long log was folded whole holds tens of megabytes in it: no copy of it is made).
    """
    full = [p for p in pieces if len(p) > 2]
    if len(full) == 1 and type(full[0]) is bytes:
        return full[0]
    parts: list[bytes | memoryview] = [opening]
    for i, piece in enumerate(full):
        if i:
            parts.append(b",")
        parts.append(memoryview(piece)[1:-1])
    parts.append(closing)
    return b"".join(parts)


class _Window:
    """Byte ranges of a file of ``size`` bytes, read with few system calls.

    A range outside the last chunk read starts a new chunk of at least :data:`_WINDOW` bytes at its start; the
    chunks are never shared with what is returned to keep (views into them are decoded and let go).
    """

    __slots__ = ("_chunk", "_fd", "_start", "size")

    def __init__(self, fd: int, size: int) -> None:
        self._fd = fd
        self.size = size
        self._chunk = memoryview(b"")
        self._start = 0

    def get(self, at: int, n: int) -> memoryview | None:
        """The ``n`` bytes at ``at``; None if the file ends before them (it was cut short since its ``fstat``)."""
        offset = at - self._start
        if offset >= 0 and offset + n <= len(self._chunk):
            return self._chunk[offset : offset + n]
        want = min(max(n, _WINDOW), self.size - at)
        buffer = bytearray(want)
        got = 0
        while got < want:
            k = os.preadv(self._fd, [memoryview(buffer)[got:]], at + got)
            if k <= 0:
                break
            got += k
        self._chunk, self._start = memoryview(buffer)[:got], at
        return self._chunk[:n] if got >= n else None


class _Piece(NamedTuple):
    """A history piece left in the checkpoint file: where it starts, how long it is."""

    at: int
    size: int


class _Walked(NamedTuple):
    """The saves of a checkpoint file that check out: where each one's parts start, their sizes, its messages."""

    saves: list[tuple[int, int, int, int, memoryview]]
    body: memoryview
    """The last save's body."""


def _walk(fd: int, size: int) -> _Walked | str:
    """The saves of the checkpoint file open at ``fd``, each one's CRC-32 checked, or why not.

    Only the saves' lines, conversations and bodies are read, never their history pieces (see
    :class:`_HistoryLoader`).
    """
    window = _Window(fd, size)
    magic = window.get(0, len(_MAGIC)) if size >= len(_MAGIC) else None
    if magic is None or magic != _MAGIC:
        return "other-format"
    saves: list[tuple[int, int, int, int, memoryview]] = []
    body: memoryview | None = None
    pos = len(_MAGIC)
    while pos < size:
        head = window.get(pos, min(_LINE_MAX, size - pos))
        if head is None:
            break  # cut short since the fstat
        line_end = bytes(head).find(b"\n")
        if line_end < 0:
            if size - pos < _LINE_MAX:
                break  # a save's line cut short: the end of a save being written
            return "damaged"
        fields = bytes(head[:line_end]).split(b" ")
        if len(fields) != 6 or fields[0] != b"S" or len(fields[1]) != 8:
            return "damaged"
        try:
            crc = int(fields[1], 16)
            m, t, c, b = map(int, fields[2:])
        except ValueError:
            return "damaged"
        if min(m, t, c, b) < 0 or (t == 0) != (c == 0) or b == 0:
            return "damaged"
        start = pos + line_end + 1
        end = start + m + t + c + b
        if end > size:
            break  # cut short
        messages = window.get(start, m)
        last = window.get(end - b, b)
        if messages is None or last is None:
            break  # cut short since the fstat
        if zlib.crc32(last, zlib.crc32(messages)) != crc:
            if end == size:
                break  # the last save, its bytes not all written yet
            return "damaged"
        saves.append((start, m, t, c, messages))
        body = last
        pos = end
    if body is None:
        return "damaged"
    return _Walked(saves, body)


def _body(walked: _Walked) -> _Body | str:
    """The last save's body, its state holding only the conversation after the settled part; or ``"damaged"``."""
    try:
        return _decoder.decode(walked.body)
    except (msgspec.DecodeError, ValueError, TypeError):
        return "damaged"


def _completed(walked: _Walked, body: _Body, load: "_HistoryLoader") -> _Body | str:
    """``body`` with its whole conversation and its history (as ``load``, see :class:`_HistoryLoader`)."""
    conversation: list[dict[str, Any]] = []
    try:
        with settled():  # thousands of objects, none in a cycle, that live on
            for _start, m, _t, _c, messages in walked.saves:
                if m:
                    conversation += _messages_decoder.decode(messages)
    except (msgspec.DecodeError, ValueError, TypeError):
        return "damaged"
    if len(conversation) != body.settled:
        return "damaged"
    state = body.state
    conversation += state.messages
    state.messages = conversation
    saves = walked.saves
    turns = tuple(_Piece(s + m, t) for s, m, t, _c, _v in saves if t)
    calls = tuple(_Piece(s + m + t, c) for s, m, t, c, _v in saves if c)
    head = body.history
    if head is None:
        return "damaged" if turns else body
    if head.steps < 1 or head.calls_count < 0 or not turns:
        return "damaged"
    reader = functools.partial(load, turns, calls, head, body.log_size, body.log_sha256)
    state._attach_history(  # noqa: SLF001
        History(head.steps, head.calls_count, None, None, head.models, head.crc32, load=reader)
    )
    return body


def _decode(fd: int, size: int, load: "_HistoryLoader") -> _Body | str:
    """The checkpoint's body, with its whole conversation, or why not (``"other-format"``, ``"damaged"``).

    The state carries its history as ``load`` (see :class:`~delite.state._model.History`): its pieces are
    read from the file only if they are ever needed.
    """
    walked = _walk(fd, size)
    if isinstance(walked, str):
        return walked
    body = _body(walked)
    return body if isinstance(body, str) else _completed(walked, body, load)


class _HistoryLoader:
    """Reads a checkpoint's history pieces when first needed, else rebuilds them from the log (see :func:`verify`).

    The pieces are read from the checkpoint file at ``path`` and must match the CRC-32 its body gave. If they
    do not (the file was deleted, replaced or damaged since the claim read it), the history is rebuilt from the
    log's first bytes it covers (read, checked against the SHA-256 the body gave, verified frame by frame and
    folded) when ``log_path`` is known, else ``LogCorruptError``: a derived file is never trusted over the log,
    and losing one costs only time.
    """

    __slots__ = ("execution_id", "log_path", "path")

    def __init__(self, path: str, execution_id: str, log_path: str | None) -> None:
        self.path = path
        self.execution_id = execution_id
        self.log_path = log_path

    def __call__(
        self, turns: tuple[_Piece, ...], calls: tuple[_Piece, ...], head: _HistoryHead, log_size: int, sha256: str
    ) -> tuple[Pieces, Pieces, int]:
        """The pieces of the history ``head`` describes and their CRC-32."""
        try:
            raw, _st = _os.read_regular(self.path)
        except OSError:
            raw = b""
        view = memoryview(raw)
        if all(p.at + p.size <= len(raw) for p in (*turns, *calls)):
            t = tuple(view[p.at : p.at + p.size] for p in turns)
            c = tuple(view[p.at : p.at + p.size] for p in calls)
            if history_crc(t, c) == head.crc32:
                return t, c, head.crc32
        if self.log_path is None:
            raise LogCorruptError(self.execution_id or "?", -1, "its fold checkpoint's history is damaged (CRC-32)")
        return _rebuilt(self.log_path, self.execution_id, head, log_size, sha256)


def _rebuilt(
    log_path: str, execution_id: str, head: _HistoryHead, log_size: int, sha256: str
) -> tuple[Pieces, Pieces, int]:
    """The history ``head`` describes, from the log's first ``log_size`` bytes: what the checkpoint's writer held.

    Its turns are the first ``head.steps`` of their fold; its calls all but those of the turn after them (the
    latest at that save, kept in the state itself).
    """
    try:
        data = _os.read_prefix(log_path, log_size)
    except OSError as e:
        why = f"its fold checkpoint's history is lost and the log cannot be read: {e.strerror or e}"
        raise LogCorruptError(execution_id, -1, why) from None
    if len(data) != log_size or not _digest.compare_digest(_digest.sha256(data).hexdigest(), sha256):
        raise LogCorruptError(execution_id, -1, "its fold checkpoint's history is lost and the log changed since")
    state = fold(parse_log(data, path=log_path).records)
    turns = state.turns
    keep = {c.id for c in turns[head.steps].tool_calls} if len(turns) > head.steps else set()
    calls = {k: v for k, v in state.calls.items() if k not in keep}
    if len(turns) not in (head.steps, head.steps + 1) or len(calls) != head.calls_count:
        raise LogCorruptError(execution_id, -1, "its fold checkpoint's history disagrees with the log")
    t, c = (_encoder.encode(turns[: head.steps]),), (_encoder.encode(calls),)
    return t, c, history_crc(t, c)


def hash_prefix(fd: int | bytes, size: int) -> "tuple[_Hash, bytes] | None":
    """The running SHA-256 of the first ``size`` bytes at ``fd`` and bytes the log begins with, or None if shorter.

    ``fd`` may be the log's bytes instead of a descriptor (a listing has read them already); they are then the
    bytes returned. From a descriptor, the bytes are read a chunk at a time into one small buffer (no new memory
    per chunk: in a fresh process the page faults of a new megabyte cost about what hashing it does), and the
    bytes returned are the first chunk: see :func:`_first_record` for a first record longer than that.
    """
    if isinstance(fd, bytes):
        if len(fd) < size:
            return None
        return _digest.sha256(memoryview(fd)[:size]), fd
    digest = _digest.sha256()
    buffer = memoryview(bytearray(max(min(_READ_CHUNK, size), 1)))
    head = b""
    pos = 0
    while pos < size:
        n = os.preadv(fd, [buffer[: size - pos]], pos)
        if n <= 0:
            return None
        if not pos:
            head = bytes(buffer[:n])
        digest.update(buffer[:n])
        pos += n
    return digest, head


def _first_record(fd: int | bytes, head: bytes, size: int) -> object:
    """The log's first record, read from ``head`` (re-read whole from ``fd`` if longer), checksum verified."""
    first = frame_record(head, len(HEADER))
    if first is None and isinstance(fd, int) and len(head) < size:  # a first record longer than the first chunk
        first = frame_record(os.pread(fd, min(size, _CHUNK), 0), len(HEADER))
    return None if first is None else first[0]


def same_prefix(fd: int, data: bytes) -> bool:
    """Whether the file open at ``fd`` begins with exactly ``data``.

    Read a chunk at a time into one small buffer and compared in place: no new memory per chunk (in a fresh
    process, the page faults of a new megabyte cost more than comparing it).
    """
    buffer = memoryview(bytearray(min(_READ_CHUNK, len(data))))
    pos = 0
    while pos < len(data):
        n = os.preadv(fd, [buffer[: len(data) - pos]], pos)
        if n <= 0 or not data.startswith(buffer[:n], pos):
            return False
        pos += n
    return True


def verify(path: str, fd: int | bytes, execution_id: str, *, log_path: str | None = None) -> Loaded | str:
    """The checkpoint at ``path`` if it matches the log open at ``fd`` (or these bytes of it), else why not.

    Why not: ``"missing"``, ``"unreadable"``, ``"other-format"``, ``"damaged"``, ``"foreign"`` (it names
    another execution, or holds a finished one) or ``"stale"`` (the log's first bytes are not the ones it
    covers: another log, a log that changed, or one shorter than it covers).

    The history's pieces are not read here (see :class:`_HistoryLoader`); ``log_path``, the log's path, is where
    they are rebuilt from should the file no longer hold them when they are.
    """
    try:
        ckpt = _os.open_regular(path)
    except FileNotFoundError:
        return "missing"
    except OSError:
        return "unreadable"
    try:
        body = _decode(ckpt, os.fstat(ckpt).st_size, _HistoryLoader(path, execution_id, log_path))
    except OSError:
        return "unreadable"
    finally:
        os.close(ckpt)
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
    if hashed is None or not _digest.compare_digest(hashed[0].hexdigest(), body.log_sha256):
        return "stale"
    first = _first_record(fd, hashed[1], body.log_size)
    if not isinstance(first, ExecutionStarted) or first.execution_id != execution_id:
        return "stale"
    return Loaded(state, body.log_size, hashed[0], first)


def _is_hex_digest(text: str) -> bool:
    return len(text) == 64 and all(c in "0123456789abcdef" for c in text)


def load(path: str, fd: int | bytes, execution_id: str, *, log_path: str | None = None) -> Loaded | None:
    """:func:`verify`, None for any miss (whatever the file holds, it is never an error: the log is read)."""
    try:
        found = verify(path, fd, execution_id, log_path=log_path)
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
