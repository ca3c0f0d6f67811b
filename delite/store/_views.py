"""What the read API returns: frozen msgspec Structs that encode to the documented JSON export schema.

Times are seconds since the epoch (floats, as in the log); durations are milliseconds; costs are decimal
strings in dollars, or None when a provider did not report one. Field names are part of the export format
(``docs/export-format.md``): fields are only ever added, each with a default.
"""

import time
from collections.abc import Iterator
from typing import Any, Final, overload

import msgspec

from delite.log.records import ConfigFingerprint, SuspendReason

__all__ = [
    "EXPORT_FORMAT",
    "Decision",
    "Event",
    "ExecutionDetail",
    "ExecutionSummary",
    "Export",
    "HealthReport",
    "LastError",
    "LlmCall",
    "Page",
    "Pause",
    "Problem",
    "Step",
    "Tokens",
    "ToolCall",
    "TornInfo",
]

EXPORT_FORMAT: Final = "delite-export/1"
"""The ``format`` field of an export. A breaking change to the schema bumps the number."""


class _View(msgspec.Struct, frozen=True, kw_only=True):
    pass


class Tokens(_View, frozen=True, kw_only=True):
    """Token counts in disjoint buckets; ``total`` is every input bucket plus output."""

    input: int = 0
    output: int = 0
    cached_input: int = 0
    cache_write: int = 0
    reasoning: int = 0
    total: int = 0
    known: bool = True


class ExecutionSummary(_View, frozen=True, kw_only=True):
    """One execution at a glance, as listed by :meth:`delite.DataDir.list`.

    ``status`` is a :class:`~delite.Status` value, or ``unreadable`` (the log is damaged: see ``damage``) or
    ``empty`` (the process died while creating the log, before its first record was complete). In a
    listing, ``input`` and ``answer`` are cut to 500 characters; :meth:`delite.DataDir.execution` has them
    whole. A sub-agent's execution names its parent (``parent_id``) and the parent's tool call that started
    it (``parent_call``). ``advanceable`` says whether a worker may take the execution on by itself now (see
    :func:`delite.state._ready.advanceable`: running and not a fork nobody resumed, or suspended on calls of its
    own that all have their answers), whoever holds it.
    """

    id: str
    agent_id: str = "default"
    status: str = "running"
    created_at: float = 0.0
    updated_at: float = 0.0
    input: str = ""
    answer: str | None = None
    models: list[str] = msgspec.field(default_factory=list)
    steps: int = 0
    llm_calls: int = 0
    tool_calls: int = 0
    tokens: Tokens = msgspec.field(default_factory=Tokens)
    cost: str | None = None
    metadata: dict[str, Any] = msgspec.field(default_factory=dict)
    suspend_reason: SuspendReason | None = None
    error: str | None = None
    parent_id: str | None = None
    parent_call: str | None = None
    forked_from: str | None = None
    fork_step: int | None = None
    records: int = 0
    log_bytes: int = 0
    torn: bool = False
    damage: str | None = None
    advanceable: bool = False


class Decision(_View, frozen=True, kw_only=True):
    """A human's decision on a gated call."""

    approved: bool
    reason: str | None = None
    at: float = 0.0


class ToolCall(_View, frozen=True, kw_only=True):
    """One tool call and everything recorded about it.

    ``status``: ``ok``; ``error`` (the tool raised, or its arguments were invalid); ``rejected`` (a human
    said no); ``pending`` (not started: waiting for a decision, the client, or its turn); ``started`` (its
    intent is recorded but no result: running now, or in doubt if its process died); ``waiting_input`` (the
    tool asked a human a question); ``rerun_requested`` (an operator asked for an in-doubt call to run again);
    ``waiting_child`` (it ran a sub-agent, ``child_id``, that is waiting). ``source`` is where the outcome came
    from (``tool``, ``client``, ``operator``, ``human``, ``rejected``, ``invalid``), as in the ``tool-finished``
    record.
    """

    call_id: str
    step: int
    name: str
    arguments: Any = None
    status: str = "pending"
    result: Any = None
    error: str | None = None
    source: str | None = None
    started_at: float | None = None
    finished_at: float | None = None
    duration_ms: float | None = None
    attempts: int = 0
    retries: int = 0
    idempotency_key: str | None = None
    decision: Decision | None = None
    question: str | None = None
    human_input: str | None = None
    provider_id: str = ""
    child_id: str | None = None


class LlmCall(_View, frozen=True, kw_only=True):
    """One model call attempt: a response (``ok``) or a failure."""

    step: int
    attempt: int = 1
    at: float = 0.0
    model: str | None = None
    ok: bool = True
    tokens: Tokens | None = None
    cost: str | None = None
    duration_ms: float = 0.0
    tool_calls: int = 0
    error: str | None = None
    retryable: bool = False
    status_code: int | None = None


class Step(_View, frozen=True, kw_only=True):
    """One step: a model response and the tool calls it asked for.

    ``started_at`` is when the model call began; ``ended_at`` when the step's last tool call finished (or
    the model answered, for a step without tools). ``wall_ms`` spans the two, pauses included.
    """

    step: int
    model: str | None = None
    started_at: float = 0.0
    ended_at: float = 0.0
    model_ms: float = 0.0
    tool_ms: float = 0.0
    wall_ms: float = 0.0
    attempts: int = 1
    tokens: Tokens = msgspec.field(default_factory=Tokens)
    cost: str | None = None
    content: str | None = None
    tool_calls: list[ToolCall] = msgspec.field(default_factory=list)


class Pause(_View, frozen=True, kw_only=True):
    """A suspension: from ``at`` until ``ended_at`` (None while it still waits)."""

    kind: str
    at: float
    ended_at: float | None = None
    reason: SuspendReason
    step: int = 0


