"""Every operation of an :class:`~delite.Agent`, written once as a generator of effects.

``run``, ``resume``, the submissions, ``cancel`` and the reads are generators that validate, claim, fold,
record and advance, yielding an effect (:mod:`delite.engine._effects`) wherever they touch the store, the
model or a tool. ``Agent.run`` drives one with :func:`~delite.engine._effects.drive`, ``Agent.arun`` with
:func:`~delite.engine._aio.adrive`: the same decisions, the same records, in the same order.

Sub-agents' suspensions are answered through their parent too: a call id of the form
``<child execution>/<call id>`` (as the parent's suspension lists it) is recorded in the child's log, then
the parent is resumed; its tool runs again and continues the child, which finds the answer in its log.
"""

from __future__ import annotations

import abc
import dataclasses
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Literal

import msgspec

from delite import _checks as checks
from delite.engine._answers import NOUNS, RECORDED, select, unanswered
from delite.engine._effects import Append, Claim, Io, Steps
from delite.engine._loop import Runner, RunSettings, tallied
from delite.engine._output import OutputSpec
from delite.engine._replay import config_changes
from delite.engine._response import Response
from delite.errors import (
    AlreadyDecidedError,
    DriftError,
    ExecutionAlreadyActiveError,
    ExecutionAlreadyClaimedError,
    ExecutionAlreadyTerminalError,
    ExecutionIdConflictError,
    ExecutionNotFoundError,
    ExecutionNotSuspendedError,
    IdempotencyConflictError,
    InvalidToolResultError,
    SuspendKindMismatchError,
    UsageError,
)
from delite.log._codec import encode_record
from delite.log._framing import MAX_RECORD_SIZE
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
from delite.state._fold import fold
from delite.state._model import ExecutionState
from delite.state._outcome import Outcome, outcome
from delite.store._base import ExecutionLog, Store
from delite.store._ids import new_execution_id, validate_execution_id
from delite.tools._base import DelegationSuspended
from delite.tools._redact import Redactor, redact_outcome

__all__ = ["Link", "Operations"]

DriftPolicy = Literal["error", "warn", "allow"]
_DECIDED = ("approval", "contract")  # the suspensions a decision answers


@dataclasses.dataclass(frozen=True)
class Link:
    """How a sub-agent's execution hangs off its parent's tool call (see :mod:`delite.engine._delegation`)."""

    child_id: str
    parent_id: str
    parent_call: str
    depth: int
    lineage: tuple[str, ...]
    max_depth: int


def typed(response: Response, spec: OutputSpec | None) -> Response:
    """The response with its recorded output converted to the output type (when there are both)."""
    if spec is None or response.output is None:
        return response
    return dataclasses.replace(response, output=spec.convert(response.output))


def jsonable(value: Any, name: str = "the value") -> Any:
    """A value as plain JSON values (Structs, dataclasses... converted), or a :class:`UsageError` naming it."""
    try:
        builtins = msgspec.to_builtins(value, str_keys=True)
    except (TypeError, ValueError) as e:
        raise UsageError(f"{name} cannot be stored as JSON: {e}") from e
    checks.check_json(name, builtins)
    return builtins


def check_storable(records: Iterable[Record], what: str) -> None:
    """Raise a :class:`UsageError` when a record built from the caller's arguments could not be written.

    A value over the per-record size limit is the caller's mistake (too much text, too large a result): it is
    refused here, before any byte is written, rather than failing at the append as a storage fault.
    """
    for record in records:
        size = len(encode_record(record))
        if size > MAX_RECORD_SIZE:
            raise UsageError(
                f"{what} is too large to record: {size:,} bytes once encoded, over the limit of "
                f"{MAX_RECORD_SIZE:,} bytes per record"
            )


