"""The agent loop: decide, record the intent, act, record the result.

One :class:`Runner` advances one claimed execution. It keeps the folded state in memory and applies every
record as it is made, so no step re-reads or re-folds the log. Records are buffered only between a decision
and the next point where the outside world is touched, and written before it:

* the model's response goes down with the first tool's intent, before that tool's body runs;
* a tool's result goes down with the next tool's intent, or alone before the next model call;
* a suspension, completion or failure goes down with whatever is buffered, as a durability barrier.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import msgspec

from delite.engine.budget import Budget
from delite.engine.events import current_sink
from delite.errors import DeliteError, ProviderError, ReplayMismatchError, ToolError
from delite.log.records import (
    ExecutionCancelled,
    ExecutionCompleted,
    ExecutionFailed,
    ExecutionResumed,
    ExecutionSuspended,
    InputRequested,
    ModelCallFailed,
    ModelResponded,
    PendingCall,
    Record,
    RecordedToolCall,
    SuspendReason,
    ToolFinished,
    ToolStarted,
    Usage,
)
from delite.providers.base import ModelTurn, normalize_turn
from delite.state.fold import apply, fold
from delite.state.model import CallState, ExecutionState
from delite.store.base import ExecutionLog, Store
from delite.tools.base import Clarification, Tool, ToolCallContext, running

__all__ = ["Contract", "RetryPolicy", "RunSettings", "Runner", "idempotency_key"]

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

    def delay(self, attempt: int, retry_after: float | None) -> float:
        """Seconds to wait before attempt ``attempt + 1``."""
        if retry_after is not None:
            return min(max(retry_after, 0.0), self.max_delay)
        raw = min(self.base_delay * 2.0 ** (attempt - 1), self.max_delay)
        jitter: float = random.random()  # noqa: S311 - jitter, not cryptography
        return raw * (1 - 0.25 * jitter)


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


def idempotency_key(execution_id: str, call_id: str) -> str:
    """The key a tool call keeps across retries: stable, unique in the data directory."""
    return f"{execution_id}:{call_id}"


_UNSET = object()


class Runner:
    """Advances one claimed execution until it completes, suspends, fails or is cancelled."""

    def __init__(self, log: ExecutionLog, state: ExecutionState, settings: RunSettings, store: Store) -> None:
        """Take a claimed log and its folded state."""
        self.log = log
        self.state = state
        self.settings = settings
        self.store = store
        self._pending: list[Record] = []
        self._resumed_from = state.suspend_reason
        self._sink = current_sink()  # set when the run is streamed (delite.engine.streaming)
        if self._sink is not None:
            self._sink.bind(state)

    # -- writing ---------------------------------------------------------------------------------------------

    def buffer(self, record: Record) -> None:
        """Apply a record to the state now; it is written with the next flush."""
        apply(self.state, record)
        self._pending.append(record)

    def flush(self, *, barrier: bool = False) -> None:
        """Write every buffered record in one append."""
        if self._pending:
            records, self._pending = self._pending, []
            self.log.append(records, barrier=barrier)
            if self._sink is not None:
                self._sink.written(records)

    def _now(self) -> float:
        return self.settings.clock()

    # -- the loop --------------------------------------------------------------------------------------------

    def advance(self, *, model: str | None = None) -> None:
        """Run steps until the execution stops; every record is durable when this returns."""
        state = self.state
        while True:
            if state.status.is_terminal:
                self.flush(barrier=True)
                return
            if self._cancel_seen():
                return
            open_calls = state.open_calls()
            if open_calls:
                if self._run_calls(open_calls):
                    return
                continue
            turn = state.last_turn
            if turn is not None and not turn.tool_calls:
                self.buffer(ExecutionCompleted(at=self._now(), answer=turn.content or ""))
                self.flush(barrier=True)
                return
            if self._budget_exhausted():
                return
            self.flush()
            if not self._call_model(model):
                return

    def _cancel_seen(self) -> bool:
        eid = self.state.execution_id
        if not self.store.cancel_requested(eid):
            return False
        self.buffer(ExecutionCancelled(at=self._now(), reason="cancel requested"))
        self.flush(barrier=True)
        self.store.clear_cancel(eid)
        return True

    def suspend(self, reason: SuspendReason) -> None:
        """Stop on purpose. Re-suspending for the same reason with nothing new to say writes nothing."""
        if reason == self._resumed_from and all(isinstance(r, ExecutionResumed) for r in self._pending):
            # Nothing happened since the execution last suspended for this: leave the log as it was.
            self._pending.clear()
            self.state = fold(self.log.records)
            return
        self.buffer(ExecutionSuspended(at=self._now(), reason=reason))
        self.flush(barrier=True)

    def fail(self, error: BaseException) -> None:
        """Record that the run stopped on an error; ``resume`` retries from the last durable step."""
        self.buffer(ExecutionFailed(at=self._now(), error_type=type(error).__name__, message=str(error)))
        self.flush(barrier=True)

    # -- budget ----------------------------------------------------------------------------------------------

    def _budget_exhausted(self) -> bool:
        budget = self.settings.budget
        if budget is None:
            return False
        t = self.state.totals
        hit = budget.exhausted(t)
        if hit is None:
            return False
        spent = {
            "dollars": str(t.cost) if t.cost_known else None,
            "llm_calls": t.llm_calls,
            "tokens": t.total_tokens,
            "tool_calls": t.tool_calls,
        }
        self.suspend(SuspendReason(kind="budget", limit=hit, spent=spent, message=f"budget limit {hit} reached"))
        return True

    # -- model calls -----------------------------------------------------------------------------------------

    def _call_model(self, model_override: str | None) -> bool:
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
                raw = self._ask(model, step, attempt)
                turn = normalize_turn(raw, provider=s.provider_name)
            except Exception as e:
                error = _as_provider_error(e, s.provider, s.provider_name)
                retry = error.retryable and attempt < s.retry.max_attempts
                status = getattr(error, "status_code", None)
                self.buffer(
                    ModelCallFailed(
                        at=self._now(),
                        step=step,
                        attempt=attempt,
                        error=str(error)[:2000],
                        retryable=retry,
                        model=model,
                        status_code=status,
                        usage=error.usage if isinstance(error.usage, Usage) else None,
                    )
                )
                if not retry:
                    self.fail(error)
                    raise error from e
                self.flush()
                s.sleep(s.retry.delay(attempt, error.retry_after))
                if self._cancel_seen():
                    return False
                continue
            break
        duration = (time.perf_counter() - started) * 1000
        self._record_turn(turn, step, model, attempt, duration)
        return True

    def _ask(self, model: str | None, step: int, attempt: int) -> Any:
        """One call to the provider; streamed to the run's consumer when it has one and the provider can."""
        s = self.settings
        sink = self._sink
        stream = getattr(s.provider, "stream", None) if sink is not None else None
        if sink is None or not callable(stream):
            return s.provider(list(self.state.messages), s.schemas, model)
        return stream(list(self.state.messages), s.schemas, model, on_text=lambda text: sink.text(step, attempt, text))

    def _record_turn(self, turn: ModelTurn, step: int, model: str | None, attempt: int, duration_ms: float) -> None:
        calls = [
            RecordedToolCall(id=f"c{step}.{i}", name=c.name, arguments=c.arguments, provider_id=c.id)
            for i, c in enumerate(turn.tool_calls)
        ]
        self.buffer(
            ModelResponded(
                at=self._now(),
                step=step,
                model=turn.model or model,
                content=turn.content,
                tool_calls=calls,
                usage=turn.usage,
                duration_ms=round(duration_ms, 3),
                attempt=attempt,
                raw_usage=turn.raw_usage,
            )
        )

    # -- tool calls ------------------------------------------------------------------------------------------

    def _run_calls(self, calls: list[CallState]) -> bool:
        """Settle each open call; returns True if the execution suspended."""
        waiting: list[tuple[str, PendingCall, str | None]] = []
        for cs in calls:
            gate = self._settle(cs)
            if gate is not None:
                waiting.append(gate)
            elif self._cancel_seen():
                return True
        if not waiting:
            return False
        kind = waiting[0][0]
        pending = [p for k, p, _ in waiting if k == kind]
        question = next((q for k, _, q in waiting if k == kind and q), None)
        message = "; ".join(p.message for p in pending if p.message)
        self.suspend(SuspendReason(kind=kind, calls=pending, question=question, message=message))
        return True

    def _finish(self, cs: CallState, *, result: Any = None, error: str | None = None, source: str = "tool") -> None:
        self.buffer(ToolFinished(at=self._now(), call_id=cs.call.id, result=result, error=error, source=source))

    def _settle(self, cs: CallState) -> tuple[str, PendingCall, str | None] | None:
        """Run, resolve or gate one call. Returns ``(kind, pending, question)`` when it must wait."""
        s = self.settings
        call = cs.call
        name = call.name
        pending = PendingCall(call_id=call.id, name=name, arguments=call.arguments)
        if s.human_input_tool and name == s.human_input_tool and name not in s.tools:
            if cs.human_input is not None:
                self._finish(cs, result=cs.human_input, source="human")
                return None
            question = call.arguments.get("question") if isinstance(call.arguments, dict) else None
            return ("human_input", pending, str(question) if question else str(call.arguments))
        if cs.question is not None:  # a tool asked a human; the answer is its result
            if cs.human_input is None:
                return ("human_input", pending, cs.question)
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
            arguments = tool.validate(call.arguments)
        except ValueError as e:
            self._finish(cs, error=f"invalid arguments for {name}: {e}", source="invalid")
            return None
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
                    message = f"contract {contract_name!r}: {e}"
                    return ("contract", msgspec.structs.replace(pending, message=message), None)
            if tool.requires_confirmation or name in s.require_approval:
                return ("approval", pending, None)
        if tool.target == "client":
            return ("client_tool", pending, None)
        if cs.in_doubt and not tool.retry_in_doubt:
            message = "the process stopped inside this tool; it may or may not have acted"
            return ("in_doubt", msgspec.structs.replace(pending, message=message), None)
        return self._invoke(cs, tool, arguments, pending)

    def _invoke(
        self, cs: CallState, tool: Tool, arguments: dict[str, Any], pending: PendingCall
    ) -> tuple[str, PendingCall, str | None] | None:
        eid = self.state.execution_id
        key = idempotency_key(eid, cs.call.id)
        attempt = cs.attempts + 1
        self.buffer(ToolStarted(at=self._now(), call_id=cs.call.id, idempotency_key=key, attempt=attempt))
        self.flush(barrier=True)
        started = time.perf_counter()
        result: Any = _UNSET
        error: str | None = None
        with running(ToolCallContext(execution_id=eid, call_id=cs.call.id, idempotency_key=key, attempt=attempt)):
            try:
                value = tool.invoke(arguments)
            except ToolError as e:
                error = e.message
            except DeliteError as e:
                error = f"{type(e).__name__}: {e}"
            except Exception as e:  # noqa: BLE001 - a tool's exception is recorded and shown to the model
                error = f"{type(e).__name__}: {e}"
            else:
                if isinstance(value, Clarification):
                    self.buffer(InputRequested(at=self._now(), call_id=cs.call.id, question=value.question))
                    return ("human_input", pending, value.question)
                try:
                    result = msgspec.to_builtins(value, str_keys=True)
                except (TypeError, ValueError) as e:
                    error = f"tool returned a value that cannot be stored as JSON: {e}"
        duration = round((time.perf_counter() - started) * 1000, 3)
        self.buffer(
            ToolFinished(
                at=self._now(),
                call_id=cs.call.id,
                result=None if result is _UNSET else result,
                error=error,
                duration_ms=duration,
            )
        )
        return None


def _as_provider_error(e: Exception, provider: object, name: str) -> ProviderError:
    if isinstance(e, ProviderError):
        return e
    classify = getattr(provider, "classify_error", None)
    if callable(classify):
        classified = classify(e)
        if isinstance(classified, ProviderError):
            return classified
    return ProviderError(f"{type(e).__name__}: {e}", provider=name, retryable=False)
