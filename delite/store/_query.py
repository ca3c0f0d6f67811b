"""The query interface: questions that span executions, answered by every store.

:class:`ExecutionIndex` is the second half of the store seam (the first is :class:`~delite.store.LogStore`,
one execution's records). It lists, filters and pages executions, finds work (running executions with no
live owner), carries cancel requests and binds run-level idempotency keys. The file store answers it from
its SQLite listing index (derived from the logs, never trusted over them), the memory store from its logs,
and a database store from its tables.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import msgspec

from delite._checks import check_text
from delite.errors import UsageError
from delite.state._model import Status
from delite.store._ids import validate_execution_id
from delite.store._views import ExecutionSummary, Page

__all__ = [
    "WAITING",
    "ExecutionIndex",
    "ListingQuery",
    "Progress",
    "check_agents",
    "check_binding",
    "check_ids",
    "check_key",
    "check_listing",
    "expand_statuses",
]

Progress = Callable[[int, int], None]
"""Called as ``progress(done, total)`` during long work (indexing or verifying many logs)."""

WAITING = "waiting"
"""A status filter that matches every suspended status (``waiting_*`` and ``suspended``)."""

_SUSPENDED = tuple(s.value for s in Status if s.is_suspended)
_encode = msgspec.json.Encoder().encode
_VALID = frozenset({s.value for s in Status} | {"unreadable", "empty"})


def expand_statuses(status: str | Iterable[str] | None) -> list[str]:
    """The status values a ``status`` filter stands for (``waiting`` is every suspended status).

    Raises:
        UsageError: a status that no execution can have.
    """
    if status is None:
        return []
    if not isinstance(status, str | Iterable):
        raise UsageError(f"status must be a status name or several, not {type(status).__name__}")
    wanted = [status] if isinstance(status, str) else list(status)
    out: list[str] = []
    for s in wanted:
        if not isinstance(s, str):
            raise UsageError(f"a status is a string such as 'running' or 'waiting', not {s!r}")
        if s == WAITING:
            out.extend(_SUSPENDED)
        elif s in _VALID:
            out.append(s)
        else:
            choices = ", ".join(sorted([*_VALID, WAITING]))
            raise UsageError(f"unknown status {s!r} (choose from {choices})")
    return out


def check_listing(
    *,
    limit: int | None,
    offset: int,
    metadata: Mapping[str, Any] | None,
    since: float | None = None,
    until: float | None = None,
    agent: str | None = None,
    parent: str | None = None,
) -> None:
    """Refuse a listing's bad arguments the same way in every store (a :class:`UsageError`)."""
    for name, value in (("since", since), ("until", until)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
            raise UsageError(f"{name} must be a time in seconds since the epoch, not {value!r}")
    if metadata is not None and not isinstance(metadata, Mapping):
        raise UsageError(f"metadata must be a mapping of keys to values, not {type(metadata).__name__}")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 0):
        raise UsageError("limit must be 0 or more")
    if isinstance(offset, bool) or not isinstance(offset, int) or offset < 0:
        raise UsageError("offset must be 0 or more")
    for key, value in (metadata or {}).items():
        if not isinstance(key, str) or '"' in key or "\\" in key:
            raise UsageError(f"metadata key {key!r} may not contain quotes or backslashes")
        try:
            _encode(value)
        except (TypeError, ValueError, OverflowError) as e:
            raise UsageError(f"metadata value for {key!r} is not a JSON value: {e}") from None
    for name, text in (("agent", agent), ("parent", parent)):
        if text is not None:
            check_text(name, text)


