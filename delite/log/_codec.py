"""Encode records to payload bytes and decode them back, with reusable msgspec encoders and decoders."""

from __future__ import annotations

import msgspec

from delite.errors import InvalidRecordError, UnsupportedFormatError
from delite.log.records import AnyRecord, Record

__all__ = ["as_read", "check_record", "decode_payloads", "decode_record", "encode_record", "read_back"]

_encoder = msgspec.json.Encoder()
_decoder: msgspec.json.Decoder[AnyRecord] = msgspec.json.Decoder(AnyRecord)


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
    except msgspec.DecodeError as e:
        raise UnsupportedFormatError(path, f"record at byte {offset}: {e}", "delite-log/1 records") from e


def decode_payloads(payloads: list[bytes], offsets: list[int], *, path: str = "") -> list[AnyRecord]:
    """Decode many payloads, each on its own: a payload that is not exactly one record names its offset.

    (Decoding them as one JSON array joined with commas was no faster, and it let an empty payload vanish or a
    payload holding ``{...},{...}`` count as two records.)
    """
    try:
        return list(map(_decoder.decode, payloads))
    except msgspec.DecodeError:
        return [decode_record(p, path=path, offset=o) for p, o in zip(payloads, offsets, strict=True)]
