"""The embedded agent: ``with Agent("./data") as agent: agent.run(...)``."""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable, Iterable, Mapping
from types import TracebackType
from typing import Any, Literal, Self

import msgspec

from delite.engine.budget import Budget
from delite.engine.loop import Contract, RetryPolicy, Runner, RunSettings
from delite.engine.replay import config_changes
from delite.engine.response import Response
from delite.engine.streaming import EventStream, TextStream
from delite.errors import (
    AlreadyDecidedError,
    DriftError,
    ExecutionAlreadyActiveError,
    ExecutionAlreadyClaimedError,
    ExecutionAlreadyTerminalError,
    ExecutionNotSuspendedError,
    IdempotencyConflictError,
    InvalidToolResultError,
    SuspendKindMismatchError,
    UsageError,
)
from delite.log.durability import Durability
from delite.log.records import (
    ConfigFingerprint,
    DecisionRecorded,
    DriftAccepted,
    ExecutionCancelled,
    ExecutionResumed,
    ExecutionStarted,
    InDoubtResolved,
    InputSubmitted,
    Record,
    ToolFinished,
)
from delite.providers.base import provider_name
from delite.state.fold import fold
from delite.state.model import ExecutionState
from delite.state.outcome import outcome
from delite.store.base import ExecutionLog, Store
from delite.store.file import FileStore
from delite.store.ids import new_execution_id, validate_execution_id
from delite.tools.base import Tool, tool

__all__ = ["Agent"]

DriftPolicy = Literal["error", "warn", "allow"]

_HUMAN_INPUT_SCHEMA = {
    "type": "object",
    "properties": {"question": {"type": "string", "description": "The question to ask the human."}},
    "required": ["question"],
}


