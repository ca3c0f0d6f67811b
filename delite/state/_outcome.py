"""What an execution came to, in a few fields: the part of the folded state a :class:`Response` is built from.

An :class:`Outcome` is small and fixed in size whatever the length of the run, so a store may keep it next to
a finished execution's log (see :mod:`delite.store._snapshot`) and answer a later ``agent.run`` on that
execution without decoding and folding the whole log.
"""

from collections.abc import Sequence
from typing import Any

import msgspec

from delite.log.records import (
    TALLY_VERSION,
    AnyRecord,
    ExecutionCancelled,
    ExecutionCompleted,
    ExecutionStarted,
    SuspendReason,
    Tally,
    Usage,
)
from delite.state._fold import fold_summary
from delite.state._model import ExecutionState, Status, Totals

__all__ = ["Outcome", "finished_outcome", "outcome", "tallied_outcome", "tally_of"]


class Outcome(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """An execution's status and result, its totals, and the input it was started with.

    Derived data: :func:`outcome` computes it from an :class:`ExecutionState`; it is never a source of truth.
    """

    execution_id: str
    status: Status
    input: str = ""
    answer: str | None = None
    output: Any = None
    error_type: str | None = None
    error_message: str | None = None
    suspend_reason: SuspendReason | None = None
    usage: Usage = msgspec.field(default_factory=Usage)
    steps: int = 0
    records: int = 0


def _usage(t: Totals) -> Usage:
    """An execution's totals as one :class:`Usage` (a cost of None: not known)."""
    return Usage(
        input_tokens=t.input_tokens,
        output_tokens=t.output_tokens,
        cached_input_tokens=t.cached_input_tokens,
        cache_write_tokens=t.cache_write_tokens,
        reasoning_tokens=t.reasoning_tokens,
        cost=str(t.cost) if t.cost_known else None,
        known=t.usage_known,
    )


def outcome(state: ExecutionState) -> Outcome:
    """The outcome of a folded execution (pure)."""
    return Outcome(
        execution_id=state.execution_id,
        status=state.status,
        input=state.input,
        answer=state.answer,
        output=state.output,
        error_type=state.error_type,
        error_message=state.error_message,
        suspend_reason=state.suspend_reason,
        usage=_usage(state.totals),
        steps=state.steps,
        records=state.records,
    )


def tally_of(state: ExecutionState, log_sha256: str | None) -> Tally:
    """The tally of a terminal record appended right after every record ``state`` has folded.

    ``log_sha256``: the hash that binds it to the log's bytes, from the store (None: it keeps none; see
    :class:`~delite.log.records.Tally`).
    """
    return Tally(
        records=state.records + 1,
        steps=state.steps,
        version=TALLY_VERSION,
        llm_calls=state.totals.llm_calls,
        tool_calls=state.calls_count(),
        models=state.models(),
        usage=_usage(state.totals),
        error_type=state.error_type,
        error_message=state.error_message,
        log_sha256=log_sha256,
    )


def tallied_outcome(first: AnyRecord, last: AnyRecord) -> Outcome | None:
    """The outcome of a finished log from its first record and the tally of its terminal one, else None.

    Equal to :func:`finished_outcome` of the whole log when the tally is the one the engine wrote for it; the
    caller first checks the tally's hash against the log's bytes (see :class:`~delite.log.records.Tally`).
    """
    if not isinstance(first, ExecutionStarted) or not isinstance(last, ExecutionCompleted | ExecutionCancelled):
        return None
    tally = last.tally
    if tally is None:
        return None
    completed = last if isinstance(last, ExecutionCompleted) else None
    return Outcome(
        execution_id=first.execution_id,
        status=Status.CANCELLED if completed is None else Status.COMPLETED,
        input=first.input,
        answer=None if completed is None else completed.answer,
        output=None if completed is None else completed.output,
        error_type=tally.error_type,
        error_message=tally.error_message,
        usage=tally.usage,
        steps=tally.steps,
        records=tally.records,
    )


def finished_outcome(records: Sequence[AnyRecord]) -> Outcome | None:
    """The outcome of a finished log (its last record a completion or a cancellation), else None.

    Computed by :func:`~delite.state._fold.fold_summary`, which checks every record as the full fold does but
    builds no conversation, so it equals ``outcome(fold(records))`` at about half the cost. A log whose last
    record is sealed is not recognised here (None): its outcome is the full fold's, as before.
    """
    if not records or not isinstance(records[-1], ExecutionCompleted | ExecutionCancelled):
        return None
    return outcome(fold_summary(records))
