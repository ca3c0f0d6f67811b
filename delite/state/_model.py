"""What folding a log produces: an execution's status, conversation, tool calls and totals."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import msgspec

from delite.log.records import (
    ConfigFingerprint,
    DecisionRecorded,
    ModelResponded,
    RecordedToolCall,
    SuspendReason,
    ToolFinished,
)

__all__ = ["CallState", "ExecutionState", "Status", "Totals"]


class Status(enum.StrEnum):
    """An execution's status, derived from its log."""

    RUNNING = "running"
    WAITING_APPROVAL = "waiting_approval"
    WAITING_CLIENT_TOOL = "waiting_client_tool"
    WAITING_HUMAN_INPUT = "waiting_human_input"
    SUSPENDED = "suspended"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def is_terminal(self) -> bool:
        """Completed or cancelled: nothing can change it any more (a failed execution can be resumed)."""
        return self in (Status.COMPLETED, Status.CANCELLED)

    @property
    def is_suspended(self) -> bool:
        """Stopped on purpose, waiting for something outside the process."""
        return self in _SUSPENDED

    @classmethod
    def for_suspension(cls, kind: str) -> Status:
        """The status a suspension of this kind puts an execution in."""
        return _BY_KIND.get(kind, cls.SUSPENDED)

    def __str__(self) -> str:
        """The value, e.g. ``waiting_approval``."""
        return self.value


_SUSPENDED = frozenset(
    {Status.WAITING_APPROVAL, Status.WAITING_CLIENT_TOOL, Status.WAITING_HUMAN_INPUT, Status.SUSPENDED}
)
_BY_KIND = {
    "approval": Status.WAITING_APPROVAL,
    "client_tool": Status.WAITING_CLIENT_TOOL,
    "human_input": Status.WAITING_HUMAN_INPUT,
}


class CallState(msgspec.Struct, kw_only=True, gc=False, omit_defaults=True):
    """One tool call and everything recorded about it.

    ``index`` is its position among its turn's calls; ``child_id`` the sub-agent execution it waits on.
    A struct the garbage collector does not track (one per tool call: a long log folds tens of thousands of
    them, and they hold only records and plain values, never a reference cycle).
    """

    call: RecordedToolCall
    step: int
    attempts: int = 0
    idempotency_key: str = ""
    finished: ToolFinished | None = None
    decision: DecisionRecorded | None = None
    human_input: str | None = None
    question: str | None = None
    rerun_requested: bool = False
    index: int = 0
    child_id: str | None = None

    @property
    def in_doubt(self) -> bool:
        """Its intent is recorded but its result is not: the process may have died inside the tool."""
        return (
            self.attempts > 0
            and self.finished is None
            and not self.rerun_requested
            and self.question is None
            and self.child_id is None
        )


@dataclass
class Totals:
    """Running sums over an execution's model and tool calls."""

    input_tokens: int = 0
    output_tokens: int = 0
    cached_input_tokens: int = 0
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0
    cost: Decimal = Decimal(0)
    cost_known: bool = True
    usage_known: bool = True
    llm_calls: int = 0
    tool_calls: int = 0
    model_failures: int = 0

    @property
    def total_tokens(self) -> int:
        """Every input bucket plus output."""
        return self.input_tokens + self.cached_input_tokens + self.cache_write_tokens + self.output_tokens


class _ResultTail(msgspec.Struct, gc=False):
    """Where the latest turn's tool results sit in ``messages``: from ``start``, ordered by call ``indices``."""

    step: int
    start: int
    indices: list[int] = msgspec.field(default_factory=list)


@dataclass
class ExecutionState:
    """The fold of one execution's log. Built by :func:`delite.state._fold.fold`; treat as read-only.

    ``dormant`` is true for a fork that no process has taken on yet (its log holds only what
    :meth:`delite.DataDir.fork` wrote): it is not a run a dead process left behind.
    """

    execution_id: str = ""
    agent_id: str = "default"
    input: str = ""
    history: list[dict[str, Any]] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)
    config: ConfigFingerprint = field(default_factory=ConfigFingerprint)
    known_tools: set[str] = field(default_factory=set)
    model: str | None = None
    idempotency_key: str | None = None
    parent_id: str | None = None
    parent_call: str | None = None
    depth: int = 0
    output_schema: dict[str, Any] | None = None
    rejected_outputs: int = 0
    rejected_step: int = 0
    created_at: float = 0.0
    updated_at: float = 0.0
    status: Status = Status.RUNNING
    suspend_reason: SuspendReason | None = None
    answer: str | None = None
    output: Any = None
    error_type: str | None = None
    error_message: str | None = None
    turns: list[ModelResponded] = field(default_factory=list)
    calls: dict[str, CallState] = field(default_factory=dict)
    messages: list[dict[str, Any]] = field(default_factory=list)
    totals: Totals = field(default_factory=Totals)
    records: int = 0
    resumes: int = 0
    dormant: bool = False
    _fork_resumes: int = field(default=0, repr=False, compare=False)
    _results: _ResultTail | None = field(default=None, repr=False, compare=False)

    @property
    def steps(self) -> int:
        """Completed model calls (one step is a model call and the tool calls it asked for)."""
        return len(self.turns)

    @property
    def last_turn(self) -> ModelResponded | None:
        """The latest model response, if any."""
        return self.turns[-1] if self.turns else None

    def open_calls(self) -> list[CallState]:
        """The latest turn's tool calls that have no result yet, in the order the model asked for them."""
        turn = self.last_turn
        if turn is None:
            return []
        calls = self.calls
        return [calls[c.id] for c in turn.tool_calls if calls[c.id].finished is None]