class Agent:
    """A tool-using agent whose every step is durable in a data directory.

    Building an Agent does no I/O, so a web server can build one per request. Every execution is a log file
    under ``data_dir``; any Agent (in any process) that shares the directory can continue it by id.

    Args:
        data_dir: the data directory (created on first write). Ignored when ``store`` is given.
        provider: the model: a provider object, any callable ``(messages, tools, model) -> dict``, or a
            recipe string such as ``"anthropic:claude-haiku-4-5"`` (see :func:`delite.providers.from_recipe`).
        prompt: the system prompt.
        tools: functions or :class:`~delite.tools.Tool` objects the model may call.
        model: the default model id passed to the provider.
        agent_id: a name for this agent, recorded with each execution it starts.
        durability: ``"full"`` (default), ``"normal"`` or ``"off"``; see :class:`~delite.log.Durability`.
        store: a :class:`~delite.store.Store` to use instead of files under ``data_dir``.
        require_approval: names of tools that need a human's approval before they run.
        budget: spending limits per execution.
        on_drift: what to do when a resumed execution was started with another prompt, tool set, provider
            or default model: ``"error"`` (raise :class:`~delite.errors.DriftError`), ``"warn"`` (record it,
            warn, continue) or ``"allow"`` (record it, continue).
        human_input_tool: the name of the built-in tool the model calls to ask a human a question, or None
            to offer no such tool.
        retry: how model calls are retried.
        clock: the wall clock for record timestamps (a seam for tests).
    """

    def __init__(
        self,
        data_dir: str | os.PathLike[str] | None = None,
        *,
        provider: Callable[..., Any] | str | None = None,
        prompt: str | None = None,
        tools: Iterable[Tool | Callable[..., Any]] = (),
        model: str | None = None,
        agent_id: str = "default",
        durability: Durability | str = Durability.FULL,
        store: Store | None = None,
        require_approval: Iterable[str] = (),
        budget: Budget | None = None,
        on_drift: DriftPolicy = "error",
        human_input_tool: str | None = "ask_human",
        retry: RetryPolicy | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """Configure the agent; nothing is read or written yet."""
        if store is None:
            if data_dir is None:
                raise UsageError("Agent needs a data directory (or a store)")
            store = FileStore(data_dir, durability=durability)
        if on_drift not in ("error", "warn", "allow"):
            raise UsageError(f"on_drift must be 'error', 'warn' or 'allow', not {on_drift!r}")
        self.store = store
        self.prompt = prompt
        self.model = model
        self.agent_id = agent_id
        self.budget = budget
        self.on_drift: DriftPolicy = on_drift
        self.human_input_tool = human_input_tool
        self.retry = retry or RetryPolicy()
        self.require_approval = frozenset(require_approval)
        self.clock = clock
        self._provider = _resolve_provider(provider)
        self._tools: dict[str, Tool] = {}
        self._contracts: list[tuple[str, Contract]] = []
        for t in tools:
            self.add_tool(t)

    # -- configuration ---------------------------------------------------------------------------------------

    def add_tool(self, fn: Tool | Callable[..., Any]) -> Tool:
        """Offer a tool to the model (a plain function becomes a tool named after it)."""
        t = fn if isinstance(fn, Tool) else tool(fn)
        if t.name in self._tools:
            raise UsageError(f"a tool named {t.name!r} is already registered")
        if self.human_input_tool and t.name == self.human_input_tool:
            raise UsageError(f"{t.name!r} is the built-in human input tool's name; pass human_input_tool=None first")
        self._tools[t.name] = t
        return t

    @property
    def tools(self) -> list[Tool]:
        """The registered tools."""
        return list(self._tools.values())

    def set_llm(self, provider: Callable[..., Any] | str) -> None:
        """Set the model provider (an object, a callable or a recipe string)."""
        self._provider = _resolve_provider(provider)

    @property
    def provider(self) -> Callable[..., Any] | None:
        """The model provider."""
        return self._provider

    def contract(self, name: str) -> Callable[[Contract], Contract]:
        """Register a check ``(tool_name, arguments)`` that runs in code before every tool call.

        A check that raises stops that call before it runs and suspends the execution (kind ``contract``) with
        the message; a human may then approve (override) or reject the call.
        """

        def register(check: Contract) -> Contract:
            self._contracts.append((name, check))
            return check

        return register

    def fingerprint(self) -> ConfigFingerprint:
        """This agent's configuration as recorded when it starts an execution and compared when it resumes."""
        specs = [t.spec for t in self._tools.values()]
        return ConfigFingerprint(
            prompt=self.prompt, tools=specs, provider=provider_name(self._provider), model=self.model
        )

    def _settings(self) -> RunSettings:
        if self._provider is None:
            raise UsageError("the agent has no model provider: pass provider=... or call set_llm()")
        schemas = [t.schema() for t in self._tools.values()]
        if self.human_input_tool:
            schemas.append(
                {
                    "name": self.human_input_tool,
                    "description": "Ask the human a clarifying question and wait for the answer.",
                    "parameters": _HUMAN_INPUT_SCHEMA,
                }
            )
        return RunSettings(
            provider=self._provider,
            provider_name=provider_name(self._provider),
            tools=self._tools,
            model=self.model,
            contracts=tuple(self._contracts),
            require_approval=self.require_approval,
            human_input_tool=self.human_input_tool,
            budget=self.budget,
            retry=self.retry,
            clock=self.clock,
            schemas=schemas,
        )

    # -- running ---------------------------------------------------------------------------------------------

    def run(
        self,
        text: str,
        *,
        execution_id: str | None = None,
        history: list[dict[str, Any]] | None = None,
        metadata: dict[str, Any] | None = None,
        model: str | None = None,
        idempotency_key: str | None = None,
    ) -> Response:
        """Start an execution, or continue the one named by ``execution_id``, and advance it until it stops.

        On an existing execution nothing is started over: completed model and tool calls return their
        recorded results, and a completed execution returns its recorded response.

        Args:
            text: the user's message.
            execution_id: continue this execution, or start a new one with this id; a new id is generated
                when omitted.
            history: earlier chat turns the application owns (OpenAI chat shape), sent before ``text``.
            metadata: JSON stored with the execution (a ``thread_id``, a config key).
            model: use this model for this run's calls instead of the agent's default (recorded per call).
            idempotency_key: a key for this request (say, a client's request id). The same key with the same
                input returns that execution's result, or continues it if it stopped; with another input it
                raises :class:`~delite.errors.IdempotencyConflictError`; while a live process advances it,
                :class:`~delite.errors.ExecutionAlreadyActiveError`. A crash never strands a key: the next call
                with it continues the execution.
        """
        if not isinstance(text, str):
            raise UsageError("text must be a string")
        settings = self._settings()
        eid = validate_execution_id(execution_id) if execution_id is not None else new_execution_id()
        if idempotency_key is not None:
            eid = self._bind_key(idempotency_key, eid, text, history, explicit=execution_id is not None)
        started = ExecutionStarted(
            at=self.clock(),
            execution_id=eid,
            agent_id=self.agent_id,
            input=text,
            history=list(history or []),
            metadata=dict(metadata or {}),
            config=self.fingerprint(),
            model=model,
            idempotency_key=idempotency_key,
        )
        try:
            log = self.store.claim(eid, create=[started])
        except ExecutionAlreadyClaimedError:
            if idempotency_key is not None:
                raise ExecutionAlreadyActiveError(eid, "running") from None
            raise
        with log:
            done = log.outcome  # a finished execution's outcome, from a snapshot verified against the log
            if done is not None and done.status.is_terminal and done.input == text:
                return Response.from_outcome(done)
            state = fold(log.records)
            if not log.created and state.input != text:
                raise UsageError(
                    f"execution {eid!r} was started with another input; pass the same text to continue it, "
                    "or omit execution_id to start a new execution"
                )
            return self._advance(log, state, settings, model=model, resumed=not log.created)

    def _bind_key(self, key: str, eid: str, text: str, history: list[dict[str, Any]] | None, *, explicit: bool) -> str:
        if not isinstance(key, str) or not key:
            raise UsageError("idempotency_key must be a non-empty string")
        fingerprint = hashlib.sha256(msgspec.json.encode([text, history or []])).hexdigest()
        bound, bound_fingerprint = self.store.bind_key(key, eid, fingerprint)
        if bound_fingerprint != fingerprint or (explicit and bound != eid):
            raise IdempotencyConflictError(key, bound)
        if bound != eid and self.store.is_claimed(bound):
            raise ExecutionAlreadyActiveError(bound, "running")
        return bound

    def resume(self, execution_id: str, *, model: str | None = None) -> Response:
        """Continue an execution after its suspension was answered, a crash, or a failure."""
        settings = self._settings()
        with self.store.claim(validate_execution_id(execution_id)) as log:
            done = log.outcome
            if done is not None and done.status.is_terminal:
                return Response.from_outcome(done)
            return self._advance(log, fold(log.records), settings, model=model, resumed=True)

    def stream(self, text: str, **options: Any) -> TextStream:
        """Run like :meth:`run` (same arguments), yielding the model's text as it arrives.

        ``for chunk in agent.stream("...")`` prints the answer as it is written; ``.response`` holds the
        :class:`Response` once the loop ends. Durability is unchanged: a model turn is recorded once complete,
        a broken or stalled stream is a failed attempt that is retried. See
        :class:`~delite.engine.streaming.TextStream`.
        """
        return TextStream(self.stream_events(text, **options))

    def stream_events(self, text: str, **options: Any) -> EventStream:
        """Run like :meth:`run` (same arguments), yielding typed events for a UI.

        Text deltas, tool calls started and finished, retries, and a last event ``Completed``, ``Suspended``,
        ``Cancelled`` or ``Failed`` carrying the :class:`Response`; see :mod:`delite.engine.events`.
        """
        return EventStream(lambda: self.run(text, **options))

    def _advance(
        self,
        log: ExecutionLog,
        state: ExecutionState,
        settings: RunSettings,
        *,
        model: str | None,
        resumed: bool,
        records: Iterable[Record] = (),
    ) -> Response:
        if state.status.is_terminal:
            return _respond(log, state)
        runner = Runner(log, state, settings, self.store)
        if resumed:
            self._check_drift(runner, state)
            runner.buffer(ExecutionResumed(at=self.clock(), pid=os.getpid()))
        for record in records:
            runner.buffer(record)
        runner.advance(model=model)
        return _respond(log, runner.state)

    def _check_drift(self, runner: Runner, state: ExecutionState) -> None:
        mine = self.fingerprint()
        changes = config_changes(state.config, mine)
        if not changes:
            return
        if self.on_drift == "error":
            raise DriftError(state.execution_id, changes)
        if self.on_drift == "warn":
            import warnings  # noqa: PLC0415 - only on this rare path

            warnings.warn(str(DriftError(state.execution_id, changes)), RuntimeWarning, stacklevel=4)
        runner.buffer(
            DriftAccepted(at=self.clock(), changes=[list(c) for c in changes], config=mine, policy=self.on_drift)
        )

    # -- reading ---------------------------------------------------------------------------------------------

    def get(self, execution_id: str) -> ExecutionState:
        """The folded state of an execution, read without claiming it."""
        return fold(self.store.read(validate_execution_id(execution_id)).records)

    def response(self, execution_id: str) -> Response:
        """The execution's current outcome as a :class:`Response`, without advancing it."""
        return Response.from_state(self.get(execution_id))

    # -- answering suspensions -------------------------------------------------------------------------------

    def _submit(
        self,
        execution_id: str,
        kinds: tuple[str, ...],
        build: Callable[[ExecutionState], list[Record]],
        *,
        advance: bool = True,
    ) -> Response:
        """Validate a submission against the suspended state, record it, and (by default) continue."""
        settings = self._settings() if advance else None
        with self.store.claim(validate_execution_id(execution_id)) as log:
            state = fold(log.records)
            if state.status.is_terminal:
                raise ExecutionAlreadyTerminalError(execution_id, state.status.value)
            reason = state.suspend_reason
            if not state.status.is_suspended or reason is None:
                raise ExecutionNotSuspendedError(execution_id, state.status.value)
            if reason.kind not in kinds:
                raise SuspendKindMismatchError(
                    execution_id, state.status.value, f"it waits for {reason.kind}, not {' or '.join(kinds)}"
                )
            records = build(state)
            if settings is None:
                log.append(records, barrier=True)
                fold(records, state)
                return Response.from_state(state)
            return self._advance(log, state, settings, model=None, resumed=True, records=records)

    def approve(self, execution_id: str, confirmation_id: str, *, reason: str | None = None) -> Response:
        """Approve one pending call (or override a contract for it). Recorded; call :meth:`resume` to go on."""
        return self.decide(execution_id, {confirmation_id: True}, reasons={confirmation_id: reason}, advance=False)

    def reject(self, execution_id: str, confirmation_id: str, *, reason: str | None = None) -> Response:
        """Reject one pending call: it never runs and the model is told why. Call :meth:`resume` to go on."""
        return self.decide(execution_id, {confirmation_id: False}, reasons={confirmation_id: reason}, advance=False)

    def submit_approval(
        self,
        execution_id: str,
        *,
        approved: bool | None = None,
        rejection_reason: str | None = None,
        decisions: Mapping[str, bool] | None = None,
    ) -> Response:
        """Decide every pending call (``approved=``) or each by id (``decisions=``), then continue the run."""
        if (approved is None) == (decisions is None):
            raise UsageError("pass exactly one of approved= or decisions=")
        if decisions is None:
            state = self.get(execution_id)
            reason = state.suspend_reason
            ids = reason.confirmation_ids if reason is not None and reason.kind in ("approval", "contract") else []
            if not ids:
                self._raise_not_waiting(execution_id, state, ("approval", "contract"))
            decisions = dict.fromkeys(ids, bool(approved))
        reasons = {cid: rejection_reason for cid, ok in decisions.items() if not ok}
        return self.decide(execution_id, decisions, reasons=reasons, advance=True)

    def decide(
        self,
        execution_id: str,
        decisions: Mapping[str, bool],
        *,
        reasons: Mapping[str, str | None] | None = None,
        advance: bool = True,
    ) -> Response:
        """Record decisions on pending approval or contract calls; continue the run when ``advance``.

        A decision for a call that is not pending raises :class:`InvalidToolResultError` and records nothing.
        """

        def build(state: ExecutionState) -> list[Record]:
            if not decisions:
                raise InvalidToolResultError(execution_id, "no decision given")
            unknown = sorted(c for c in decisions if c not in state.calls)
            if unknown:
                raise InvalidToolResultError(execution_id, f"no call with id {', '.join(unknown)}")
            pending = set(state.suspend_reason.confirmation_ids) if state.suspend_reason else set()
            settled = sorted(c for c in decisions if c not in pending or state.calls[c].decision is not None)
            if settled:
                raise AlreadyDecidedError(execution_id, state.status.value, f"call {', '.join(settled)} is not pending")
            now = self.clock()
            return [
                DecisionRecorded(at=now, call_id=c, approved=bool(ok), reason=(reasons or {}).get(c))
                for c, ok in decisions.items()
            ]

        return self._submit(execution_id, ("approval", "contract"), build, advance=advance)

    def submit_tool_results(self, execution_id: str, results: Mapping[str, Any], *, advance: bool = True) -> Response:
        """Give the results of client tool calls (``{call_id: value}``, every pending one) and continue.

        With ``advance=False`` the results are only recorded (no provider or tools needed, as in the
        ``delite`` command); :meth:`resume` continues later.
        """

        def build(state: ExecutionState) -> list[Record]:
            pending = state.suspend_reason.confirmation_ids if state.suspend_reason else []
            unknown = sorted(set(results) - set(pending))
            missing = [c for c in pending if c not in results]
            if unknown:
                raise InvalidToolResultError(execution_id, f"no pending client call with id {', '.join(unknown)}")
            if missing:
                raise InvalidToolResultError(execution_id, f"missing results for {', '.join(missing)}")
            now = self.clock()
            return [ToolFinished(at=now, call_id=c, result=_jsonable(results[c]), source="client") for c in pending]

        return self._submit(execution_id, ("client_tool",), build, advance=advance)

    def submit_input(self, execution_id: str, text: str, *, advance: bool = True) -> Response:
        """Answer the model's clarifying question and continue (only record it with ``advance=False``)."""
        if not isinstance(text, str):
            raise UsageError("text must be a string")

        def build(state: ExecutionState) -> list[Record]:
            ids = state.suspend_reason.confirmation_ids if state.suspend_reason else []
            now = self.clock()
            return [InputSubmitted(at=now, call_id=c, text=text) for c in ids]

        return self._submit(execution_id, ("human_input",), build, advance=advance)

    def resolve(
        self,
        execution_id: str,
        call_id: str,
        *,
        result: Any = None,
        error: str | None = None,
        rerun: bool = False,
        advance: bool = True,
    ) -> Response:
        """Settle an in-doubt call: supply its ``result`` (or ``error``), or ``rerun=True`` it; then continue.

        With ``advance=False`` the settlement is only recorded; :meth:`resume` continues later.
        """

        def build(state: ExecutionState) -> list[Record]:
            ids = state.suspend_reason.confirmation_ids if state.suspend_reason else []
            if call_id not in ids:
                raise InvalidToolResultError(execution_id, f"no in-doubt call with id {call_id}")
            if rerun:
                return [InDoubtResolved(at=self.clock(), call_id=call_id)]
            return [
                ToolFinished(at=self.clock(), call_id=call_id, result=_jsonable(result), error=error, source="operator")
            ]

        return self._submit(execution_id, ("in_doubt",), build, advance=advance)

    def cancel(self, execution_id: str, *, reason: str = "cancelled") -> Response:
        """Cancel an execution from any process.

        A suspended or stopped execution is cancelled at once; one that a live process is advancing stops at
        its next step boundary (no new model or tool call starts after that). Cancelling a completed or
        cancelled execution changes nothing and returns its status.
        """
        eid = validate_execution_id(execution_id)
        state = self.get(eid)
        if state.status.is_terminal:
            return Response.from_state(state)
        self.store.request_cancel(eid)
        try:
            log = self.store.claim(eid)
        except ExecutionAlreadyClaimedError:
            return Response.from_state(state)
        with log:
            state = fold(log.records)
            if not state.status.is_terminal:
                record = ExecutionCancelled(at=self.clock(), reason=reason)
                log.append([record], barrier=True)
                fold([record], state)
            self.store.clear_cancel(eid)
            return Response.from_state(state)

    def _raise_not_waiting(self, execution_id: str, state: ExecutionState, kinds: tuple[str, ...]) -> None:
        if state.status.is_terminal:
            raise ExecutionAlreadyTerminalError(execution_id, state.status.value)
        if not state.status.is_suspended:
            raise ExecutionNotSuspendedError(execution_id, state.status.value)
        raise SuspendKindMismatchError(execution_id, state.status.value, f"it does not wait for {' or '.join(kinds)}")

    # -- lifecycle -------------------------------------------------------------------------------------------

    def close(self) -> None:
        """Release what the agent holds (the store's handles). The provider is the caller's to close."""
        self.store.close()

    def __enter__(self) -> Self:
        """Use as a context manager."""
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        """Close the agent."""
        self.close()


def _resolve_provider(provider: Callable[..., Any] | str | None) -> Callable[..., Any] | None:
    """A recipe string becomes its provider now, so a bad recipe or a missing key fails at construction."""
    if not isinstance(provider, str):
        return provider
    from delite.providers.recipe import from_recipe  # noqa: PLC0415 - only when a recipe is used

    return from_recipe(provider)


def _respond(log: ExecutionLog, state: ExecutionState) -> Response:
    """The response for ``state``; a finished execution's outcome is offered to the store for the next claim."""
    result = outcome(state)
    if state.status.is_terminal and log.outcome is None:
        log.save_outcome(result)
    return Response.from_outcome(result)


def _jsonable(value: Any) -> Any:
    try:
        return msgspec.to_builtins(value, str_keys=True)
    except (TypeError, ValueError) as e:
        raise UsageError(f"the value cannot be stored as JSON: {e}") from e
