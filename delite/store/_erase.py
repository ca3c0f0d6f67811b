"""Deleting executions: what every store checks before it removes one, and what it reports.

A store removes an execution with :meth:`~delite.store.Store.delete_execution`: its log and everything kept
for it (derived files or rows, the listing's entry, idempotency keys bound to it, a pending cancel request).
Only a finished execution (completed, failed or cancelled) that no live process holds is removed unless the
caller forces it; :func:`check_deletable` is that rule, shared by every store (the toy store of the contract
tests included), and it runs before anything is removed.
"""

from __future__ import annotations

import msgspec

from delite.errors import ExecutionAlreadyClaimedError, ExecutionNotFinishedError, UsageError
from delite.state._model import Status

__all__ = ["FINISHED", "Deleted", "Refused", "check_deletable", "check_force", "refusal"]

FINISHED = frozenset({Status.COMPLETED.value, Status.FAILED.value, Status.CANCELLED.value})
"""The statuses an execution may be deleted in without ``force``."""


class Deleted(msgspec.Struct, frozen=True, kw_only=True):
    """One execution a deletion removed (or, in a dry run, would remove)."""

    id: str
    status: str
    """Its status when it was removed (``unreadable`` when its log could not be read: only with ``force``)."""
    bytes: int | None = None
    """The bytes it freed where the store knows them (log, snapshot, key files; a database's payloads)."""


class Refused(msgspec.Struct, frozen=True, kw_only=True):
    """One execution a deletion left in place, and why (nothing of it was removed)."""

    id: str
    status: str
    reason: str


def check_force(force: object) -> bool:
    """``force`` as a bool, or a :class:`UsageError` (``force="no"`` must not force)."""
    if not isinstance(force, bool):
        raise UsageError(f"force must be True or False, not {force!r}")
    return force


def check_deletable(execution_id: str, status: str, *, claimed: bool, force: bool) -> None:
    """Refuse to delete an execution that is not finished or that a live process holds, unless ``force``.

    Raises:
        ExecutionAlreadyClaimedError: a live process holds the execution (and not ``force``).
        ExecutionNotFinishedError: its status is not completed, failed or cancelled (and not ``force``).
    """
    if force:
        return
    if claimed:
        raise ExecutionAlreadyClaimedError(execution_id, status, "it is not deleted while a process holds it")
    if status not in FINISHED:
        raise ExecutionNotFinishedError(execution_id, status)


def refusal(execution_id: str, error: Exception) -> Refused:
    """The :class:`Refused` entry for an execution whose deletion raised ``error`` (a state error)."""
    status = str(getattr(error, "current_status", "") or "")
    return Refused(id=execution_id, status=status, reason=str(error))
