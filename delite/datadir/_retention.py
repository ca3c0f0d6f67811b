"""Retention and erasure on the read side: ``DataDir.gc`` (old finished executions) and ``DataDir.delete`` (one).

Both choose what to delete from one listing of the store, check every execution before anything is removed,
and then delete through the store seam (:meth:`~delite.store.Store.delete_execution`), which checks again
under the execution's claim and removes each one whole or not at all. Forks of a deleted execution are copies
and are left in place; the report lists them (and, for ``delete`` without children, the sub-agents' executions
left behind), so that an erasure request can be followed up.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Iterable
from datetime import timedelta
from typing import TYPE_CHECKING

import msgspec

from delite.errors import ExecutionNotFoundError, ExecutionStateError, UsageError
from delite.store._erase import FINISHED, Deleted, Refused, check_deletable, check_force, refusal
from delite.store._ids import validate_execution_id
from delite.store._query import expand_statuses
from delite.store._views import ExecutionSummary

if TYPE_CHECKING:
    from delite.store._base import Store

__all__ = ["RetentionReport", "check_delete", "check_gc", "delete_tree", "gc", "parse_duration"]

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_DURATION = re.compile(r"(\d+(?:\.\d+)?)([smhdw])")


class RetentionReport(msgspec.Struct, frozen=True, kw_only=True):
    """What :meth:`~delite.DataDir.gc` or :meth:`~delite.DataDir.delete` removed (a dry run: would remove)."""

    dry_run: bool = False
    deleted: list[Deleted] = msgspec.field(default_factory=list)
    """The executions removed (in a dry run, those that would be), each with the bytes it freed if known."""
    refused: list[Refused] = msgspec.field(default_factory=list)
    """Executions chosen but left in place, and why (a live process held one, or it started running again)."""
    forks: list[str] = msgspec.field(default_factory=list)
    """Executions forked from a deleted one: copies of its records up to the fork, left in place."""
    children: list[str] = msgspec.field(default_factory=list)
    """Sub-agents' executions of a deleted one left in place (``delete`` without ``children``)."""
    cutoff: float | None = None
    """``gc``: executions whose last record is older than this time (seconds since the epoch) were chosen."""

    @property
    def executions(self) -> int:
        """How many executions were removed (would be, in a dry run)."""
        return len(self.deleted)

    @property
    def bytes(self) -> int:
        """The bytes freed, summed over the executions whose store knows them."""
        return sum(d.bytes or 0 for d in self.deleted)

    def to_json(self) -> dict[str, object]:
        """The report as JSON-ready builtins, with ``executions`` and ``bytes`` added."""
        out: dict[str, object] = msgspec.to_builtins(self)
        out["executions"] = self.executions
        out["bytes"] = self.bytes
        return out


def parse_duration(value: object) -> float:
    """A duration as seconds: a number of seconds, a ``timedelta``, or text such as ``30d``, ``12h``, ``90m``, ``1w2d``.

    Raises:
        UsageError: anything else, or a negative or infinite duration.
    """
    if isinstance(value, timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value)
    elif isinstance(value, str):
        text = value.strip().lower()
        parts = _DURATION.findall(text)
        if not text or "".join(n + u for n, u in parts) != text:
            raise UsageError(
                f"a duration is a number with a unit (s, m, h, d or w), such as 30d, 12h or 90m, not {value!r:.80}"
            )
        seconds = sum(float(n) * _UNITS[u] for n, u in parts)
    else:
        raise UsageError(f"older_than must be seconds, a timedelta or text such as '30d', not {type(value).__name__}")
    if not math.isfinite(seconds) or seconds < 0:
        raise UsageError(f"a duration must be 0 or more, not {value!r:.80}")
    return seconds


def _statuses(statuses: str | Iterable[str] | None, *, force: bool) -> frozenset[str]:
    """The statuses ``gc`` chooses from: finished ones by default; others only with ``force``."""
    if statuses is None:
        return FINISHED
    wanted = frozenset(expand_statuses(statuses))
    if not wanted:
        raise UsageError("statuses must name at least one status (or be None for completed, failed, cancelled)")
    unfinished = sorted(wanted - FINISHED)
    if unfinished and not force:
        raise UsageError(
            f"only finished executions (completed, failed, cancelled) are deleted without force, not {unfinished}"
        )
    return wanted