class ListingQuery(msgspec.Struct, kw_only=True):
    """A listing's filters and page, checked when built: what :meth:`ExecutionIndex.query_executions` answers.

    The fields mean what the arguments of :meth:`ExecutionIndex.list_executions` mean. A store turns it into
    its own query (SQL for the file store's index and a database) or filters summaries with :meth:`page`.

    Raises:
        UsageError: when built with an argument no listing can take (see :func:`check_listing`).
    """

    status: str | Iterable[str] | None = None
    """As given; once built, the status values it stands for (``waiting`` expanded), sorted."""
    agent: str | None = None
    metadata: Mapping[str, Any] | None = None
    parent: str | None = None
    since: float | None = None
    until: float | None = None
    limit: int | None = 50
    offset: int = 0

    def __post_init__(self) -> None:
        """Refuse bad arguments before any store reads anything."""
        check_listing(
            limit=self.limit,
            offset=self.offset,
            metadata=self.metadata,
            since=self.since,
            until=self.until,
            agent=self.agent,
            parent=self.parent,
        )
        self.status = tuple(sorted(set(expand_statuses(self.status))))

    @property
    def statuses(self) -> list[str]:
        """The status values wanted (``waiting`` expanded), sorted; empty: any."""
        return list(self.status or ())

    def matches(self, s: ExecutionSummary) -> bool:
        """Whether a summary passes every filter (a metadata value of None matches nothing)."""
        return self._passes(s, set(self.statuses))

    def _passes(self, s: ExecutionSummary, wanted: set[str]) -> bool:
        if wanted and s.status not in wanted:
            return False
        if self.agent is not None and s.agent_id != self.agent:
            return False
        if self.parent is not None and s.parent_id != self.parent:
            return False
        if any(v is None or k not in s.metadata or s.metadata[k] != v for k, v in (self.metadata or {}).items()):
            return False
        if self.since is not None and s.created_at < self.since:
            return False
        return self.until is None or s.created_at < self.until

    def page(self, summaries: Iterable[ExecutionSummary]) -> Page:
        """The page of the matching summaries among ``summaries``, newest first (by creation time, then id)."""
        wanted = set(self.statuses)
        found = [s for s in summaries if self._passes(s, wanted)]
        found.sort(key=lambda s: (s.created_at, s.id), reverse=True)
        stop = None if self.limit is None else self.offset + self.limit
        return Page(items=found[self.offset : stop], total=len(found), offset=self.offset, limit=self.limit)


def check_key(key: object) -> str:
    """Return an idempotency key if it is a non-empty string, else raise :class:`UsageError`."""
    if not isinstance(key, str) or not key:
        raise UsageError(f"an idempotency key is a non-empty string, not {key!r}")
    return check_text("an idempotency key", key)


def check_binding(key: object, execution_id: object, fingerprint: object) -> str:
    """Check :meth:`ExecutionIndex.bind_key`'s arguments before anything is written; returns the key.

    Raises:
        UsageError: the key is not a non-empty string, or the fingerprint is not a string.
        InvalidExecutionIdError: the execution id is not one (see :func:`~delite.store.validate_execution_id`).
    """
    checked = check_key(key)
    validate_execution_id(execution_id)
    if not isinstance(fingerprint, str):
        raise UsageError(f"an idempotency key's fingerprint is a string, not {fingerprint!r}")
    check_text("an idempotency key's fingerprint", fingerprint)
    return checked


def check_agents(agent: object) -> frozenset[str] | None:
    """The agent ids a work query names (one id, or a collection of them; None for all), or a :class:`UsageError`."""
    if agent is None:
        return None
    if isinstance(agent, str):
        agents = [agent]
    elif isinstance(agent, bytes) or not isinstance(agent, Iterable):
        raise UsageError(f"agent must be an agent id or a collection of them, not {type(agent).__name__}")
    else:
        agents = list(agent)
    for a in agents:
        if not isinstance(a, str) or not a:
            raise UsageError(f"an agent id is a non-empty string, not {a!r}")
        check_text("an agent id", a)
    if not agents:
        raise UsageError("agent must name at least one agent id (or be None for every agent)")
    return frozenset(agents)


def check_ids(execution_ids: object) -> list[str]:
    """Check a batch of execution ids (:meth:`ExecutionIndex.cancels_requested`) before anything is read.

    Raises:
        UsageError: ``execution_ids`` is a single string or not a collection.
        InvalidExecutionIdError: one of them is not an execution id.
    """
    if isinstance(execution_ids, str | bytes) or not isinstance(execution_ids, Iterable):
        raise UsageError(f"execution_ids must be a collection of execution ids, not {execution_ids!r}")
    return [validate_execution_id(eid) for eid in execution_ids]


