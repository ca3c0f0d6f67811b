"""Encode records to payload bytes and decode them back, with reusable msgspec encoders and decoders."""

from __future__ import annotations

import msgspec

from delite.errors import UnsupportedFormatError
from delite.log.records import AnyRecord, Record

__all__ = ["decode_payloads", "decode_record", "encode_record"]

_encoder = msgspec.json.Encoder()
_decoder: msgspec.json.Decoder[AnyRecord] = msgspec.json.Decoder(AnyRecord)
_batch_decoder: msgspec.json.Decoder[list[AnyRecord]] = msgspec.json.Decoder(list[AnyRecord])


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
    """Decode many payloads in one call to msgspec (one JSON array), falling back per record to name a bad one."""
    if not payloads:
        return []
    try:
        return _batch_decoder.decode(b"[" + b",".join(payloads) + b"]")
    except msgspec.DecodeError:
        return [decode_record(p, path=path, offset=o) for p, o in zip(payloads, offsets, strict=True)]