def split_ids(ids: Iterable[str]) -> tuple[list[str], dict[str, list[str]]]:
    """Call ids of this execution, and those of sub-agents (``child/call``) grouped by child."""
    own: list[str] = []
    children: dict[str, list[str]] = {}
    for cid in ids:
        child, sep, call = cid.rpartition("/")
        if sep:
            children.setdefault(child, []).append(call)
        else:
            own.append(cid)
    return own, children


class Operations(abc.ABC):
    """The generators behind the Agent's methods; :class:`~delite.Agent` supplies its configuration."""

    store: Store
    clock: Callable[[], float]
    agent_id: str
    on_drift: DriftPolicy

    @abc.abstractmethod
    def fingerprint(self) -> ConfigFingerprint:
        """The configuration recorded with an execution."""

    @abc.abstractmethod
    def _settings(self, *, output: OutputSpec | None = None, link: Link | None = None) -> RunSettings:
        """Everything the loop needs from the agent, resolved for one run."""

    @abc.abstractmethod
    def _output(self, output_type: Any) -> OutputSpec | None:
        """How to validate a typed final answer, or None."""

    @abc.abstractmethod
    def _redactors(self, agent_id: str, tool_name: str) -> tuple[Redactor | None, ...]:
        """The redactors for a result of ``tool_name`` in an execution of ``agent_id``: the tool's, the agent's."""

    def _recorded_outcome(
        self, state: ExecutionState, call_id: str, result: Any, error: str | None
    ) -> tuple[Any, str | None]:
        """A result given from outside (a client tool's, an operator's) as it is recorded: redacted.

        The same redactors as for a result of a tool run here (:func:`~delite.tools._redact.redact_outcome`),
        chosen by the execution's agent and the call's tool, so what they remove never reaches the log.
        """
        cs = state.call(call_id)
        name = cs.call.name if cs is not None else ""
        return redact_outcome(self._redactors(state.agent_id, name), result, error)

    # -- running ---------------------------------------------------------------------------------------------

    def _run_op(
        self,
        text: str,
        *,
        execution_id: str | None,
        history: list[dict[str, Any]] | None,
        metadata: dict[str, Any] | None,
        model: str | None,
        idempotency_key: str | None,
        output: OutputSpec | None,
        link: Link | None,
    ) -> Steps[Response]:
        checks.check_run_args(text, history=history, metadata=metadata, model=model, idempotency_key=idempotency_key)
        settings = self._settings(output=output, link=link)
        if execution_id is not None:
            eid = validate_execution_id(execution_id)
        else:
            eid = link.child_id if link is not None else new_execution_id()
        started = self._started(
            eid,
            text,
            history=history,
            metadata=metadata,
            model=model,
            idempotency_key=idempotency_key,
            output=output,
            link=link,
        )
        check_storable([started], "the run's input (text, history and metadata)")  # before a key is bound
        if idempotency_key is not None:
            eid = yield from self._bind_key_op(idempotency_key, eid, text, history, explicit=execution_id is not None)
            started = msgspec.structs.replace(started, execution_id=eid)
        try:
            log = yield Claim(self.store, eid, [started])
        except ExecutionAlreadyClaimedError:
            if idempotency_key is not None:
                raise ExecutionAlreadyActiveError(eid, "running") from None
            raise
        done = log.outcome  # a finished execution's outcome, from a snapshot verified against the log
        if done is None and not log.created:
            done = yield from self._finished_op(log)
        if done is not None and done.status.is_terminal and done.input == text:
            return typed(Response.from_outcome(done), output)
        # a log the claim created holds only the records it was given, in memory: folding them needs no hop
        state = log.state() if log.created else (yield Io(log.state))
        if not log.created and state.input != text:
            raise ExecutionIdConflictError(eid, state.status.value)
        response = yield from self._advance_op(log, state, settings, model=model, resumed=not log.created)
        if link is not None and response.is_suspended and response.suspend_reason is not None:
            yield Io(log.release)
            raise DelegationSuspended(eid, response.suspend_reason)
        return response

    def _started(
        self,
        eid: str,
        text: str,
        *,
        history: list[dict[str, Any]] | None,
        metadata: dict[str, Any] | None,
        model: str | None,
        idempotency_key: str | None,
        output: OutputSpec | None,
        link: Link | None,
    ) -> ExecutionStarted:
        """The start record a run (or an enqueue, with no ``link``) writes first."""
        return ExecutionStarted(
            at=self.clock(),
            execution_id=eid,
            agent_id=self.agent_id,
            input=text,
            history=list(history or []),
            metadata=dict(metadata or {}),
            config=self.fingerprint(),
            model=model,
            idempotency_key=idempotency_key,
            parent_id=link.parent_id if link is not None else None,
            parent_call=link.parent_call if link is not None else None,
            depth=link.depth if link is not None else 0,
            output_schema=output.schema if output is not None else None,
            output_prompt=output.prompt if output is not None else None,
        )

    def _bind_key_op(
        self,
        key: str,
        eid: str,
        text: str,
        history: list[dict[str, Any]] | None,
        *,
        explicit: bool,
        active_ok: bool = False,
    ) -> Steps[str]:
        if not isinstance(key, str) or not key:
            raise UsageError("idempotency_key must be a non-empty string")
        import hashlib  # noqa: PLC0415 - OpenSSL's hashlib costs milliseconds to import; only with a key

        fingerprint = hashlib.sha256(msgspec.json.encode([text, history or []])).hexdigest()
        bound, bound_fingerprint = yield Io(self.store.bind_key, key, eid, fingerprint)
        if bound_fingerprint != fingerprint or (explicit and bound != eid):
            raise IdempotencyConflictError(key, bound)
        if not active_ok and bound != eid and (yield Io(self.store.is_claimed, bound)):
            raise ExecutionAlreadyActiveError(bound, "running")
        return str(bound)

    def _enqueue_op(
        self,
        text: str,
        *,
        execution_id: str | None,
        history: list[dict[str, Any]] | None,
        metadata: dict[str, Any] | None,
        model: str | None,
        idempotency_key: str | None,
        output: OutputSpec | None,
    ) -> Steps[str]:
        """Make a new execution durable (its start record, as ``run`` writes it) without advancing it; its id.

        Checked as ``run`` checks its arguments. An execution that exists already (the id given, or the one an
        idempotency key is bound to, with the same input) is left as it is and its id returned; another input
        raises what ``run`` raises (:class:`~delite.errors.ExecutionIdConflictError`,
        :class:`~delite.errors.IdempotencyConflictError`) with nothing written.
        """
        checks.check_run_args(text, history=history, metadata=metadata, model=model, idempotency_key=idempotency_key)
        self._settings(output=output)  # a missing provider is refused here, as run refuses it
        eid = validate_execution_id(execution_id) if execution_id is not None else new_execution_id()
        started = self._started(
            eid,
            text,
            history=history,
            metadata=metadata,
            model=model,
            idempotency_key=idempotency_key,
            output=output,
            link=None,
        )
        check_storable([started], "the run's input (text, history and metadata)")  # before a key is bound
        if idempotency_key is not None:
            bound = yield from self._bind_key_op(
                idempotency_key, eid, text, history, explicit=execution_id is not None, active_ok=True
            )
            if bound != eid and (yield Io(self.store.exists, bound)):
                return bound  # enqueued (or run) before: that execution, whatever it does now
            eid = bound
            started = msgspec.structs.replace(started, execution_id=eid)
        elif (yield Io(self.store.exists, eid)):
            state: ExecutionState = yield Io(self.store.state, eid)
            if state.input != text:
                raise ExecutionIdConflictError(eid, state.status.value)
            return eid
        try:
            log = yield Claim(self.store, eid, [started])
        except ExecutionAlreadyClaimedError:
            if idempotency_key is not None or execution_id is not None:
                return eid  # being created or advanced right now by another caller with the same request
            raise
        if not log.created:
            state = yield Io(log.state)
            if state.input != text:
                raise ExecutionIdConflictError(eid, state.status.value)
        yield Io(log.release)
        return eid

    def _take_op(self, log: ExecutionLog, state: ExecutionState, *, output: OutputSpec | None) -> Steps[Response]:
        """Advance an execution a worker claimed (``log``, folded into ``state``) and found it may take on.

        As :meth:`_resume_op` after its claim; the caller holds the claim and releases it.
        """
        settings = self._settings(output=output)
        return (yield from self._advance_op(log, state, settings, model=None, resumed=True))

    def _resume_op(self, execution_id: str, *, model: str | None, output: OutputSpec | None) -> Steps[Response]:
        checks.check_optional_text("model", model)
        settings = self._settings(output=output)
        log = yield Claim(self.store, validate_execution_id(execution_id))
        done = log.outcome
        if done is None:
            done = yield from self._finished_op(log)
        if done is not None and done.status.is_terminal:
            return typed(Response.from_outcome(done), output)
        state = yield Io(log.state)
        return (yield from self._advance_op(log, state, settings, model=model, resumed=True))

    def _finished_op(self, log: ExecutionLog) -> Steps[Outcome | None]:
        """The outcome of a finished log the store kept none for, folded without its conversation, then offered.

        None when the log is not finished: the caller folds it whole to continue it.
        """
        done: Outcome | None = yield Io(log.finished_outcome)
        if done is not None:
            yield Io(log.save_outcome, done)  # for the next claim, as a run that finishes offers its own
        return done

    def _advance_op(
        self,
        log: ExecutionLog,
        state: ExecutionState,
        settings: RunSettings,
        *,
        model: str | None,
        resumed: bool,
        records: Iterable[Record] = (),
    ) -> Steps[Response]:
        if state.status.is_terminal:
            return (yield from self._respond_op(log, state, settings.output))
        settings = self._fit(settings, state)
        runner = Runner(log, state, settings, self.store)
        if resumed:
            self._check_drift(runner, state)
            runner.buffer(ExecutionResumed(at=self.clock(), pid=os.getpid()))
        for record in records:
            runner.buffer(record)
        for source in settings.sources:  # tool sources (MCP servers): catalog, drift, their tools
            yield from source.attach(runner, resumed=resumed, on_drift=self.on_drift)
        yield from runner.steps(model=model)
        return (yield from self._respond_op(log, runner.state, settings.output))

    def _fit(self, settings: RunSettings, state: ExecutionState) -> RunSettings:
        """The run's settings checked against what the execution recorded: output type and parent."""
        spec = settings.output
        recorded = state.output_schema
        changes: dict[str, Any] = {}
        if recorded is None:
            if spec is not None:
                changes["output"] = None  # started without structured output: the answer is plain text
        elif spec is None:
            raise UsageError(
                f"execution {state.execution_id!r} expects structured output; pass output_type=... "
                "(or build the agent with output_type=...) to continue it"
            )
        elif not spec.matches(recorded):
            raise UsageError(
                f"execution {state.execution_id!r} was started with another output type than {spec.name}; "
                "continue it with the same output_type"
            )
        if not settings.ancestors and state.parent_id:
            changes["ancestors"] = (state.parent_id,)  # resumed on its own: a parent's cancel still reaches it
        return dataclasses.replace(settings, **changes) if changes else settings

    def _respond_op(self, log: ExecutionLog, state: ExecutionState, spec: OutputSpec | None) -> Steps[Response]:
        """The response for ``state``; a finished execution's outcome is offered to the store for the next claim."""
        result = outcome(state)
        if state.status.is_terminal and log.outcome is None:
            yield Io(log.save_outcome, result)
        return typed(Response.from_outcome(result), spec)

    def _check_drift(self, runner: Runner, state: ExecutionState) -> None:
        mine = self.fingerprint()
        changes = config_changes(state.config, mine)
        if not changes:
            return
        if self.on_drift == "error":
            raise DriftError(state.execution_id, changes)
        if self.on_drift == "warn":
            import warnings  # noqa: PLC0415 - only on this rare path

            warnings.warn(str(DriftError(state.execution_id, changes)), RuntimeWarning, stacklevel=6)
        runner.buffer(
            DriftAccepted(at=self.clock(), changes=[list(c) for c in changes], config=mine, policy=self.on_drift)
        )

    # -- reading ---------------------------------------------------------------------------------------------

    def _get_op(self, execution_id: str) -> Steps[ExecutionState]:
        state: ExecutionState = yield Io(self.store.state, validate_execution_id(execution_id))
        return state

    def _response_op(self, execution_id: str, spec: OutputSpec | None) -> Steps[Response]:
        state = yield from self._get_op(execution_id)
        if spec is not None and not spec.matches(state.output_schema):
            spec = None
        return typed(Response.from_state(state), spec)

    # -- answering suspensions -------------------------------------------------------------------------------

    def _answer_op(
        self,
        execution_id: str,
        kinds: tuple[str, ...],
        ids: Sequence[str] | None,
        build: Callable[[ExecutionState, list[tuple[str, str]]], list[Record]],
        *,
        advance: bool,
    ) -> Steps[Response]:
        """Record answers to pending calls, each checked under the claim of the log that holds it; then continue.

        ``ids`` name the calls answered as the suspension lists them (``<child>/<call>`` for a sub-agent's
        call), or None for every listed call that has no answer yet. The execution is claimed first, then
        each sub-agent whose calls are answered; every check (:func:`~delite.engine._answers.select`) and
        every record is made before the first one is written, so a refused submission writes nothing in any
        log. ``build(state, calls)`` makes one log's records from ``(call id in that log, id as given)``.
        """
        settings = self._settings(output=self._output(None)) if advance else None
        eid = validate_execution_id(execution_id)
        log = yield Claim(self.store, eid)
        state = yield Io(log.state)
        self._check_waiting(eid, state, kinds)
        listed = state.suspend_reason.confirmation_ids if state.suspend_reason is not None else []
        if ids is not None and not ids:
            raise InvalidToolResultError(eid, "no answer given")
        every = ids is None
        own_ids, children = split_ids(listed if ids is None else ids)
        staged: list[tuple[ExecutionLog, list[Record]]] = []
        for child, calls in children.items():
            gone = [f"{child}/{c}" for c in calls if f"{child}/{c}" not in listed]
            if gone:
                yield from self._refuse_gone(eid, state, kinds, child, gone)
            child_log = yield Claim(self.store, validate_execution_id(child))
            child_state = yield Io(child_log.state)
            self._check_waiting(child, child_state, kinds)
            chosen = select(child, child_state, kinds, calls, every=every)
            if chosen:
                staged.append((child_log, build(child_state, [(c, f"{child}/{c}") for c in chosen])))
        own = select(eid, state, kinds, own_ids, every=every)
        records = build(state, [(c, c) for c in own]) if own or not children else []
        check_storable([r for _, rs in staged for r in rs] + records, "the answer")
        if every and not records and not staged:
            raise AlreadyDecidedError(
                eid, state.status.value, f"every pending call already has its answer ({RECORDED})"
            )
        for child_log, child_records in staged:  # every check passed: now write, sub-agents first
            yield Append(child_log, child_records, barrier=True)
            yield Io(child_log.release)  # the parent, resumed next, continues the sub-agent
        if settings is None:
            if records:
                yield Append(log, records, barrier=True)
                fold(records, state)
            return Response.from_state(state)
        return (yield from self._advance_op(log, state, settings, model=None, resumed=True, records=records))

    def _refuse_gone(
        self, execution_id: str, state: ExecutionState, kinds: tuple[str, ...], child: str, gone: list[str]
    ) -> Steps[None]:
        """Sub-agents' calls the execution no longer lists: answered already (409), or never there (400)."""
        try:
            child_state: ExecutionState | None = yield Io(self.store.state, validate_execution_id(child))
        except ExecutionNotFoundError:
            child_state = None
        if child_state is not None and any(g.rpartition("/")[2] in child_state.calls for g in gone):
            raise AlreadyDecidedError(execution_id, state.status.value, f"call {', '.join(gone)} is not pending")
        raise InvalidToolResultError(execution_id, f"no {NOUNS.get(kinds[0], 'call')} with id {', '.join(gone)}")

    def _check_waiting(self, execution_id: str, state: ExecutionState, kinds: tuple[str, ...]) -> None:
        if state.status.is_terminal:
            raise ExecutionAlreadyTerminalError(execution_id, state.status.value)
        reason = state.suspend_reason
        if not state.status.is_suspended or reason is None:
            raise ExecutionNotSuspendedError(execution_id, state.status.value)
        if reason.kind not in kinds:
            raise SuspendKindMismatchError(
                execution_id, state.status.value, f"it waits for {reason.kind}, not {' or '.join(kinds)}"
            )

    def _decide_op(
        self,
        execution_id: str,
        decisions: Mapping[str, bool],
        *,
        reasons: Mapping[str, str | None] | None,
        advance: bool,
    ) -> Steps[Response]:
        _check_decisions(decisions, reasons, advance=advance)
        why = reasons or {}

        def build(_state: ExecutionState, calls: list[tuple[str, str]]) -> list[Record]:
            now = self.clock()
            return [DecisionRecorded(at=now, call_id=c, approved=decisions[g], reason=why.get(g)) for c, g in calls]

        return (yield from self._answer_op(execution_id, _DECIDED, list(decisions), build, advance=advance))

    def _submit_approval_op(
        self,
        execution_id: str,
        *,
        approved: bool | None,
        rejection_reason: str | None,
        decisions: Mapping[str, bool] | None,
    ) -> Steps[Response]:
        if approved is not None:
            checks.check_flag("approved", approved)
        if decisions is not None:
            _check_decisions(decisions, None, advance=True)
        checks.check_optional_text("rejection_reason", rejection_reason)
        if (approved is None) == (decisions is None):
            raise UsageError("pass exactly one of approved= or decisions=")
        if decisions is not None:
            reasons = {cid: rejection_reason for cid, ok in decisions.items() if not ok}
            return (yield from self._decide_op(execution_id, decisions, reasons=reasons, advance=True))
        yes = approved is True
        why = None if yes else rejection_reason

        def build(_state: ExecutionState, calls: list[tuple[str, str]]) -> list[Record]:
            now = self.clock()
            return [DecisionRecorded(at=now, call_id=c, approved=yes, reason=why) for c, _ in calls]

        return (yield from self._answer_op(execution_id, _DECIDED, None, build, advance=True))

    def _tool_results_op(self, execution_id: str, results: Mapping[str, Any], *, advance: bool) -> Steps[Response]:
        if not isinstance(results, Mapping):
            raise UsageError(f"results must be a mapping {{call_id: result}}, not {type(results).__name__}")
        for cid, value in results.items():
            checks.check_text("results key", cid)
            jsonable(value, f"results[{cid!r}]")
        checks.check_flag("advance", advance)

        def build(state: ExecutionState, calls: list[tuple[str, str]]) -> list[Record]:
            given = {c for c, _ in calls}
            missing = [c for c in unanswered(state) if c not in given]
            if missing:
                raise InvalidToolResultError(state.execution_id, f"missing results for {', '.join(missing)}")
            now = self.clock()
            records: list[Record] = []
            for c, g in calls:
                value, _ = self._recorded_outcome(state, c, jsonable(results[g], f"results[{g!r}]"), None)
                records.append(
                    ToolFinished(at=now, call_id=c, result=jsonable(value, "a redacted result"), source="client")
                )
            return records

        return (yield from self._answer_op(execution_id, ("client_tool",), list(results), build, advance=advance))

    def _input_op(self, execution_id: str, text: str, *, advance: bool) -> Steps[Response]:
        checks.check_text("text", text)
        checks.check_flag("advance", advance)

        def build(state: ExecutionState, calls: list[tuple[str, str]]) -> list[Record]:
            now = self.clock()
            records: list[Record] = []
            for c, _ in calls:  # the answer becomes the asking tool's result: the same redactors apply
                _, redacted = self._recorded_outcome(state, c, None, text)
                records.append(InputSubmitted(at=now, call_id=c, text=text if redacted is None else redacted))
            return records

        return (yield from self._answer_op(execution_id, ("human_input",), None, build, advance=advance))

    def _resolve_op(
        self, execution_id: str, call_id: str, *, result: Any, error: str | None, rerun: bool, advance: bool
    ) -> Steps[Response]:
        checks.check_text("call_id", call_id)
        checks.check_optional_text("error", error)
        checks.check_flag("rerun", rerun)
        checks.check_flag("advance", advance)
        if rerun and (result is not None or error is not None):
            raise UsageError("pass result=, error= or rerun=True, not several")
        if not rerun:
            jsonable(result, "result")

        def build(state: ExecutionState, calls: list[tuple[str, str]]) -> list[Record]:
            now = self.clock()
            if rerun:
                return [InDoubtResolved(at=now, call_id=c) for c, _ in calls]
            records: list[Record] = []
            for c, _ in calls:
                value, why = self._recorded_outcome(state, c, jsonable(result, "result"), error)
                value = jsonable(value, "a redacted result")
                records.append(ToolFinished(at=now, call_id=c, result=value, error=why, source="operator"))
            return records

        return (yield from self._answer_op(execution_id, ("in_doubt",), [call_id], build, advance=advance))

    def _cancel_op(self, execution_id: str, *, reason: str) -> Steps[Response]:
        checks.check_text("reason", reason)
        check_storable([ExecutionCancelled(reason=reason)], "the reason")
        eid = validate_execution_id(execution_id)
        store = self.store
        state = yield from self._get_op(eid)
        if state.status.is_terminal:
            return Response.from_state(state)
        yield Io(store.request_cancel, eid)
        try:
            log = yield Claim(store, eid)
        except ExecutionAlreadyClaimedError:
            return Response.from_state(state)  # its owner stops at its next step boundary
        state = yield Io(log.state)
        if not state.status.is_terminal:
            record = tallied(ExecutionCancelled(at=self.clock(), reason=reason), state, log)
            yield Append(log, [record], barrier=True)
            fold([record], state)
        yield Io(store.clear_cancel, eid)
        yield Io(log.release)
        for cs in state.calls.values():  # sub-agents it was waiting on go with it
            if cs.child_id is not None and cs.finished is None and (yield Io(store.exists, cs.child_id)):
                yield from self._cancel_op(cs.child_id, reason="a parent execution was cancelled")
        return Response.from_state(state)


def _check_decisions(decisions: object, reasons: object, *, advance: object) -> None:
    """Decisions are ``{call_id: bool}`` with real bools; reasons ``{call_id: str | None}``."""
    if not isinstance(decisions, Mapping):
        raise UsageError(f"decisions must be a mapping {{call_id: True or False}}, not {type(decisions).__name__}")
    for cid, approved in decisions.items():
        checks.check_text("a decision's call id", cid)
        checks.check_flag(f"decisions[{cid!r}]", approved)
    if reasons is not None:
        if not isinstance(reasons, Mapping):
            raise UsageError(f"reasons must be a mapping {{call_id: str or None}}, not {type(reasons).__name__}")
        for cid, why in reasons.items():
            checks.check_optional_text(f"reason for {cid!r}", why)
    checks.check_flag("advance", advance)
