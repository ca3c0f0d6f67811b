"""What the list and usage pages ask of the store: the CLI's filters and paging, search, usage per agent and day.

Every filter is the one ``delite status`` takes (``status``, ``agent``, ``meta``, ``since``, ``until``,
``parent``, ``limit``, ``offset``), read from a query string; bad values are a
:class:`~delite.errors.UsageError` (400) before the store is asked anything.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

import click

from delite.datadir import DataDir, ExecutionSummary, Page
from delite.errors import DeliteError, UsageError
from delite_cli._target import STATUSES

__all__ = ["STATUSES", "Filters", "Usage", "UsageRow", "list_page", "parse_filters", "select", "usage"]

MAX_LIMIT = 500
"""The most executions one page shows."""


@dataclass(frozen=True)
class Filters:
    """A listing's filters, paging and search text, as parsed from a query string."""

    statuses: tuple[str, ...] = ()
    agent: str | None = None
    meta: tuple[str, ...] = ()
    since: str | None = None
    until: str | None = None
    parent: str | None = None
    q: str | None = None
    limit: int = 50
    offset: int = 0
    metadata: dict[str, Any] = field(default_factory=dict)
    since_at: float | None = None
    until_at: float | None = None

    def query(self, **changes: Any) -> list[tuple[str, str]]:
        """The query string's pairs for these filters, with ``changes`` applied (for paging links)."""
        values: dict[str, Any] = {
            "status": self.statuses,
            "agent": self.agent,
            "meta": self.meta,
            "since": self.since,
            "until": self.until,
            "parent": self.parent,
            "q": self.q,
            "limit": self.limit,
            "offset": self.offset,
        }
        values.update(changes)
        pairs: list[tuple[str, str]] = []
        for key, value in values.items():
            if value is None or value in ("", ()):
                continue
            if isinstance(value, tuple):
                pairs.extend((key, str(v)) for v in value)
            elif not (key == "offset" and value == 0):
                pairs.append((key, str(value)))
        return pairs


def _one(items: Sequence[tuple[str, str]], key: str) -> str | None:
    found = [v for k, v in items if k == key]
    if len(found) > 1:
        raise UsageError(f"give {key} once, not {len(found)} times")
    value = found[0].strip() if found else None
    return value or None


def _int(items: Sequence[tuple[str, str]], key: str, default: int, *, top: int | None = None) -> int:
    raw = _one(items, key)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise UsageError(f"{key} must be a whole number, not {raw[:40]!r}") from None
    if value < 0 or (top is not None and value > top):
        raise UsageError(f"{key} must be from 0 to {top if top is not None else 'any'}, not {value}")
    return value


def parse_filters(items: Sequence[tuple[str, str]]) -> Filters:
    """Read the listing filters from a query string's ``(key, value)`` pairs.

    Raises:
        UsageError: an unknown status, a bad time, ``meta`` that is not KEY=VALUE, a bad limit or offset.
    """
    from delite_cli._read import parse_meta, parse_time

    statuses = tuple(v for k, v in items if k == "status" and v)
    for s in statuses:
        if s not in STATUSES:
            raise UsageError(f"unknown status {s[:40]!r}; one of {', '.join(STATUSES)}")
    meta = tuple(v for k, v in items if k == "meta" and v.strip())
    since, until = _one(items, "since"), _one(items, "until")
    try:
        metadata = parse_meta(meta)
        since_at, until_at = parse_time(since), parse_time(until)
    except click.BadParameter as e:
        raise UsageError(e.format_message()) from e
    return Filters(
        statuses=statuses,
        agent=_one(items, "agent"),
        meta=meta,
        since=since,
        until=until,
        parent=_one(items, "parent"),
        q=_one(items, "q"),
        limit=_int(items, "limit", 50, top=MAX_LIMIT),
        offset=_int(items, "offset", 0),
        metadata=metadata,
        since_at=since_at,
        until_at=until_at,
    )


def _matches(s: ExecutionSummary, needle: str) -> bool:
    """Whether the search text is in the id, agent, input, answer, error or metadata (keys and values)."""
    fields = (s.id, s.agent_id, s.input, s.answer or "", s.error or "", json.dumps(s.metadata, ensure_ascii=False))
    return any(needle in f.casefold() for f in fields)


