"""A pending call takes exactly one answer: which calls a submission may answer, decided from the folded state.

Every kind of answer (an approval or rejection, a client tool's result, a human's answer, an in-doubt
resolution) goes through :func:`select`, called while the execution's claim is held, before anything is
written. Two submissions for the same call, from one process or racing ones, therefore see each other: the
first is recorded, the second raises :class:`~delite.errors.AlreadyDecidedError` (409) and writes nothing. A
batch naming any call that already has its answer is refused whole.
"""

from __future__ import annotations

from collections.abc import Sequence

from delite.errors import AlreadyDecidedError, InvalidToolResultError
from delite.state._model import ExecutionState
from delite.state._ready import answered, unanswered

__all__ = ["NOUNS", "answered", "select", "unanswered"]

NOUNS = {
    "approval": "call",
    "contract": "call",
    "client_tool": "pending client call",
    "human_input": "pending question",
    "in_doubt": "in-doubt call",
}
"""How a refusal names a call, by the kind of suspension answered."""

RECORDED = "recorded; the execution goes on when it is resumed"
"""Said of an answer that is in the log of an execution still suspended (recorded only, not yet resumed)."""


def select(
    execution_id: str, state: ExecutionState, kinds: tuple[str, ...], ids: Sequence[str], *, every: bool = False
) -> list[str]:
    """The calls of this log a submission answers, or the error that refuses the whole submission.

    ``state`` is the execution's folded state, read under its claim and found suspended for one of ``kinds``.
    ``ids`` are call ids of this log. With ``every``, they are candidates (the calls a suspension lists) and
    those that already have their answer, or no longer wait for one, are left out instead of refused.

    Raises:
        InvalidToolResultError: an id names no call of this execution (400).
        AlreadyDecidedError: an id names a call that already has its answer or no longer waits for one (409).
    """
    reason = state.suspend_reason
    kind = reason.kind if reason is not None else ""
    pending = {c for c in reason.confirmation_ids if "/" not in c} if reason is not None else set()
    calls = state.calls
    if every:
        return [c for c in ids if c in pending and not answered(calls[c], kind)]
    unknown = sorted(c for c in ids if c not in calls)
    if unknown:
        raise InvalidToolResultError(execution_id, f"no {NOUNS.get(kinds[0], 'call')} with id {', '.join(unknown)}")
    done = sorted(c for c in ids if c in pending and answered(calls[c], kind))
    if done:
        detail = f"call {', '.join(done)} already has its answer ({RECORDED})"
        raise AlreadyDecidedError(execution_id, state.status.value, detail)
    gone = sorted(c for c in ids if c not in pending)
    if gone:
        raise AlreadyDecidedError(execution_id, state.status.value, f"call {', '.join(gone)} is not pending")
    return list(ids)
