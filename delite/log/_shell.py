"""The shell of a record: the record with its content taken out, kept in plain text beside a sealed record.

A store folds shells into its listings, snapshots and health checks, so with encryption on none of those
holds content (see ``docs/security.md``). What a shell keeps: kinds, ids, names of tools and models, counts,
token usage and cost, statuses, timestamps, the execution's metadata and its parent and fork links. What it
takes out: the input and history, the prompt and tool descriptions of the configuration, the model's text,
tool-call arguments, tool results and error messages, questions, answers, decisions' reasons and the final
answer and output. A text taken out becomes ``""`` (``None`` stays ``None``), so a shell folds as its record
does: the same status, steps and calls.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from msgspec.structs import replace

from delite.log.records import (
    ConfigFingerprint,
    DecisionRecorded,
    DriftAccepted,
    ExecutionCancelled,
    ExecutionCompleted,
    ExecutionFailed,
    ExecutionStarted,
    ExecutionSuspended,
    InputRequested,
    InputSubmitted,
    MCPCatalogRecorded,
    MCPToolEntry,
    ModelCallFailed,
    ModelResponded,
    OutputRejected,
    PendingCall,
    PlainRecord,
    Record,
    RecordedToolCall,
    SealedRecord,
    Tally,
    ToolFinished,
)

__all__ = ["shell_of", "unsealed_shell"]


def _gone(text: str | None) -> str | None:
    return None if text is None else ""


def _started(r: ExecutionStarted) -> ExecutionStarted:
    config = ConfigFingerprint(provider=r.config.provider, model=r.config.model)
    return replace(r, input="", history=[], config=config, output_schema=None, output_prompt=None)


def _responded(r: ModelResponded) -> ModelResponded:
    calls = [RecordedToolCall(id=c.id, name=c.name, provider_id=c.provider_id) for c in r.tool_calls]
    return replace(r, content=_gone(r.content), tool_calls=calls)


def _suspended(r: ExecutionSuspended) -> ExecutionSuspended:
    reason = r.reason
    calls = [PendingCall(call_id=c.call_id, name=c.name) for c in reason.calls]
    return replace(r, reason=replace(reason, calls=calls, message="", question=_gone(reason.question)))


def _tally(tally: Tally | None) -> Tally | None:
    return None if tally is None else replace(tally, error_message=_gone(tally.error_message))


def _catalog(r: MCPCatalogRecorded) -> MCPCatalogRecorded:
    return replace(r, tools=[MCPToolEntry(name=t.name) for t in r.tools])


_SHELLS: dict[type[Any], Callable[[Any], Any]] = {
    ExecutionStarted: _started,
    ModelResponded: _responded,
    ModelCallFailed: lambda r: replace(r, error=""),
    ToolFinished: lambda r: replace(r, result=None, error=_gone(r.error)),
    ExecutionSuspended: _suspended,
    DecisionRecorded: lambda r: replace(r, reason=_gone(r.reason)),
    InputSubmitted: lambda r: replace(r, text=""),
    InputRequested: lambda r: replace(r, question=""),
    DriftAccepted: lambda r: replace(r, changes=[], config=ConfigFingerprint()),
    OutputRejected: lambda r: replace(r, error="", prompt=""),
    ExecutionCompleted: lambda r: replace(r, answer="", output=None, tally=_tally(r.tally)),
    ExecutionFailed: lambda r: replace(r, message=""),
    ExecutionCancelled: lambda r: replace(r, reason="", tally=_tally(r.tally)),
    MCPCatalogRecorded: _catalog,
}


def shell_of(record: PlainRecord) -> PlainRecord:
    """``record`` with its content taken out (a record with no content is its own shell)."""
    make = _SHELLS.get(type(record))
    return record if make is None else make(record)


def unsealed_shell(record: Record) -> Record:
    """The shell of a sealed record, or the record itself when it is not sealed."""
    return record.shell if isinstance(record, SealedRecord) else record
