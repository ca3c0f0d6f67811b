"""Whether an execution waits on nobody: the answers a suspension waits for, and what a worker may advance.

Pure functions of the folded state, shared by the engine (a pending call takes exactly one answer), the
stores (which executions a worker may take on) and the read API.
"""

from __future__ import annotations

from delite.state._model import CallState, ExecutionState, Status

__all__ = ["ANSWERABLE", "advanceable", "answered", "unanswered"]

ANSWERABLE = frozenset({"approval", "contract", "client_tool", "human_input", "in_doubt"})
"""Suspension kinds that an answer recorded by any process ends (a budget needs a new limit instead)."""


def answered(cs: CallState, kind: str) -> bool:
    """Whether the call already has the answer a suspension of this ``kind`` waits for.

    A result (whoever gave it) answers every kind; otherwise an approval waits for a decision, a question for
    the human's text, an in-doubt call for a result or a request to run it again.
    """
    if cs.finished is not None:
        return True
    if kind in ("approval", "contract"):
        return cs.decision is not None
    if kind == "human_input":
        return cs.human_input is not None
    if kind == "in_doubt":
        return cs.rerun_requested
    return False


def unanswered(state: ExecutionState) -> list[str]:
    """This log's calls that its suspension lists and that have no answer yet, in the listed order."""
    reason = state.suspend_reason
    if reason is None:
        return []
    ids = [c for c in reason.confirmation_ids if "/" not in c]
    found = [state.call(c) for c in ids]
    if any(cs is None for cs in found):
        raise KeyError(ids[found.index(None)])  # as state.calls[c] did: a suspension names calls the log holds
    return [c for c, cs in zip(ids, found, strict=True) if cs is not None and not answered(cs, reason.kind)]


def advanceable(state: ExecutionState) -> bool:
    """Whether a worker may advance the execution now, with nobody asking it to.

    True for a ``running`` execution that some process started (a fork nobody resumed is not), and for one
    suspended on calls of its own that all have their answers now (recorded by any process). A suspension
    that waits on a sub-agent's calls (``child/call`` ids), on a budget, or on nothing is not: a worker
    never starts what nobody asked to run.
    """
    if state.dormant:
        return False
    if state.status is Status.RUNNING:
        return True
    reason = state.suspend_reason
    if not state.status.is_suspended or reason is None or reason.kind not in ANSWERABLE:
        return False
    ids = reason.confirmation_ids
    if not ids or any("/" in c for c in ids):
        return False
    return not unanswered(state)
