"""Encode records to payload bytes and decode them back, with reusable msgspec encoders and decoders."""

from __future__ import annotations

from typing import Final

import msgspec

from delite.errors import InvalidRecordError, UnsupportedFormatError
from delite.log.records import AnyRecord, Record

__all__ = [
    "MAX_NESTING",
    "as_read",
    "check_record",
    "decode_payloads",
    "decode_record",
    "encode_record",
    "read_back",
]

_encoder = msgspec.json.Encoder()
_decoder: msgspec.json.Decoder[AnyRecord] = msgspec.json.Decoder(AnyRecord)


MAX_NESTING: Final = 256
"""The deepest a record's JSON may nest (arrays and objects in one another); a deeper record is not written.

A fixed bound, far below the interpreter's recursion limit (1,000), so that every reader can read what the
writer accepted however deep its own stack is when it reads: a limit checked only by decoding where the writer
stands moved with the writer's stack, and a reader a few dozen frames deeper (a CLI command, a web server)
failed with ``RecursionError``. Values given to the API are bounded at 200 levels (``delite._checks``).
"""

_NOT_BRACKETS: Final = bytes(b for b in range(256) if b not in b"[]{}")
_ONE_KIND: Final = bytes.maketrans(b"{}", b"[]")


def _too_deep(payload: bytes) -> bool:
    """Whether JSON ``payload`` nests deeper than :data:`MAX_NESTING`.

    Fewer brackets than that cannot nest deeper (the common case: two counts, no parse). Otherwise the strings
    are cut out (escaped backslashes and quotes dropped first, so every quote left opens or closes one), the
    brackets kept, as one kind; each pass that removes every ``[]`` removes one level. About the time of one
    decode of the payload (0.8 ms for a result of 1,000 small objects, 59 KB, measured by hand), paid only by
    payloads of more than 256 brackets.
    """
    if payload.count(b"[") + payload.count(b"{") <= MAX_NESTING:
        return False
    unescaped = payload.replace(b"\\\\", b"").replace(b'\\"', b"")
    brackets = b"".join(unescaped.split(b'"')[::2]).translate(_ONE_KIND, _NOT_BRACKETS)
    depth = 0
    while brackets and depth <= MAX_NESTING:
        brackets = brackets.replace(b"[]", b"")
        depth += 1
    return depth > MAX_NESTING


def _kind(record: Record) -> str:
    return str(record.__struct_config__.tag or type(record).__name__)


_last: tuple[object, bytes] = (None, b"")
"""The record checked last and its payload: an engine step checks a record (its size, that it reads back), then
hands that same object to the store, which would encode it again to write it. Kept by identity, and the record is
held, so its id cannot be reused; one entry, replaced whole, so threads at worst miss it."""


def encode_record(record: Record) -> bytes:
    """The JSON payload of one record, checked to read back with the reader's own (strict) types.

    Whatever the writer accepts, the reader must read: a record holding a value of the wrong type (``None``
    where the reader expects text, a number for a list) or one that cannot be encoded at all (a lone
    surrogate, an object that is not JSON) raises :class:`~delite.errors.InvalidRecordError` here, before
    any byte of it is written. The check decodes the payload once more (a few microseconds per record); the
    record checked last is not encoded again.
    """
    global _last  # noqa: PLW0603 - the one entry, replaced whole
    last = _last
    if last[0] is record:
        return last[1]
    try:
        payload = _encoder.encode(record)
    except (TypeError, ValueError, OverflowError, RecursionError) as e:  # UnicodeEncodeError is a ValueError
        raise InvalidRecordError(_kind(record), f"cannot be encoded as JSON: {e}") from e
    if len(payload) > 2 * MAX_NESTING and _too_deep(payload):  # each level takes two bytes: a step's are short
        raise InvalidRecordError(_kind(record), f"it is nested more than {MAX_NESTING} levels deep")
    try:
        _decoder.decode(payload)
    except (msgspec.DecodeError, RecursionError) as e:  # too deep to read back here: refused, never written
        raise InvalidRecordError(_kind(record), str(e)) from e
    _last = (record, payload)
    return payload


def check_record(record: Record) -> None:
    """Raise :class:`~delite.errors.InvalidRecordError` if ``record`` would not read back (writes nothing)."""
    encode_record(record)


def as_read(record: Record) -> AnyRecord:
    """``record`` exactly as a reader will see it once written (or :class:`~delite.errors.InvalidRecordError`).

    Use it for records built from foreign values (a provider's turn): the writer keeps the decoded copy, so the
    state it folds in memory is the state every reader folds from the log.
    """
    return read_back(encode_record(record))


def read_back(payload: bytes) -> AnyRecord:
    """The record ``payload`` (from :func:`encode_record`) holds; the writer is handed it next, so it is kept."""
    global _last  # noqa: PLW0603 - the one entry, replaced whole
    record = _decoder.decode(payload)
    _last = (record, payload)
    return record


def decode_record(payload: bytes, *, path: str = "", offset: int = 0) -> AnyRecord:
    """Decode one payload; a payload this version cannot read raises :class:`UnsupportedFormatError`."""
    try:
        return _decoder.decode(payload)
    except (msgspec.DecodeError, RecursionError) as e:  # too deep for this stack: a log no writer of ours made
        raise UnsupportedFormatError(path, f"record at byte {offset}: {e}", "delite-log/1 records") from e


def decode_payloads(payloads: list[bytes], offsets: list[int], *, path: str = "") -> list[AnyRecord]:
    """Decode many payloads, each on its own: a payload that is not exactly one record names its offset.

    (Decoding them as one JSON array joined with commas was no faster, and it let an empty payload vanish or a
    payload holding ``{...},{...}`` count as two records.)
    """
    try:
        return list(map(_decoder.decode, payloads))
    except (msgspec.DecodeError, RecursionError):
        return [decode_record(p, path=path, offset=o) for p, o in zip(payloads, offsets, strict=True)]