def _args(data: DataDir, f: Filters) -> dict[str, Any]:
    return {
        "status": f.statuses or None,
        "agent": f.agent,
        "metadata": f.metadata or None,
        "since": f.since_at,
        "until": f.until_at,
        "parent": data.resolve(f.parent) if f.parent else None,
    }


def select(data: DataDir, f: Filters) -> list[ExecutionSummary]:
    """Every execution these filters and this search text select (paging ignored), in the listing's order.

    Search text puts the execution it names (an id, or a unique prefix or suffix of one) first, then every
    execution whose id, agent, input, answer, error or metadata holds the text (case-insensitive).
    """
    everything = data.list(**_args(data, f), limit=None).items
    if not f.q:
        return everything
    named: str | None = None
    try:
        named = data.resolve(f.q)
    except DeliteError:
        named = None
    needle = f.q.casefold()
    found = [s for s in everything if s.id == named]
    found += [s for s in everything if s.id != named and _matches(s, needle)]
    return found


def list_page(data: DataDir, f: Filters) -> Page:
    """One page of executions, newest first, for these filters and search text.

    Without search text this is one indexed query (``DataDir.list``); with it, see :func:`select`.
    """
    if not f.q:
        return data.list(**_args(data, f), limit=f.limit, offset=f.offset)
    found = select(data, f)
    return Page(items=found[f.offset : f.offset + f.limit], total=len(found), offset=f.offset, limit=f.limit)


@dataclass
class UsageRow:
    """Usage summed over a group of executions (one agent, or one day)."""

    key: str
    executions: int = 0
    steps: int = 0
    llm_calls: int = 0
    tool_calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    total_tokens: int = 0
    cost: Decimal = Decimal(0)
    unpriced: int = 0
    """Executions (of this group) with at least one call whose cost is unknown: ``cost`` leaves them out."""

    def add(self, s: ExecutionSummary) -> None:
        """Count one execution."""
        self.executions += 1
        self.steps += s.steps
        self.llm_calls += s.llm_calls
        self.tool_calls += s.tool_calls
        self.input_tokens += s.tokens.input + s.tokens.cached_input + s.tokens.cache_write
        self.output_tokens += s.tokens.output
        self.total_tokens += s.tokens.total
        try:
            self.cost += Decimal(s.cost) if s.cost is not None else Decimal(0)
        except InvalidOperation:
            self.unpriced += 1
        else:
            self.unpriced += s.cost is None and s.llm_calls > 0

    def as_json(self) -> dict[str, Any]:
        """The row as JSON (the cost a decimal string in dollars)."""
        return {
            "key": self.key,
            "executions": self.executions,
            "steps": self.steps,
            "llm_calls": self.llm_calls,
            "tool_calls": self.tool_calls,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "total_tokens": self.total_tokens,
            "cost": str(self.cost),
            "unpriced_executions": self.unpriced,
        }


@dataclass
class Usage:
    """Usage and cost per agent and per day (UTC, by the execution's creation), and in total."""

    agents: list[UsageRow]
    days: list[UsageRow]
    total: UsageRow

    def as_json(self) -> dict[str, Any]:
        """Every row as JSON."""
        return {
            "agents": [r.as_json() for r in self.agents],
            "days": [r.as_json() for r in self.days],
            "total": self.total.as_json(),
        }


def usage(data: DataDir, f: Filters) -> Usage:
    """Sum tokens and cost per agent and per day over the executions these filters select (paging ignored)."""
    agents: dict[str, UsageRow] = {}
    days: dict[str, UsageRow] = {}
    total = UsageRow("total")
    for s in select(data, f):
        day = dt.datetime.fromtimestamp(s.created_at, dt.UTC).date().isoformat()
        agents.setdefault(s.agent_id, UsageRow(s.agent_id)).add(s)
        days.setdefault(day, UsageRow(day)).add(s)
        total.add(s)
    return Usage(
        agents=sorted(agents.values(), key=lambda r: (-r.cost, r.key)),
        days=sorted(days.values(), key=lambda r: r.key, reverse=True),
        total=total,
    )
