"""What folding a log produces: an execution's status, conversation, tool calls and totals."""

import enum
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import msgspec

from delite._gc import settled
from delite.errors import LogCorruptError
from delite.log.records import (
    ConfigFingerprint,
    DecisionRecorded,
    ModelResponded,
    RecordedToolCall,
    SuspendReason,
    ToolFinished,
)

__all__ = ["CallState", "ExecutionState", "History", "Pieces", "Status", "Totals", "history_crc"]


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
    def for_suspension(cls, kind: str) -> "Status":
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


Pieces = tuple[bytes | memoryview, ...]
"""A history's JSON pieces (see :class:`History`)."""


class History:
    """The first ``steps`` model turns of a state and their ``calls_count`` tool calls, as JSON not yet decoded.

    ``turns`` are JSON arrays of those :class:`~delite.log.records.ModelResponded` records, in order, and
    ``calls`` as many JSON objects of their :class:`CallState` by call id (one pair per time a fold checkpoint
    moved turns into the history, see :meth:`ExecutionState._encode_history`); ``models`` the models that
    answered them (each once). A state that carries one (see :meth:`ExecutionState._attach_history`) decodes it
    the first time its ``turns`` or ``calls`` are read whole: continuing an execution reads only its latest
    turn, its counts and its conversation, so a long history is never decoded on that path.

    A history may be given as ``load`` instead of its pieces (``turns`` and ``calls`` None): called the first
    time either is read, it returns the pieces and their CRC-32 (a fold checkpoint read by a claim leaves them in
    the file until then, see :mod:`delite.store._checkpoint`), or raises ``LogCorruptError``.
    """

    __slots__ = ("_calls", "_load", "_turns", "calls_count", "crc32", "models", "steps")

    def __init__(  # noqa: PLR0917 - the six fields in the order the struct it replaced took them
        self,
        steps: int,
        calls_count: int,
        turns: Pieces | None,
        calls: Pieces | None,
        models: list[str],
        crc32: int,
        *,
        load: Callable[[], tuple[Pieces, Pieces, int]] | None = None,
    ) -> None:
        """Hold the counts and models, and the pieces or how to ``load`` them (the one or the other)."""
        if (turns is None or calls is None) != (load is not None):
            raise ValueError("a history holds its pieces or says how to load them, not both")
        self.steps = steps
        self.calls_count = calls_count
        self.models = models
        self.crc32 = crc32
        """:func:`history_crc` of the pieces, checked before they are decoded."""
        self._turns = turns
        self._calls = calls
        self._load = load

    @property
    def turns(self) -> Pieces:
        """The pieces of the turns (loaded the first time, if the history was given as ``load``)."""
        if self._turns is None:
            self._fill()
        return self._turns  # type: ignore[return-value]  # _fill sets both

    @property
    def calls(self) -> Pieces:
        """The pieces of the calls (as :attr:`turns`)."""
        if self._calls is None:
            self._fill()
        return self._calls  # type: ignore[return-value]

    def _fill(self) -> None:
        assert self._load is not None  # turns and calls are None only with a load
        self._turns, self._calls, self.crc32 = self._load()
        self._load = None


def history_crc(turns: Pieces, calls: Pieces, crc: int = 0) -> int:
    """The CRC-32 of the pieces of a history in the order they were written: each turns piece, then its calls."""
    for t, c in zip(turns, calls, strict=True):
        crc = zlib.crc32(c, zlib.crc32(t, crc))
    return crc