def _forks(summaries: Iterable[ExecutionSummary], deleted: set[str]) -> list[str]:
    return sorted(s.id for s in summaries if s.forked_from in deleted and s.id not in deleted)


def gc(
    store: Store,
    summaries: list[ExecutionSummary],
    *,
    older_than: float,
    statuses: str | Iterable[str] | None,
    dry_run: bool,
    force: bool,
    now: float | None = None,
) -> RetentionReport:
    """Delete the executions among ``summaries`` (a listing of every one) whose last record is older than asked.

    Arguments are checked by :meth:`DataDir.gc`, which documents them.
    """
    wanted = _statuses(statuses, force=force)
    cutoff = (time.time() if now is None else now) - older_than
    chosen = [s for s in summaries if s.status in wanted and s.updated_at < cutoff]
    chosen.sort(key=lambda s: (s.updated_at, s.id))
    if dry_run:
        deleted, refused = _would_delete(store, chosen, force=force)
    else:
        deleted, refused = store.delete_executions([s.id for s in chosen], force=force)
    gone = {d.id for d in deleted}
    return RetentionReport(
        dry_run=dry_run, deleted=deleted, refused=refused, forks=_forks(summaries, gone), cutoff=cutoff
    )


def _would_delete(store: Store, chosen: list[ExecutionSummary], *, force: bool) -> tuple[list[Deleted], list[Refused]]:
    deleted: list[Deleted] = []
    refused: list[Refused] = []
    for s in chosen:
        try:
            check_deletable(s.id, s.status, claimed=not force and store.is_claimed(s.id), force=force)
        except ExecutionStateError as e:
            refused.append(refusal(s.id, e))
            continue
        deleted.append(Deleted(id=s.id, status=s.status, bytes=s.log_bytes or None))
    return deleted, refused


def delete_tree(
    store: Store,
    summaries: list[ExecutionSummary],
    execution_id: str,
    *,
    children: bool,
    force: bool,
    where: str | None = None,
) -> RetentionReport:
    """Delete one execution (and, with ``children``, its sub-agents' executions, deepest first).

    Every execution is checked first: if one is refused, nothing is removed. Arguments are checked by
    :meth:`DataDir.delete`, which documents them.
    """
    by_id = {s.id: s for s in summaries}
    root = by_id.get(execution_id)
    if root is None:
        raise ExecutionNotFoundError(execution_id, where)
    kids: dict[str, list[ExecutionSummary]] = {}
    for s in summaries:
        if s.parent_id is not None:
            kids.setdefault(s.parent_id, []).append(s)
    order: list[ExecutionSummary] = []
    seen: set[str] = set()

    def visit(s: ExecutionSummary) -> None:  # post-order: sub-agents before the execution that started them
        if s.id in seen:
            return
        seen.add(s.id)
        if children:
            for kid in sorted(kids.get(s.id, []), key=lambda k: (k.created_at, k.id)):
                visit(kid)
        order.append(s)

    visit(root)
    for s in order:
        check_deletable(s.id, s.status, claimed=not force and store.is_claimed(s.id), force=force)
    deleted = [store.delete_execution(s.id, force=force) for s in order]
    gone = {d.id for d in deleted}
    left = sorted(k.id for d in gone for k in kids.get(d, []) if k.id not in gone)
    return RetentionReport(deleted=deleted, forks=_forks(summaries, gone), children=left)


def check_delete(execution_id: object, *, children: object, force: object) -> str:
    """Check :meth:`DataDir.delete`'s arguments before anything is read; returns the id."""
    eid = validate_execution_id(execution_id)
    if not isinstance(children, bool):
        raise UsageError(f"children must be True or False, not {children!r}")
    check_force(force)
    return eid


def check_gc(*, dry_run: object, force: object) -> None:
    """Check :meth:`DataDir.gc`'s flags before anything is read."""
    if not isinstance(dry_run, bool):
        raise UsageError(f"dry_run must be True or False, not {dry_run!r}")
    check_force(force)
