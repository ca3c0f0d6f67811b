"""The agent loop: decide, record the intent, act, record the result.

One :class:`Runner` advances one claimed execution. It keeps the folded state in memory and applies every
record as it is made, so no step re-reads or re-folds the log. Records are buffered only between a decision
and the next point where the outside world is touched, and written before it:

* the model's response goes down with the first tool's intent, before that tool's body runs;
* a tool's result goes down with the next tool's intent, or alone before the next model call;
* when the model asked for several tools that may run at once, their intents go down together in one
  write, the bodies run concurrently, and each result is written as it comes in;
* a suspension, completion or failure goes down with whatever is buffered, as a durability barrier.

The loop is written once, as a generator (:meth:`Runner.steps`): it makes every decision and yields an
effect (:mod:`delite.engine._effects`) at each of those points; the sync API drives it with blocking calls,
the async API by awaiting, so both behave the same.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar, runtime_checkable

import msgspec

from delite.engine._budget import Budget
from delite.engine._effects import (
    NEXT_RESULT,
    STOP_REQUESTED,
    Append,
    Ask,
    Invocation,
    Io,
    Sleep,
    StartCalls,
    Steps,
    ToolOutcome,
    drive,
    one_sync_body,
)
from delite.engine._output import OutputSpec
from delite.engine._sink import current_sink
from delite.engine._turns import failure_record, printable, tool_record, turn_record
from delite.errors import (
    ProviderError,
    ReplayMismatchError,
    StructuredOutputValidationError,
    ToolError,
    UsageError,
)
from delite.log._codec import as_read
from delite.log.records import (
    ChildSuspended,
    ExecutionCancelled,
    ExecutionCompleted,
    ExecutionFailed,
    ExecutionResumed,
    ExecutionSuspended,
    InputRequested,
    ModelResponded,
    OutputRejected,
    PendingCall,
    Record,
    SuspendReason,
    ToolFinished,
    ToolSpec,
    ToolStarted,
)
from delite.providers._base import normalize_turn
from delite.state._fold import apply, fold
from delite.state._model import CallState, ExecutionState
from delite.state._outcome import outcome, tally_of
from delite.store._base import ExecutionLog, Store
from delite.store._ids import WAITING_FOR_SUB_AGENT
from delite.tools._base import CallInDoubtError, Clarification, DelegationSuspended, Tool, ToolCallContext
from delite.tools._redact import Redactor, redact_outcome, redact_with

__all__ = ["Contract", "RetryPolicy", "RunSettings", "Runner", "ToolSource", "idempotency_key", "read_child"]

Contract = Callable[[str, dict[str, Any]], object]


@dataclass(frozen=True)
class RetryPolicy:
    """How delite retries a model call that failed in a way a retry may fix.

    Waits ``base_delay * 2**(attempt-1)`` seconds, capped at ``max_delay``, with up to 25% random jitter
    removed, or the provider's ``retry-after`` when it gave one (capped the same way). Each failed attempt is
    recorded in the log.
    """

    max_attempts: int = 4
    base_delay: float = 0.5
    max_delay: float = 30.0

    def __post_init__(self) -> None:
        """Validate every field (a bad policy fails here, not mid-run when a model call first fails).

        ``max_attempts`` is an int of 1 or more; the delays are finite numbers of 0 or more (seconds). Anything
        else (a string, a bool, NaN, a negative delay) raises :class:`~delite.errors.UsageError`.
        """
        attempts = self.max_attempts
        if isinstance(attempts, bool) or not isinstance(attempts, int) or attempts < 1:
            raise UsageError(f"RetryPolicy(max_attempts=...) must be an int of 1 or more; got {attempts!r:.80}")
        for name in ("base_delay", "max_delay"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
                raise UsageError(f"RetryPolicy({name}=...) must be a finite number of 0 or more; got {value!r:.80}")

    def delay(self, attempt: int, retry_after: float | None) -> float:
        """Seconds to wait before attempt ``attempt + 1``."""
        if retry_after is not None:
            return min(max(retry_after, 0.0), self.max_delay)
        raw = min(self.base_delay * 2.0 ** (attempt - 1), self.max_delay)
        import random  # noqa: PLC0415 - only when a call is retried

        jitter: float = random.random()  # noqa: S311 - jitter, not cryptography
        return raw * (1 - 0.25 * jitter)


@runtime_checkable
class ToolSource(Protocol):
    """Tools known only once an execution first uses their source (an MCP server: see :mod:`delite._mcp`).

    The engine's one hook for them: ``attach`` runs each time a claimed execution is about to advance, after
    the records that answer a suspension are buffered. It may buffer records on the runner (the source's
    catalog, a drift acceptance), fail the run, and add its tools to ``runner.settings``.
    """

    name: str

    @property
    def spec(self) -> ToolSpec:
        """How the source appears in the agent's configuration fingerprint."""
        ...

    def attach(self, runner: Runner, *, resumed: bool, on_drift: str) -> Steps[None]:
        """Offer the source's tools to this run (see the class docstring)."""
        ...