_encoder = msgspec.json.Encoder()
_turns_decoder = msgspec.json.Decoder(list[ModelResponded])
_calls_decoder = msgspec.json.Decoder(dict[str, CallState])


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

    if TYPE_CHECKING:
        # ``turns`` and ``calls`` are properties (installed below the class) over these: the turns and calls
        # not in ``_history``, the part of them still encoded (None: all of them are decoded).
        _turns: list[ModelResponded] = field(init=False, repr=False, compare=False)
        _calls: dict[str, CallState] = field(init=False, repr=False, compare=False)
        _history: History | None = field(init=False, repr=False, compare=False)

    @property
    def steps(self) -> int:
        """Completed model calls (one step is a model call and the tool calls it asked for)."""
        history = self._history
        return len(self._turns) + (history.steps if history is not None else 0)

    @property
    def last_turn(self) -> ModelResponded | None:
        """The latest model response, if any."""
        turns = self._turns
        if turns:
            return turns[-1]
        return self.turns[-1] if self._history is not None else None

    def call(self, call_id: str) -> CallState | None:
        """The tool call with this id, or None (reads no more of a long history than it has to)."""
        found = self._calls.get(call_id)
        if found is None and self._history is not None:
            self._decode_history()
            found = self._calls.get(call_id)
        return found

    def models(self) -> list[str]:
        """The models that answered, each once, in the order they first did (reads no history)."""
        history = self._history
        seen: dict[str, None] = dict.fromkeys(history.models) if history is not None else {}
        for turn in self._turns:
            if turn.model:
                seen[turn.model] = None
        return list(seen)

    def calls_count(self) -> int:
        """``len(state.calls)``, without decoding a history."""
        history = self._history
        return len(self._calls) + (history.calls_count if history is not None else 0)

    def open_calls(self) -> list[CallState]:
        """The latest turn's tool calls that have no result yet, in the order the model asked for them."""
        turn = self.last_turn
        if turn is None:
            return []
        found = [self.call(c.id) for c in turn.tool_calls]
        return [cs for cs in found if cs is not None and cs.finished is None]

    def _attach_history(self, history: History | None) -> None:
        """Put ``history`` (the turns and calls before this state's own) in front of them, decoded when read.

        Raises:
            ValueError: this state has a history already.
        """
        if self._history is not None:
            raise ValueError("this state has a history already")
        self._history = history if history is not None and history.steps else None

    def _hold_history(self, history: History | None, turns: list[ModelResponded], calls: dict[str, CallState]) -> None:
        """Hold the turns and calls as :meth:`_encode_history` split them: ``history`` encoded, the rest as is.

        The state's value does not change (reading ``turns`` or ``calls`` whole decodes the history again, as
        the log reads back); only how much of it is held as objects does. ``turns`` and ``calls`` must be
        what :meth:`_encode_history` returned with ``history``, with nothing applied to the state since.
        """
        self._history = history if history is not None and history.steps else None
        self._turns = turns
        self._calls = calls

    def _decode_history(self) -> None:
        """Decode the history a checkpoint left encoded (nothing to do for a state without one).

        Raises:
            LogCorruptError: the history does not decode (the checkpoint it came from is not one delite wrote).
        """
        history = self._history
        if history is None:
            return
        if history_crc(history.turns, history.calls) != history.crc32:
            raise LogCorruptError(self.execution_id or "?", -1, "its fold checkpoint's history is damaged (CRC-32)")
        turns: list[ModelResponded] = []
        calls: dict[str, CallState] = {}
        try:
            with settled():  # tens of thousands of objects, none in a cycle, that live on
                for piece in history.turns:
                    turns += _turns_decoder.decode(piece)
                for piece in history.calls:
                    calls.update(_calls_decoder.decode(piece))
        except (msgspec.DecodeError, ValueError, TypeError) as e:
            raise LogCorruptError(self.execution_id or "?", -1, f"its fold checkpoint's history: {e}") from None
        if len(turns) != history.steps or len(calls) != history.calls_count:
            raise LogCorruptError(self.execution_id or "?", -1, "its fold checkpoint's history has a wrong count")
        turns.extend(self._turns)
        calls.update(self._calls)
        self._turns = turns
        self._calls = calls
        self._history = None

    def _encode_history(self) -> tuple[History | None, list[ModelResponded], dict[str, CallState]]:
        """Every turn but the latest, and their calls, as a :class:`History`; the latest turn and its calls.

        What a fold checkpoint keeps: a history already encoded gets one more pair of pieces, the turns decoded
        since and their calls, so a long one is never decoded or copied to be written again.
        """
        turns = self._turns
        calls = self._calls
        history = self._history
        if not turns:
            return history, turns, calls
        keep = {c.id for c in turns[-1].tool_calls}
        recent = {k: v for k, v in calls.items() if k in keep}
        closed = {k: v for k, v in calls.items() if k not in keep}
        if len(turns) == 1 and not closed:
            return history, turns, calls
        models = dict.fromkeys(history.models) if history is not None else {}
        for turn in turns[:-1]:
            if turn.model:
                models[turn.model] = None
        more_turns: tuple[bytes, ...] = (_encoder.encode(turns[:-1]),)
        more_calls: tuple[bytes, ...] = (_encoder.encode(closed),)
        if history is None:
            crc = history_crc(more_turns, more_calls)
            return History(len(turns) - 1, len(closed), more_turns, more_calls, list(models), crc), [turns[-1]], recent
        grown = History(
            history.steps + len(turns) - 1,
            history.calls_count + len(closed),
            history.turns + more_turns,
            history.calls + more_calls,
            list(models),
            history_crc(more_turns, more_calls, history.crc32),
        )
        return grown, [turns[-1]], recent


def _decoded(name: str, doc: str) -> property:
    """The property ``name`` over ``_<name>``: reading or replacing it whole decodes the state's history first."""
    private = "_" + name

    def get(self: ExecutionState) -> Any:
        if self._history is not None:
            self._decode_history()
        return getattr(self, private)

    def put(self: ExecutionState, value: Any) -> None:
        if self._history is not None:
            self._decode_history()
        setattr(self, private, value)

    return property(get, put, doc=doc)


# Installed after the dataclass is built, so ``turns`` and ``calls`` stay its fields (the constructor, equality,
# repr and every encoding see them as before) while reading one whole decodes a history first.
setattr(ExecutionState, "turns", _decoded("turns", "Every model response, in order."))  # noqa: B010
setattr(ExecutionState, "calls", _decoded("calls", "Every tool call's state, by call id."))  # noqa: B010
setattr(ExecutionState, "_history", None)  # noqa: B010 - a class default, not a dataclass field