class ExecutionIndex(abc.ABC):
    """Questions across executions: list and page them, find work, cancel requests, idempotency keys.

    Listings are snapshots: an execution may change the moment after it was listed. Every method raises
    :class:`~delite.errors.UsageError` for bad arguments before it reads anything.
    """

    @abc.abstractmethod
    def list_ids(self) -> list[str]:
        """Every execution id, sorted (generated ids sort by creation time)."""

    def list_executions(
        self,
        *,
        status: str | Iterable[str] | None = None,
        agent: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        parent: str | None = None,
        since: float | None = None,
        until: float | None = None,
        limit: int | None = 50,
        offset: int = 0,
    ) -> Page:
        """One page of the matching executions' summaries, newest first (by creation time, then id).

        Args:
            status: one status or several (``Status`` values, ``unreadable``, ``empty``, or ``waiting``).
            agent: only executions started by this ``agent_id``.
            metadata: only executions whose metadata has each of these keys with this (non-null) value.
            parent: only the sub-agents' executions started by this execution.
            since: only executions created at or after this time (seconds since the epoch).
            until: only executions created before this time.
            limit: at most this many (None for all).
            offset: skip this many matching executions first (``total`` on the page counts them all).
        """
        return self.query_executions(
            ListingQuery(
                status=status,
                agent=agent,
                metadata=metadata,
                parent=parent,
                since=since,
                until=until,
                limit=limit,
                offset=offset,
            )
        )

    @abc.abstractmethod
    def query_executions(self, query: ListingQuery) -> Page:
        """The page of executions a checked :class:`ListingQuery` asks for: what a store implements.

        :meth:`list_executions` checks its arguments into a query and calls this; a store answers it from
        its own index (newest first, by creation time then id; ``total`` counts every match).
        """

    @abc.abstractmethod
    def recoverable(self, *, agent: str | None = None, limit: int | None = None) -> list[ExecutionSummary]:
        """Executions left running with no live owner (a process died advancing them), oldest first.

        A fork nobody has resumed is not one of them (no process was advancing it). Sub-agents' executions
        are included (``parent_id`` set): their parent's tool call resumes them, so a Runtime skips them.
        """

    @abc.abstractmethod
    def runnable(self, *, agent: str | Iterable[str] | None = None, limit: int | None = None) -> list[ExecutionSummary]:
        """Top-level executions a worker may take on by itself now, oldest first, nobody holding them.

        Those whose summary is ``advanceable``: running ones (newly enqueued, or left by a dead owner; a fork
        nobody resumed is not), and suspended ones whose every listed call of their own has its answer
        (recorded by any process). Never a sub-agent's execution (its parent drives it), an unanswered or
        budget suspension. ``agent`` is one agent id or a collection of them (None: every agent).

        A snapshot: a worker still has to win the claim (:meth:`~delite.store.LogStore.claim`), and loses
        it to another worker with :class:`~delite.errors.ExecutionAlreadyClaimedError`.
        """

    @abc.abstractmethod
    def request_cancel(self, execution_id: str) -> None:
        """Ask whoever advances the execution to cancel it at its next step boundary."""

    @abc.abstractmethod
    def cancel_requested(self, execution_id: str) -> bool:
        """Whether a cancel was requested and not yet carried out (cheap: checked at every step)."""

    def cancels_requested(self, execution_ids: Iterable[str]) -> set[str]:
        """Which of these executions have a cancel pending: one question for a run and all its ancestors.

        The default asks :meth:`cancel_requested` once per id; a store answers it in one round trip (and
        checks the ids first with :func:`check_ids`).
        """
        return {eid for eid in check_ids(execution_ids) if self.cancel_requested(eid)}

    @abc.abstractmethod
    def clear_cancel(self, execution_id: str) -> None:
        """Forget a cancel request once it is recorded in the log."""

    @abc.abstractmethod
    def bind_key(self, key: str, execution_id: str, fingerprint: str) -> tuple[str, str]:
        """Bind a run-level idempotency key to an execution, once and for all.

        Returns the binding that holds, ``(execution_id, fingerprint)``: the one given if the key was new, the
        earlier one otherwise. Atomic across processes: of two callers racing with the same key, one wins and
        both get its binding. A store checks the arguments with :func:`check_binding` before it writes.
        """

    @abc.abstractmethod
    def lookup_key(self, key: str) -> tuple[str, str] | None:
        """The binding of an idempotency key, ``(execution_id, fingerprint)``, or None if it is not bound."""