@dataclass
class RunSettings:
    """Everything about the agent that the loop needs, resolved once per run."""

    provider: Callable[..., Any]
    provider_name: str
    tools: Mapping[str, Tool]
    model: str | None = None
    contracts: Sequence[tuple[str, Contract]] = ()
    require_approval: frozenset[str] = frozenset()
    human_input_tool: str | None = None
    budget: Budget | None = None
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    clock: Callable[[], float] = time.time
    sleep: Callable[[float], None] = time.sleep
    schemas: list[dict[str, Any]] = field(default_factory=list)
    parallel_tools: bool = True
    output: OutputSpec | None = None
    agent_id: str = "default"
    max_depth: int = 5
    ancestors: tuple[str, ...] = ()
    sources: Sequence[ToolSource] = ()
    redact: Redactor | None = None


def idempotency_key(execution_id: str, call_id: str) -> str:
    """The key a tool call keeps across retries: stable, unique in the data directory."""
    return f"{execution_id}:{call_id}"


def read_child(store: Store, execution_id: str) -> tuple[ExecutionState, bool] | None:
    """A sub-agent's state, and whether it still waits with nothing recorded since it suspended (None: no log).

    Down the tree: a sub-agent that waits on a sub-agent of its own still waits only if that one does. An
    answer to a grandchild's call is recorded in the grandchild's log, so the child's own log shows nothing
    new; without looking deeper, its parent would wait on it for ever.
    """
    if not store.exists(execution_id):
        return None
    records = store.read(execution_id).records
    state = fold(records)
    waits = state.status.is_suspended and bool(records) and isinstance(records[-1], ExecutionSuspended)
    if waits:
        for cs in state.open_calls():
            if cs.child_id is not None:
                below = read_child(store, cs.child_id)
                if below is None or not below[1]:
                    return state, False  # answered (or gone) further down: running the body continues it
    return state, waits


@dataclass
class _Wait:
    """A call (or a sub-agent's calls) the execution must wait on."""

    kind: str
    calls: list[PendingCall]
    question: str | None = None
    message: str = ""
    limit: str | None = None
    spent: dict[str, Any] = field(default_factory=dict)


@dataclass
class _Run:
    """A call whose body is to run now."""

    cs: CallState
    tool: Tool
    arguments: dict[str, Any]
    pending: PendingCall


Terminal = TypeVar("Terminal", ExecutionCompleted, ExecutionCancelled)


class Digests(Protocol):
    """What tells the hash a log will have once records are appended: a claimed log, or a log file's writer."""

    def digest_after(self, records: Sequence[Record]) -> str | None:
        """The SHA-256 (hex) of the log once ``records`` are appended, or None where none is kept."""


