"""Encode records to payload bytes and decode them back, with reusable msgspec encoders and decoders."""

from __future__ import annotations

import msgspec

from delite.errors import UnsupportedFormatError
from delite.log.records import AnyRecord, Record

__all__ = ["decode_payloads", "decode_record", "encode_record"]

_encoder = msgspec.json.Encoder()
_decoder: msgspec.json.Decoder[AnyRecord] = msgspec.json.Decoder(AnyRecord)


def encode_record(record: Record) -> bytes:
    """The JSON payload of one record."""
    return _encoder.encode(record)


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
