"""Rows of the PostgreSQL store: records checked and decoded, and the columns that follow an execution's log."""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Sequence
from typing import Any

from delite.errors import LogCorruptError
from delite.log._codec import decode_record, encode_record
from delite.log.records import AnyRecord, Record
from delite.state._fold import fold
from delite.state._model import ExecutionState
from delite.state._ready import advanceable

__all__ = ["FOLD_ERRORS", "encoded", "fold_or_none", "log_columns", "verify", "where_record"]

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
    return [encode_record(r) for r in records]