def tallied(record: Terminal, state: ExecutionState, log: Digests, pending: Sequence[Record] = ()) -> Terminal:
    """A terminal ``record`` with its :class:`Tally`: what ``state`` (every record before it) comes to.

    Appended after ``pending`` (records buffered, not yet written), to ``log`` (a claimed
    :class:`~delite.store.ExecutionLog`, or the :class:`~delite.log.LogWriter` of a log file). Its hash is the
    SHA-256 the log would have with ``pending`` and the record written without the hash, where the store keeps
    one (None elsewhere): a reader compares it with the log's own bytes before it believes the tally.
    """
    tally = tally_of(state, None)
    record = msgspec.structs.replace(record, tally=tally)
    digest = log.digest_after([*pending, record])
    if digest is None:
        return record
    return msgspec.structs.replace(record, tally=msgspec.structs.replace(tally, log_sha256=digest))


class Runner:
    """Advances one claimed execution until it completes, suspends, fails or is cancelled."""

    def __init__(self, log: ExecutionLog, state: ExecutionState, settings: RunSettings, store: Store) -> None:
        """Take a claimed log and its folded state."""
        self.log = log
        self.state = state
        self.settings = settings
        self.store = store
        self._pending: list[Record] = []
        self._unredacted: dict[str, Any] = {}  # call id -> the arguments as the model sent them (memory only)
        self._resumed_from = state.suspend_reason
        self._stop = STOP_REQUESTED.get()
        self._sink = current_sink()  # set when the run is streamed (delite.engine._streaming)
        if self._sink is not None:
            self._sink.bind(state)

    # -- writing ---------------------------------------------------------------------------------------------

    def buffer(self, record: Record) -> None:
        """Apply a record to the state now; it is written with the next flush."""
        apply(self.state, record)
        self._pending.append(record)

    def flush(self, *, barrier: bool = False, running: bool = False, ahead: bool = False) -> Steps[None]:
        """Write every buffered record in one append (``running``: other tool bodies are still in flight).

        ``ahead``: one sync tool body starts right after it (see :class:`~delite.engine._effects.Append`).
        """
        if self._pending:
            records, self._pending = self._pending, []
            yield Append(self.log, records, barrier=barrier, ahead=ahead)
            # The state has folded exactly what the log holds now: a store may keep it for a later claim
            # (the file store, every so often as the log grows; checked against its own record count).
            self.log.offer_state(self.state)
            if self._sink is not None:
                self._sink.written(records, running=running)

    def _now(self) -> float:
        return self.settings.clock()

    def _tallied(self, record: Terminal) -> Terminal:
        """``record``, to be buffered now, with the tally of the state and the log (see :func:`tallied`)."""
        return tallied(record, self.state, self.log, self._pending)

    # -- the loop --------------------------------------------------------------------------------------------

    def advance(self, *, model: str | None = None) -> None:
        """Run steps in this thread until the execution stops; every record is durable when this returns."""
        drive(self.steps(model=model))

    def steps(self, *, model: str | None = None) -> Steps[None]:
        """Run steps until the execution stops, yielding an effect at every edge (see the module docstring)."""
        state = self.state
        while True:
            if state.status.is_terminal:
                yield from self.flush(barrier=True)
                return
            if self._cancel_requested() and (yield from self._cancel_seen()):
                return
            if self._stopping():
                yield from self.flush(barrier=True)
                return
            open_calls = state.open_calls()
            if open_calls:
                if (yield from self._run_calls(open_calls)):
                    return
                continue
            turn = state.last_turn
            if turn is not None and not turn.tool_calls and state.rejected_step != turn.step:
                if (yield from self._answer(turn)):
                    return
                continue
            if self.settings.budget is not None and (yield from self._budget_exhausted()):
                return
            if self._pending:
                yield from self.flush()
            if not (yield from self._call_model(model)):
                return

    def _stopping(self) -> bool:
        stop = self._stop
        return stop is not None and stop()

    def _cancel_seen(self) -> Steps[bool]:
        """Record a requested cancellation (of this execution or one above it); False if none was requested."""
        store = self.store
        eid = self.state.execution_id
        own = store.cancel_requested(eid)
        if not own and not store.cancels_requested(self.settings.ancestors):
            return False
        reason = "cancel requested" if own else "a parent execution was cancelled"
        self.buffer(self._tallied(ExecutionCancelled(at=self._now(), reason=reason)))
        yield from self.flush(barrier=True)
        if own:
            yield Io(store.clear_cancel, eid)
        return True

    def _cancel_requested(self) -> bool:
        """Whether a cancellation waits to be recorded: one question to the store for the run and its ancestors."""
        ancestors = self.settings.ancestors
        if not ancestors:
            return self.store.cancel_requested(self.state.execution_id)
        return bool(self.store.cancels_requested([self.state.execution_id, *ancestors]))

    def suspend(self, reason: SuspendReason) -> Steps[None]:
        """Stop on purpose. Re-suspending for the same reason with nothing new to say writes nothing."""
        if reason == self._resumed_from and all(isinstance(r, ExecutionResumed) for r in self._pending):
            # Nothing happened since the execution last suspended for this: leave the log as it was.
            self._pending.clear()
            self.state = yield Io(self.log.state)
            return
        self.buffer(ExecutionSuspended(at=self._now(), reason=reason))
        yield from self.flush(barrier=True)

    def fail(self, error: BaseException) -> Steps[None]:
        """Record that the run stopped on an error; ``resume`` retries from the last durable step."""
        message = printable(str(error))
        self.buffer(ExecutionFailed(at=self._now(), error_type=type(error).__name__, message=message))
        yield from self.flush(barrier=True)

    # -- the answer ------------------------------------------------------------------------------------------

    def _answer(self, turn: ModelResponded) -> Steps[bool]:
        """Complete with the final answer (validated when an output type is set); False: the model tries again."""
        spec = self.settings.output
        text = turn.content or ""
        output = None
        if spec is not None:
            try:
                output = spec.parse(text)
            except ValueError as e:
                state = self.state
                if state.rejected_outputs < spec.retries:
                    prompt = spec.correction(str(e))
                    self.buffer(OutputRejected(at=self._now(), step=turn.step, error=str(e), prompt=prompt))
                    return False
                error = StructuredOutputValidationError(state.execution_id, text, str(e), outcome(state).usage)
                yield from self.fail(error)
                raise error from None
        self.buffer(self._tallied(ExecutionCompleted(at=self._now(), answer=text, output=output)))
        yield from self.flush(barrier=True)
        return True

    # -- budget ----------------------------------------------------------------------------------------------

    def _budget_exhausted(self) -> Steps[bool]:
        """Before a model call (and before each retry of one): suspend if any limit is reached."""
        budget = self.settings.budget
        if budget is None:
            return False
        t = self.state.totals
        hit = budget.exhausted(t)
        if hit is None:
            return False
        reason = SuspendReason(kind="budget", limit=hit, spent=self._spent(), message=budget.explain(hit, t))
        yield from self.suspend(reason)
        return True

    def _spent(self) -> dict[str, Any]:
        t = self.state.totals
        return {
            "dollars": str(t.cost) if t.cost_known else None,
            "llm_calls": t.llm_calls,
            "tokens": t.total_tokens,
            "tool_calls": t.tool_calls,
        }

    def _tool_room(self) -> int | None:
        """How many more tool bodies the budget lets start (None: no limit on tool calls)."""
        budget = self.settings.budget
        if budget is None or budget.max_tool_calls is None:
            return None
        return max(budget.max_tool_calls - self.state.totals.tool_calls, 0)

    def _budget_wait(self, limit: str, held: int) -> _Wait:
        """The wait for a budget limit reached with ``held`` tool calls of the turn not started."""
        message = f"budget limit {limit} reached; {held} tool call(s) of this turn not run"
        return _Wait("budget", [], message=message, limit=limit, spent=self._spent())

    # -- model calls -----------------------------------------------------------------------------------------

    def _call_model(self, model_override: str | None) -> Steps[bool]:
        """Call the model (with retries); buffer its response. False if the run stopped."""
        s = self.settings
        state = self.state
        model = model_override or state.model or s.model
        step = state.steps + 1
        attempt = 0
        while True:
            attempt += 1
            started = time.perf_counter()
            try:
                raw = yield self._ask(model, step, attempt)
                turn = normalize_turn(raw, provider=s.provider_name)
                duration = (time.perf_counter() - started) * 1000
                record = turn_record(
                    turn,
                    step=step,
                    model=model,
                    attempt=attempt,
                    duration_ms=duration,
                    now=self._now(),
                    provider=s.provider_name,
                )
            except Exception as e:
                error = _as_provider_error(e, s.provider, s.provider_name)
                retry = error.retryable and attempt < s.retry.max_attempts
                self.buffer(failure_record(error, self._now(), step, attempt, model, retry=retry))
                if not retry:
                    yield from self.fail(error)
                    raise error from e
                yield from self.flush()
                yield Sleep(s.retry.delay(attempt, error.retry_after), s.sleep)
                if (yield from self._cancel_seen()) or self._stopping():
                    return False
                if s.budget is not None and (yield from self._budget_exhausted()):
                    return False  # a failed attempt may have been billed (tokens, dollars): checked per call
                continue
            break
        self.buffer(self._redact_turn(record))
        return True

    def _redact_turn(self, record: ModelResponded) -> ModelResponded:
        """The turn as it is recorded: the model's text and each call's arguments through the redactors.

        The arguments as sent are kept in memory, for the bodies this process runs; nothing else has them.
        """
        s = self.settings
        agent = s.redact
        if agent is None and not any(t.redact is not None for t in s.tools.values()):
            return record
        content = record.content if record.content is None or agent is None else agent(record.content)
        if content is not None and not isinstance(content, str):  # NaN would be written as null: the text lost
            kind = type(content).__name__
            raise UsageError(f"the agent's redactor must return the model's text as a str, not {kind} {content!r:.40}")
        calls = []
        for c in record.tool_calls:
            tool = s.tools.get(c.name)
            arguments = redact_with((tool.redact if tool is not None else None, agent), c.arguments)
            if arguments != c.arguments:
                self._unredacted[c.id] = c.arguments
            calls.append(msgspec.structs.replace(c, arguments=arguments))
        redacted = as_read(msgspec.structs.replace(record, content=content, tool_calls=calls))
        if not isinstance(redacted, ModelResponded):  # pragma: no cover - the tag decides the type
            raise TypeError(redacted)
        return redacted

    def _redact_outcome(self, tool: Tool | None, result: Any, error: str | None) -> tuple[Any, str | None]:
        """A tool's result and error as they are recorded (the tool's redactor, then the agent's)."""
        return redact_outcome((tool.redact if tool is not None else None, self.settings.redact), result, error)

    def _redact_text(self, tool: Tool | None, text: str) -> str:
        """Text a tool produced other than its result (a question for a human, an in-doubt message), redacted."""
        _, redacted = self._redact_outcome(tool, None, text)
        return text if redacted is None else redacted

    def _ask(self, model: str | None, step: int, attempt: int) -> Ask:
        """One call to the provider; streamed to the run's consumer when it has one and the provider can."""
        s = self.settings
        sink = self._sink
        if sink is None:
            return Ask(s.provider, list(self.state.messages), s.schemas, model, None)

        def on_text(text: str) -> None:
            """Pass a streamed delta on: text only (else the attempt is a malformed, retried one)."""
            if not isinstance(text, str):
                kind = type(text).__name__
                detail = f"malformed turn: the stream passed {kind} to on_text, not text"
                raise ProviderError(detail, provider=s.provider_name, retryable=True)
            sink.text(step, attempt, printable(text))

        return Ask(s.provider, list(self.state.messages), s.schemas, model, on_text)

    # -- tool calls ------------------------------------------------------------------------------------------

    def _run_calls(self, calls: list[CallState]) -> Steps[bool]:
        """Settle the open calls: gate them, or run them in batches; returns True if the execution stopped."""
        waiting: list[_Wait] = []
        runnable: list[_Run] = []
        for cs in calls:
            decided = self._settle(cs)
            if isinstance(decided, _Run) and cs.child_id is not None:
                decided = yield from self._after_child(decided, cs.child_id)
            if isinstance(decided, _Run):
                runnable.append(decided)
            elif decided is not None:
                waiting.append(decided)
        batches = [runnable] if len(runnable) < 2 else self._batches(runnable)
        held = len(runnable)
        for i, batch in enumerate(batches):
            if not batch:
                break
            if i and ((yield from self._cancel_seen()) or self._stopping()):
                yield from self.flush(barrier=True)
                return True
            room = self._tool_room()
            if room is not None and room < len(batch):
                # Only as many bodies start as the limit allows, even within one turn; the rest stay open
                # (no intent recorded, never run) until the budget is raised and the execution resumed.
                if room:
                    waiting.extend((yield from self._run_batch(batch[:room])))
                waiting.append(self._budget_wait("max_tool_calls", held - room))
                break
            held -= len(batch)
            waiting.extend((yield from self._run_batch(batch)))
        if not waiting:
            return False
        kind = waiting[0].kind
        same = [w for w in waiting if w.kind == kind]
        pending = [p for w in same for p in w.calls]
        question = next((w.question for w in same if w.question), None)
        messages: list[str] = []
        for w in same:
            messages.extend([w.message] if w.message else [p.message for p in w.calls if p.message])
        message = "; ".join(messages)
        first = same[0]
        reason = SuspendReason(
            kind=kind, calls=pending, question=question, message=message, limit=first.limit, spent=first.spent
        )
        yield from self.suspend(reason)
        return True

    def _batches(self, runnable: list[_Run]) -> list[list[_Run]]:
        """Consecutive calls that may run at once form one batch; a call that may not runs alone."""
        if not self.settings.parallel_tools:
            return [[r] for r in runnable]
        batches: list[list[_Run]] = []
        for r in runnable:
            if r.tool.parallel and batches and batches[-1][-1].tool.parallel:
                batches[-1].append(r)
            else:
                batches.append([r])
        return batches

    def _finish(self, cs: CallState, *, result: Any = None, error: str | None = None, source: str = "tool") -> None:
        result, error = self._redact_outcome(self.settings.tools.get(cs.call.name), result, error)
        self.buffer(ToolFinished(at=self._now(), call_id=cs.call.id, result=result, error=error, source=source))

    def _after_child(self, run: _Run, child_id: str) -> Steps[_Run | _Wait]:
        """A call whose body delegated to a sub-agent that stopped: wait on, unless the child was answered."""
        child = yield Io(read_child, self.store, child_id)
        if child is not None and child[1]:
            return _child_wait(child_id, child[0].suspend_reason)
        return run  # the child was answered (or is gone): run the body again, which continues it

    def _settle(self, cs: CallState) -> _Run | _Wait | None:
        """Decide one call: finish it without a body (None), gate it (a wait), or let its body run.

        A call waiting on a sub-agent comes back as a run; :meth:`_after_child` then looks at the child.
        """
        s = self.settings
        call = cs.call
        name = call.name
        pending = PendingCall(call_id=call.id, name=name, arguments=call.arguments)
        if s.human_input_tool and name == s.human_input_tool and name not in s.tools:
            if cs.human_input is not None:
                self._finish(cs, result=cs.human_input, source="human")
                return None
            question = call.arguments.get("question") if isinstance(call.arguments, dict) else None
            return _Wait("human_input", [pending], str(question) if question else str(call.arguments))
        if cs.question is not None:  # a tool asked a human; the answer is its result
            if cs.human_input is None:
                return _Wait("human_input", [pending], cs.question)
            self._finish(cs, result=cs.human_input, source="human")
            return None
        tool = s.tools.get(name)
        if tool is None:
            if name in self.state.known_tools:
                raise ReplayMismatchError(
                    self.state.execution_id,
                    f"the log records a call to tool {name!r} ({call.id}), which this agent does not have",
                )
            self._finish(cs, error=f"unknown tool {name!r}", source="invalid")
            return None
        try:
            arguments = tool.validate(self._unredacted.get(call.id, call.arguments))
        except ValueError as e:
            self._finish(cs, error=f"invalid arguments for {name}: {e}", source="invalid")
            return None
        if cs.child_id is not None:  # the body delegated to a sub-agent that stopped to wait
            return _Run(cs, tool, arguments, pending)
        decision = cs.decision
        if decision is not None and not decision.approved:
            reason = f": {decision.reason}" if decision.reason else ""
            self._finish(cs, error=f"the call was rejected by a human{reason}", source="rejected")
            return None
        if decision is None and cs.attempts == 0:
            for contract_name, check in s.contracts:
                try:
                    check(name, arguments)
                except Exception as e:  # noqa: BLE001 - a contract says no by raising anything
                    message = printable(f"contract {contract_name!r}: {e}")
                    return _Wait("contract", [msgspec.structs.replace(pending, message=message)])
            if tool.requires_confirmation or name in s.require_approval:
                return _Wait("approval", [pending])
        if tool.target == "client":
            return _Wait("client_tool", [pending])
        if cs.in_doubt and not tool.retry_in_doubt:
            message = "the process stopped inside this tool; it may or may not have acted"
            return _Wait("in_doubt", [msgspec.structs.replace(pending, message=message)])
        return _Run(cs, tool, arguments, pending)

    def _run_batch(self, batch: list[_Run]) -> Steps[list[_Wait]]:
        """Write the batch's intents in one write, run the bodies, record each result as it comes in."""
        state = self.state
        s = self.settings
        eid = state.execution_id
        invocations = []
        for i, r in enumerate(batch):
            call_id = r.cs.call.id
            key = idempotency_key(eid, call_id)
            attempt = r.cs.attempts + 1
            self.buffer(ToolStarted(at=self._now(), call_id=call_id, idempotency_key=key, attempt=attempt))
            context = ToolCallContext(
                execution_id=eid,
                call_id=call_id,
                idempotency_key=key,
                attempt=attempt,
                depth=state.depth,
                max_depth=s.max_depth,
                lineage=(eid, *s.ancestors),
                agent_id=s.agent_id,
            )
            invocations.append(Invocation(i, r.tool, r.arguments, context))
        yield from self.flush(barrier=True, ahead=one_sync_body(invocations))
        yield StartCalls(invocations)
        waits: list[_Wait] = []
        left = len(batch)
        while left:
            ended: list[ToolOutcome] = yield NEXT_RESULT
            for done in ended:
                wait = self._record(done, batch[done.index])
                if wait is not None:
                    waits.append(wait)
            left -= len(ended)
            if left:  # more bodies are running: these results go down now, as they came in
                yield from self.flush(running=True)
        return waits

    def _record(self, done: ToolOutcome, run: _Run) -> _Wait | None:
        """Buffer what a body came to: its result or error, a question for a human, or a sub-agent's wait.

        The body has run and its intent is recorded, so this may not fail: the objects it returned or raised
        are the user's (an ``__str__`` that raises, a value too deep to convert), and anything they raise here
        becomes the call's recorded error rather than escaping, which would leave the call open and have every
        resume run the body again. A redactor that raises leaves nothing of the outcome recorded but the fact.
        """
        call_id = run.cs.call.id
        e = done.error
        if isinstance(e, DelegationSuspended):
            self.buffer(ChildSuspended(at=self._now(), call_id=call_id, child_id=e.execution_id))
            return _child_wait(e.execution_id, e.reason)
        if isinstance(e, CallInDoubtError):  # sent, answer lost: no result is recorded, the call stays in doubt
            try:
                message = self._redact_text(run.tool, _text(e.message) + "; it may or may not have acted")
            except Exception:  # noqa: BLE001 - unreadable, or a redactor failed: said without the tool's words
                message = "its answer was lost; it may or may not have acted"
            return _Wait("in_doubt", [msgspec.structs.replace(run.pending, message=message)])
        result: Any = None
        error: str | None = None
        try:
            if isinstance(e, ToolError):
                error = _text(e.message)
            elif e is not None:
                error = f"{type(e).__name__}: {_text(e)}"
            elif isinstance(done.value, Clarification):
                question = self._redact_text(run.tool, _text(done.value.question))
                self.buffer(InputRequested(at=self._now(), call_id=call_id, question=question))
                return _Wait("human_input", [run.pending], question)
            else:
                try:
                    result = msgspec.to_builtins(done.value, str_keys=True)
                except Exception as exc:  # noqa: BLE001 - any failure of the user's value: TypeError, RecursionError
                    error = f"tool returned a value that cannot be stored as JSON: {type(exc).__name__}: {_text(exc)}"
            result, error = self._redact_outcome(run.tool, result, error)
        except _Unreadable as why:
            result, error = None, str(why)
        except Exception as exc:  # noqa: BLE001 - a redactor's failure: nothing of the outcome it was given is kept
            name = type(exc).__name__
            result, error = None, f"the tool's outcome could not be recorded: a redactor raised {name}"
        self._unredacted.pop(call_id, None)
        record = ToolFinished(at=self._now(), call_id=call_id, result=result, error=error, duration_ms=done.duration_ms)
        self.buffer(tool_record(record))
        return None


