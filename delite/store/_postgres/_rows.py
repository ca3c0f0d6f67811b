"""Rows of the PostgreSQL store: records checked and decoded, and the columns that follow an execution's log."""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Sequence
from typing import Any

import msgspec

from delite.errors import LogCorruptError, RecordTooLargeError
from delite.log._codec import decode_record, encode_record
from delite.log._framing import MAX_RECORD_SIZE
from delite.log.records import AnyRecord, Record
from delite.state._fold import fold
from delite.state._model import ExecutionState
from delite.state._ready import advanceable

__all__ = [
    "FOLD_ERRORS",
    "column_text",
    "encoded",
    "fold_or_none",
    "from_column",
    "log_columns",
    "verify",
    "where_record",
    "within_limit",
]

FOLD_ERRORS = (LogCorruptError, KeyError, TypeError, ValueError, AttributeError)
"""What folding records that passed their checksums can still raise (a log not written by delite)."""


def where_record(execution_id: str) -> str:
    """How errors name an execution's log (in place of a file's path)."""
    return f"execution {execution_id}"


def verify(execution_id: str, rows: Iterable[tuple[Any, ...]], after: int) -> list[AnyRecord]:
    """Check each row's sequence number and checksum, then decode it (``rows``: ``(seq, payload, crc)``)."""
    out: list[AnyRecord] = []
    where = where_record(execution_id)
    for i, (seq, payload, crc) in enumerate(rows, start=after + 1):
        if seq != i:
            raise LogCorruptError(where, i, f"record {i} is missing (found sequence {seq})")
        data = bytes(payload)
        if zlib.crc32(data) != crc:
            raise LogCorruptError(where, i, f"record {i} does not match its checksum")
        out.append(decode_record(data, path=where, offset=i))
    return out


def fold_or_none(records: Sequence[Record]) -> ExecutionState | None:
    try:
        return fold(records)
    except FOLD_ERRORS:
        return None


def log_columns(state: ExecutionState | None) -> dict[str, Any]:
    """The ``executions`` columns that follow the log: status, whether a worker may advance it, last change."""
    if state is None:
        return {"status": "unreadable", "adv": False, "dormant": False, "updated": 0.0}
    return {
        "status": state.status.value,
        "adv": advanceable(state),
        "dormant": state.dormant,
        "updated": state.updated_at,
    }


def encoded(records: Sequence[Record]) -> list[bytes]:
    """Every record's payload (an :class:`~delite.errors.InvalidRecordError` before anything is written)."""
    return within_limit([encode_record(r) for r in records])


def within_limit(payloads: list[bytes]) -> list[bytes]:
    """``payloads``, or :class:`~delite.errors.RecordTooLargeError` if one is over the file format's limit.

    The limit is the file store's (a frame's length field), kept here too so that every record one store
    holds, the other can: ``delite copy`` moves executions both ways.
    """
    for payload in payloads:
        if len(payload) > MAX_RECORD_SIZE:
            raise RecordTooLargeError(len(payload), MAX_RECORD_SIZE)
    return payloads


_ESCAPED = "\ufffe"  # a noncharacter: marks a column value written as JSON (see column_text)


def from_column(value: str) -> str:
    """The text a column value written by :func:`column_text` stands for."""
    return str(msgspec.json.decode(value[len(_ESCAPED) :])) if value.startswith(_ESCAPED) else value


def column_text(text: str) -> str:
    """``text`` as a ``text`` column holds it: as is, or, when it holds a NUL, JSON behind a marker.

    PostgreSQL's ``text`` cannot hold NUL (U+0000), which a Python string (an agent id, an idempotency key) may;
    the file store keeps such text in its records. The marked JSON form holds no NUL, and the mapping is
    one-to-one (text that starts with the marker is escaped too), so equality in SQL means equality of the texts.
    Lone surrogates never get here: the engine refuses them with a :class:`~delite.errors.UsageError`.
    """
    if "\x00" in text or text.startswith(_ESCAPED):
        return _ESCAPED + msgspec.json.encode(text).decode("utf-8")
    return text
