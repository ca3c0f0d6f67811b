"""The records of a model call's or a tool body's outcome, built so that they can always be written.

A turn's record is checked with the reader's own types before it is buffered: a turn that would not read
back (a number for text, a lone surrogate, a usage of the wrong shape) is a retryable
:class:`~delite.errors.ProviderError` instead, recorded as a failed attempt under the retry policy. A failed
attempt's record is made writable whatever the error says (text that UTF-8 cannot encode is replaced, a usage
that would not read back is dropped), so a failure never leaves a run ``running`` with nothing recorded.

A tool body's result that cannot be stored (it does not encode, say a lone surrogate from a file name, or its
record is over the size limit) is recorded once, as that call's tool error: the body ran, so it must never be
left in doubt and run again on every resume.
"""

from __future__ import annotations

import msgspec

from delite.errors import InvalidRecordError, ProviderError
from delite.log._codec import check_record, encode_record, read_back
from delite.log._framing import MAX_RECORD_SIZE
from delite.log.records import ModelCallFailed, ModelResponded, Record, RecordedToolCall, ToolFinished, Usage
from delite.providers._base import ModelTurn

__all__ = ["failure_record", "printable", "tool_record", "turn_record"]


def printable(text: str) -> str:
    """``text`` with anything UTF-8 cannot encode (lone surrogates) replaced, so a failure can always be recorded."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "replace").decode("utf-8")
    return text


def turn_record(
    turn: ModelTurn, *, step: int, model: str | None, attempt: int, duration_ms: float, now: float, provider: str
) -> ModelResponded:
    """The record of a model turn, checked to read back with the reader's types (else a retryable error)."""
    calls = [
        RecordedToolCall(id=f"c{step}.{i}", name=c.name, arguments=c.arguments, provider_id=c.id)
        for i, c in enumerate(turn.tool_calls)
    ]
    record = ModelResponded(
        at=now,
        step=step,
        model=turn.model or model,
        content=turn.content,
        tool_calls=calls,
        usage=turn.usage,
        duration_ms=round(duration_ms, 3),
        attempt=attempt,
        raw_usage=turn.raw_usage,
        request_model=turn.request_model or model,
        response_id=turn.response_id,
        finish_reasons=_reasons(turn),
        server_address=turn.server_address,
        server_port=turn.server_port,
    )
    try:
        payload = encode_record(record)
    except InvalidRecordError as e:
        raise _unrecordable(f"malformed turn that cannot be recorded: {e.detail}", turn, step, provider) from None
    if len(payload) > MAX_RECORD_SIZE:  # a turn the log cannot hold: a failed attempt, never a run left running
        detail = f"{len(payload):,} bytes once recorded, over the limit of {MAX_RECORD_SIZE:,} bytes per record"
        raise _unrecordable(f"malformed turn too large to record: {detail}", turn, step, provider)
    read = read_back(payload)
    if not isinstance(read, ModelResponded):  # pragma: no cover - the tag decides the type
        raise TypeError(read)
    return read


def _unrecordable(message: str, turn: ModelTurn, step: int, provider: str) -> ProviderError:
    """The retryable error for a turn that cannot be recorded; it carries the usage billed, when recordable."""
    error = ProviderError(message, provider=provider, retryable=True)
    usage = turn.usage
    billed = isinstance(usage, Usage) and _recordable(ModelCallFailed(step=step, usage=usage))
    error.usage = usage if billed else None
    return error


def _recordable(record: Record) -> bool:
    try:
        check_record(record)
    except InvalidRecordError:
        return False
    return True


def failure_record(
    error: ProviderError, now: float, step: int, attempt: int, model: str | None, *, retry: bool
) -> ModelCallFailed:
    """The record of a failed attempt, always writable: bad text replaced, a bad usage or model left out."""
    status = getattr(error, "status_code", None)
    usage = error.usage if isinstance(error.usage, Usage) else None
    record = ModelCallFailed(
        at=now,
        step=step,
        attempt=attempt,
        error=printable(str(error)[:2000]),
        retryable=retry,
        model=model,
        status_code=status if isinstance(status, int) and not isinstance(status, bool) else None,
        usage=usage,
    )
    if not _recordable(record):  # a usage or a model that would not read back: keep the failure itself
        record = msgspec.structs.replace(record, usage=None, model=model if isinstance(model, str) else None)
    return record


_ERROR_LIMIT = 64 * 1024  # characters of a tool's error message kept when the whole would not fit in a record


def tool_record(record: ToolFinished) -> ToolFinished:
    """``record`` if it can be written as it is; else the same call recorded as a tool error saying why.

    The check encodes the record as the writer will (with its read-back check), so a result that would fail
    the append is caught here, while the body's outcome can still be recorded.
    """
    try:
        size = len(encode_record(record))
    except InvalidRecordError as e:
        problem = f"that cannot be stored: {e.detail}"
    else:
        if size <= MAX_RECORD_SIZE:
            return record
        problem = f"of {size:,} bytes once recorded, over the limit of {MAX_RECORD_SIZE:,} bytes per record"
    if record.error is not None:  # the error message itself is what does not fit
        error = printable(record.error[:_ERROR_LIMIT]) + " [cut: the whole message was too large to record]"
    else:
        error = f"the tool returned a value {problem}"
    return msgspec.structs.replace(record, result=None, error=error)


def _reasons(turn: ModelTurn) -> list[str]:
    """The turn's finish reasons as a list (a provider of its own may have given one reason as a string)."""
    given: object = turn.finish_reasons
    return [given] if isinstance(given, str) else list(turn.finish_reasons)