class Event(_View, frozen=True, kw_only=True):
    """One raw record of the log: its position (1-based ``seq``), byte ``offset``, kind, time and fields.

    ``offset`` is where the record's frame starts in the log file; None when the store keeps no bytes (rows
    in a database).
    """

    seq: int
    offset: int | None = None
    kind: str
    at: float
    record: dict[str, Any]


class LastError(_View, frozen=True, kw_only=True):
    """The latest error recorded: ``source`` is ``execution``, ``model`` or ``tool``."""

    source: str
    message: str
    at: float = 0.0
    step: int | None = None
    call_id: str | None = None


class TornInfo(_View, frozen=True, kw_only=True):
    """An incomplete last record: where it starts, how long it is and why it is not complete."""

    offset: int
    length: int
    reason: str


class ExecutionDetail(ExecutionSummary, frozen=True, kw_only=True):
    """One execution in depth: every summary field, plus its configuration, pending calls, time spent and errors.

    Unlike in a listing, ``input`` and ``answer`` are whole.
    """

    config: ConfigFingerprint = msgspec.field(default_factory=ConfigFingerprint)
    model: str | None = None
    idempotency_key: str | None = None
    depth: int = 0
    resumes: int = 0
    model_failures: int = 0
    model_ms: float = 0.0
    tool_ms: float = 0.0
    wall_ms: float = 0.0
    pending_calls: list[ToolCall] = msgspec.field(default_factory=list)
    last_error: LastError | None = None
    torn_tail: TornInfo | None = None


class Export(_View, frozen=True, kw_only=True):
    """A whole execution, as ``delite export`` writes it (format :data:`EXPORT_FORMAT`)."""

    format: str = EXPORT_FORMAT
    delite_version: str = ""
    execution: ExecutionDetail
    steps: list[Step] = msgspec.field(default_factory=list)
    llm_calls: list[LlmCall] = msgspec.field(default_factory=list)
    tool_calls: list[ToolCall] = msgspec.field(default_factory=list)
    pauses: list[Pause] = msgspec.field(default_factory=list)
    events: list[Event] = msgspec.field(default_factory=list)


class Page(_View, frozen=True, kw_only=True):
    """One page of a listing, newest first: ``total`` executions match, these are from ``offset`` on.

    A page is also the sequence of its ``items``: ``for s in data.list(): ...``, ``len(page)`` (the items on
    this page, not ``total``), ``page[0]``, and an empty page is falsy.
    """

    items: list[ExecutionSummary]
    total: int
    offset: int = 0
    limit: int | None = None

    def __iter__(self) -> Iterator[ExecutionSummary]:
        """The items of this page, newest first."""
        return iter(self.items)

    def __len__(self) -> int:
        """How many items this page holds (``total`` counts every match)."""
        return len(self.items)

    @overload
    def __getitem__(self, index: int) -> ExecutionSummary: ...
    @overload
    def __getitem__(self, index: slice) -> list[ExecutionSummary]: ...
    def __getitem__(self, index: int | slice) -> ExecutionSummary | list[ExecutionSummary]:
        """An item (or a slice of the items) of this page."""
        return self.items[index]

    @property
    def next_offset(self) -> int | None:
        """The offset of the next page, or None on the last one."""
        end = self.offset + len(self.items)
        return end if end < self.total else None


class Problem(_View, frozen=True, kw_only=True):
    """One finding of :meth:`delite.DataDir.health`.

    ``severity`` is ``error`` (a damaged or unreadable log, an entry named like a log that is not a regular
    file, a hard-linked log), ``warning`` (a torn tail: a crash cut the last record, cut off when the
    execution is next claimed; files or folders open to other users; a log owned by another user; a snapshot
    bound to its log's bytes that disagrees with the log's records) or ``derived`` (the listing index or a
    snapshot is out of date; harmless, as neither is ever trusted over the logs, and fixed by the next
    listing or run, or by ``repair``). Only errors and warnings make a data directory unhealthy.
    """

    kind: str
    severity: str
    detail: str
    execution_id: str | None = None
    path: str | None = None
    offset: int | None = None


def many(kind: str, severity: str, ids: list[str], what: str) -> Problem:
    """One finding about several executions: how many, what is wrong with them, and the first few ids."""
    shown = ", ".join(ids[:5]) + (", ..." if len(ids) > 5 else "")
    return Problem(kind=kind, severity=severity, detail=f"{len(ids)} {what}: {shown}")


class HealthReport(_View, frozen=True, kw_only=True):
    """What :meth:`delite.DataDir.health` found: every log's checksums verified, and the index checked."""

    healthy: bool
    logs: int = 0
    bytes: int = 0
    records: int = 0
    seconds: float = 0.0
    problems: list[Problem] = msgspec.field(default_factory=list)
    repaired: bool = False

    @classmethod
    def of(
        cls, problems: list[Problem], *, logs: int, size: int, records: int, started: float, repaired: bool = False
    ) -> "HealthReport":
        """The report of a check begun at ``started`` (``time.perf_counter()``): healthy unless an error or warning."""
        healthy = not any(p.severity in ("error", "warning") for p in problems)
        seconds = round(time.perf_counter() - started, 6)
        return cls(
            healthy=healthy,
            logs=logs,
            bytes=size,
            records=records,
            seconds=seconds,
            problems=problems,
            repaired=repaired,
        )

    @property
    def mb_per_second(self) -> float:
        """Verification throughput in MB (10**6 bytes) per second."""
        return self.bytes / 1e6 / self.seconds if self.seconds > 0 else 0.0