class _Unreadable(Exception):  # noqa: N818 - an internal signal of _text, never seen outside _record
    """Text a tool gave (an error's message, a question) could not be read: why, without calling its code again."""


def _text(value: object) -> str:
    """``str(value)``, recordable (see :func:`printable`); :class:`_Unreadable` if its ``__str__`` fails.

    An exception's ``__str__`` may call the ``__repr__`` of anything it holds (a ``KeyError`` of an object), so
    a tool's error or question can fail to become text; the name of what it raised is all that is said of it.
    """
    try:
        return printable(str(value))
    except Exception as exc:  # noqa: BLE001 - the user's __str__ or __repr__: anything
        kind, failed = type(value).__name__, type(exc).__name__
        raise _Unreadable(f"the text of a {kind} the tool gave could not be read (it raised {failed})") from None


def _child_wait(child_id: str, reason: SuspendReason | None) -> _Wait:
    """The parent's wait for a suspended sub-agent: the child's pending calls, with ids qualified by the child."""
    if reason is None:
        return _Wait("suspended", [], message=WAITING_FOR_SUB_AGENT + child_id)
    calls = [
        c if "/" in c.call_id else msgspec.structs.replace(c, call_id=f"{child_id}/{c.call_id}") for c in reason.calls
    ]
    message = reason.message or WAITING_FOR_SUB_AGENT + child_id
    return _Wait(reason.kind, calls, reason.question, message, reason.limit, dict(reason.spent))


def _as_provider_error(e: Exception, provider: object, name: str) -> ProviderError:
    if isinstance(e, ProviderError):
        return e
    classify = getattr(provider, "classify_error", None)
    if callable(classify):
        classified = classify(e)
        if isinstance(classified, ProviderError):
            return classified
    return ProviderError(f"{type(e).__name__}: {e}", provider=name, retryable=False)
