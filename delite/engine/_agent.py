"""The embedded agent: ``with Agent("./data") as agent: agent.run(...)``, or ``await agent.arun(...)``.

Every method has an async twin (``arun``, ``aresume``, ``asubmit_approval``...) with the same semantics:
each operation is written once in :mod:`delite.engine._operations` (its argument checks, its records); a
sync method builds it and drives it with blocking calls, its twin builds the same one and awaits it at each
edge (:mod:`delite.engine._twins`, :mod:`delite.engine._aio`): async tools and providers run on the event
loop, sync ones and every log write in threads, so the loop never waits on the disk.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self, TypeVar, Unpack, cast, overload

from delite import _checks as checks
from delite.engine._budget import Budget
from delite.engine._delegation import link_for
from delite.engine._effects import Steps, drive
from delite.engine._loop import Contract, RetryPolicy, RunSettings, ToolSource
from delite.engine._operations import DriftPolicy, Link, Operations
from delite.engine._options import RUN_ARGS, History, Metadata, RunArgs, RunOptions
from delite.engine._output import OutputSpec
from delite.engine._response import AnyResponse, Response
from delite.engine._twins import awaited, blocking, entry, twin
from delite.errors import UsageError
from delite.log._durability import Durability
from delite.log.records import ConfigFingerprint
from delite.providers._base import AnyProvider, provider_name
from delite.state._model import ExecutionState
from delite.store._base import ExecutionLog, Store
from delite.tools._base import Tool, tool
from delite.tools._redact import Redactor, check_redactor

if TYPE_CHECKING:
    from delite.engine._astreaming import AsyncEventStream, AsyncTextStream
    from delite.engine._streaming import EventStream, TextStream
    from delite.runtime import Runtime

__all__ = ["Agent"]

T = TypeVar("T")

_HUMAN_INPUT_SCHEMA = {
    "type": "object",
    "properties": {"question": {"type": "string", "description": "The question to ask the human."}},
    "required": ["question"],
}


class Agent(Operations):
    """A tool-using agent whose every step is durable in a data directory.

    Building an Agent does no I/O, so a web server can build one per request. Every execution is a log file
    under ``data_dir``; any Agent (in any process) that shares the directory can continue it by id.

    Args:
        data_dir: the data directory (created on first write), or a ``postgresql://`` URL for a PostgreSQL
            store (the ``postgres`` extra; see :func:`delite.store.open_store`). Ignored when ``store`` is
            given; optional with ``runtime`` (the runtime's is used). When omitted, ``$DELITE_DATA_DIR`` (a
            path or a URL) or else ``./data`` (resolved against the working directory now): the same default
            as the ``delite`` command, so ``Agent(provider="openai:gpt-4o-mini")`` and ``delite status`` see
            the same executions.
        provider: the model: a provider object or any callable ``(messages, tools, model) -> dict`` (typed
            as :class:`~delite.providers.Provider`), or a recipe string such as ``"anthropic:claude-haiku-4-5"``
            (see :func:`delite.providers.from_recipe`). The async API awaits a provider's ``acall`` (or an
            ``async def`` provider) on the event loop and runs any other provider in a thread.
        prompt: the system prompt.
        tools: functions or :class:`~delite.tools.Tool` objects the model may call, and tool sources such as
            :class:`~delite.mcp.MCPServer` (whose tools are listed, and recorded, when an execution first runs).
        model: the default model id passed to the provider.
        agent_id: a name for this agent, recorded with each execution it starts (and how a
            :class:`~delite.Runtime` finds the agent for an execution).
        durability: ``"full"`` (default), ``"normal"`` or ``"off"``; see :class:`~delite.log.Durability`.
        store: a :class:`~delite.store.Store` to use instead of files under ``data_dir``. The agent borrows it:
            :meth:`close` leaves it open (see ``owns_store``).
        require_approval: names of tools that need a human's approval before they run.
        budget: spending limits per execution (a :class:`Budget` or None; ``agent.budget = ...`` is checked
            the same way).
        on_drift: what to do when a resumed execution was started with another prompt, tool set, provider
            or default model: ``"error"`` (raise :class:`~delite.errors.DriftError`), ``"warn"`` (record it,
            warn, continue) or ``"allow"`` (record it, continue).
        human_input_tool: the name of the built-in tool the model calls to ask a human a question, or None
            to offer no such tool.
        retry: how model calls are retried.
        clock: the wall clock for record timestamps (a seam for tests).
        runtime: a :class:`~delite.Runtime` this agent joins: the runtime runs its executions in the
            background, resumes them after a crash and answers signals for them. With no ``data_dir`` and no
            ``store`` the agent borrows the runtime's store (the runtime closes it, not :meth:`close`).
        max_delegation_depth: how deep sub-agents started under this agent may go (see
            :func:`~delite.delegate`); a deeper one raises :class:`~delite.errors.DelegationDepthExceededError`.
        output_type: validate every run's final answer as this type (a msgspec Struct, dataclass or
            TypedDict) unless the run passes its own; see :meth:`run`.
        output_retries: how many times the model is asked to correct an answer that does not match the output
            type before the run fails.
        parallel_tool_calls: run the tools the model asks for in one turn at the same time (each tool can opt
            out with ``@tool(parallel=False)``); False runs them one after another.
        redact: a function from a JSON value to the value to record instead (see
            :func:`~delite.tools.redact_patterns`), applied before anything is written to the model's text,
            every tool call's arguments, and every tool result and error (after the tool's own ``redact``).
            What it removes never reaches the log, exports or telemetry; the run goes on with the recorded
            values (the model's next turn sees redacted results), so a resumed run behaves the same. Not part
            of the configuration fingerprint: adding one is no drift.
    """

    def __init__(
        self,
        data_dir: str | os.PathLike[str] | None = None,
        *,
        provider: AnyProvider | str | None = None,
        prompt: str | None = None,
        tools: Iterable[Tool | Callable[..., Any] | ToolSource] = (),
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
        runtime: Runtime | None = None,
        max_delegation_depth: int = 5,
        output_type: Any = None,
        output_retries: int = 2,
        parallel_tool_calls: bool = True,
        redact: Redactor | None = None,
    ) -> None:
        """Configure the agent; nothing is read or written yet."""
        durability = _check_options(
            data_dir=data_dir,
            provider=provider,
            prompt=prompt,
            tools=tools,
            model=model,
            agent_id=agent_id,
            durability=durability,
            store=store,
            human_input_tool=human_input_tool,
            retry=retry,
            clock=clock,
            output_retries=output_retries,
            parallel_tool_calls=parallel_tool_calls,
        )
        require_approval = checks.check_str_list("require_approval", require_approval)
        self.owns_store = store is None and (data_dir is not None or runtime is None)
        """Whether :meth:`close` closes :attr:`store`: True when the agent opened it (from ``data_dir`` or the
        default data directory); False for a store it was handed (``store=``) or borrowed from its
        ``runtime``: whoever opened that one closes it (a store may be shared by many agents)."""
        if on_drift not in ("error", "warn", "allow"):
            raise UsageError(f"on_drift must be 'error', 'warn' or 'allow', not {on_drift!r}")
        if (
            isinstance(max_delegation_depth, bool)
            or not isinstance(max_delegation_depth, int)
            or max_delegation_depth < 0
        ):
            raise UsageError("max_delegation_depth must be 0 or more")
        self.prompt = prompt
        self.model = model
        self.agent_id = agent_id
        self.budget = budget
        self.on_drift: DriftPolicy = on_drift
        self.human_input_tool = human_input_tool
        self.retry = retry or RetryPolicy()
        self.require_approval = frozenset(require_approval)
        self.clock = clock
        self.max_delegation_depth: int = max_delegation_depth
        self.output_retries = output_retries
        self.parallel_tool_calls = parallel_tool_calls
        self.redact = check_redactor("redact", redact)
        """The agent's redaction hook (see the ``redact`` argument), or None."""
        self._default_output = None if output_type is None else OutputSpec(output_type, retries=output_retries)
        self._provider = _resolve_provider(provider)
        self._tools: dict[str, Tool] = {}
        self._kin: Mapping[str, Agent] = {}  # other agents by id (a runtime's): whose redactors a sub-agent's call uses
        self._sources: dict[str, ToolSource] = {}
        self._contracts: list[tuple[str, Contract]] = []
        for t in tools:
            if isinstance(t, ToolSource) and not callable(t):  # an MCP server: its tools come per execution
                if t.name in self._sources:
                    raise UsageError(f"a tool source named {t.name!r} is already registered")
                self._sources[t.name] = t
            else:
                self.add_tool(t)
        if store is None:  # opened last: nothing above can leave an opened store behind
            if self.owns_store:
                from delite.store._open import default_location, open_store  # noqa: PLC0415 - pathlib, urllib: only when opened

                store = open_store(default_location() if data_dir is None else data_dir, durability=durability)
            else:
                assert runtime is not None
                store = runtime.store
        self.store: Store = store
        self.runtime = runtime
        if runtime is not None:
            try:
                runtime.join(self)
            except BaseException:
                if self.owns_store:
                    store.close()  # refused (another store than the runtime's): close what this agent opened
                raise

    # -- configuration ---------------------------------------------------------------------------------------

    def add_tool(self, fn: Tool | Callable[..., Any]) -> Tool:
        """Offer a tool to the model (a plain function becomes a tool named after it)."""
        if not isinstance(fn, Tool) and not callable(fn):
            raise UsageError(f"a tool must be a function or a Tool, not {type(fn).__name__}")
        t = fn if isinstance(fn, Tool) else tool(fn)
        if t.name in self._tools:
            raise UsageError(f"a tool named {t.name!r} is already registered")
        if self.human_input_tool and t.name == self.human_input_tool:
            raise UsageError(f"{t.name!r} is the built-in human input tool's name; pass human_input_tool=None first")
        self._tools[t.name] = t
        return t

    @property
    def budget(self) -> Budget | None:
        """Spending limits per execution, or None.

        Assigning anything but a :class:`Budget` or None raises :class:`~delite.errors.UsageError`.
        """
        return self._budget

    @budget.setter
    def budget(self, budget: Budget | None) -> None:
        if budget is not None and not isinstance(budget, Budget):
            kind = type(budget).__name__
            raise UsageError(f"agent.budget must be a Budget (or None), not {kind}: Budget(max_llm_calls=10, ...)")
        self._budget = budget

    @property
    def tools(self) -> list[Tool]:
        """The registered tools."""
        return list(self._tools.values())

    @property
    def output_type(self) -> Any:
        """The default output type of this agent's runs, or None."""
        return None if self._default_output is None else self._default_output.type

    def set_llm(self, provider: AnyProvider | str) -> None:
        """Set the model provider (an object, a callable or a recipe string); anything else is a UsageError."""
        if provider is None or (not isinstance(provider, str) and not callable(provider)):
            kind = type(provider).__name__
            raise UsageError(f"provider must be a provider, a callable or a recipe string, not {kind}")
        self._provider = _resolve_provider(provider)

    @property
    def provider(self) -> AnyProvider | None:
        """The model provider."""
        return self._provider

    def contract(self, name: str) -> Callable[[Contract], Contract]:
        """Register a check ``(tool_name, arguments)`` that runs in code before every tool call.

        A check that raises stops that call before it runs and suspends the execution (kind ``contract``) with
        the message; a human may then approve (override) or reject the call. ``name`` is text (else a
        :class:`~delite.errors.UsageError`).
        """
        checks.check_text("contract name", name)

        def register(check: Contract) -> Contract:
            self._contracts.append((name, check))
            return check

        return register

    def fingerprint(self) -> ConfigFingerprint:
        """This agent's configuration as recorded when it starts an execution and compared when it resumes."""
        specs = [t.spec for t in self._tools.values()] + [s.spec for s in self._sources.values()]
        return ConfigFingerprint(
            prompt=self.prompt, tools=specs, provider=provider_name(self._provider), model=self.model
        )

    def _output(self, output_type: Any) -> OutputSpec | None:
        if output_type is None:
            return self._default_output
        if self._default_output is not None and output_type is self._default_output.type:
            return self._default_output
        return OutputSpec(output_type, retries=self.output_retries)

    def _settings(self, *, output: OutputSpec | None = None, link: Link | None = None) -> RunSettings:
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
            parallel_tools=self.parallel_tool_calls,
            redact=self.redact,
            output=output,
            agent_id=self.agent_id,
            max_depth=min(self.max_delegation_depth, link.max_depth) if link else self.max_delegation_depth,
            ancestors=link.lineage if link is not None else (),
            sources=tuple(self._sources.values()),
        )

    def _redactors(self, agent_id: str, tool_name: str) -> tuple[Redactor | None, ...]:
        owner = self if agent_id == self.agent_id else self._kin.get(agent_id)
        if owner is None:  # a sub-agent this process does not know: this agent's own hook still applies
            return (self.redact,)
        tool = next((t for t in owner.tools if t.name == tool_name), None)
        return (tool.redact if tool is not None else None, owner.redact)

    # -- running ---------------------------------------------------------------------------------------------

    @overload
    def run(self, text: str, *, output_type: type[T], **options: Unpack[RunArgs]) -> AnyResponse[T]: ...
    @overload
    def run(self, text: str, *, output_type: Any = None, **options: Unpack[RunArgs]) -> AnyResponse: ...
    def run(
        self,
        text: str,
        *,
        execution_id: str | None = None,
        history: History | None = None,
        metadata: Metadata | None = None,
        model: str | None = None,
        idempotency_key: str | None = None,
        output_type: Any = None,
    ) -> AnyResponse:
        """Start an execution, or continue the one named by ``execution_id``, and advance it until it stops.

        On an existing execution nothing is started over: completed model and tool calls return their
        recorded results, and a completed execution returns its recorded response. Called inside a tool with
        no ``execution_id``, the run is a sub-agent of that tool's call (see :func:`~delite.delegate`).

        Args:
            text: the user's message.
            execution_id: continue this execution, or start a new one with this id; a new id is generated
                when omitted. An existing execution started with another ``text`` raises
                :class:`~delite.errors.ExecutionIdConflictError` (409, also a ``UsageError``) and records nothing.
            history: earlier chat turns the application owns (OpenAI chat shape), sent before ``text``.
            metadata: JSON stored with the execution (a ``thread_id``, a config key).
            model: use this model for this run's calls instead of the agent's default (recorded per call).
            idempotency_key: a key for this request (say, a client's request id). The same key with the same
                input returns that execution's result, or continues it if it stopped; with another input it
                raises :class:`~delite.errors.IdempotencyConflictError`; while a live process advances it,
                :class:`~delite.errors.ExecutionAlreadyActiveError`. A crash never strands a key: the next call
                with it continues the execution.
            output_type: validate the final answer as this type (a msgspec Struct, dataclass or TypedDict) and
                return it as ``response.output``. The model is told the type's JSON schema; an answer that
                does not match is sent back for correction up to ``output_retries`` times, then the run
                fails with :class:`~delite.errors.StructuredOutputValidationError`. Continue such an
                execution with the same type.
        """
        return blocking(
            self._start(
                text,
                output_type=output_type,
                execution_id=execution_id,
                history=history,
                metadata=metadata,
                model=model,
                idempotency_key=idempotency_key,
            )
        )

    @overload
    async def arun(self, text: str, *, output_type: type[T], **options: Unpack[RunArgs]) -> AnyResponse[T]: ...
    @overload
    async def arun(self, text: str, *, output_type: Any = None, **options: Unpack[RunArgs]) -> AnyResponse: ...
    async def arun(self, text: str, *, output_type: Any = None, **options: Unpack[RunArgs]) -> AnyResponse:
        """:meth:`run`, awaited (same arguments and semantics); the event loop never waits on the disk."""
        return await awaited(self._start(text, output_type=output_type, **_run_args("arun", options)))

    def _start(self, text: str, *, output_type: Any = None, **args: Unpack[RunArgs]) -> Steps[Response]:
        """The run operation for ``run(text, ...)``, with its arguments (also what a Runtime starts)."""
        execution_id = args.get("execution_id")
        return self._run_op(
            text,
            execution_id=execution_id,
            history=args.get("history"),
            metadata=args.get("metadata"),
            model=args.get("model"),
            idempotency_key=args.get("idempotency_key"),
            output=self._output(output_type),
            link=link_for(self) if execution_id is None else None,
        )

    def enqueue(self, text: str, **options: Unpack[RunOptions]) -> str:
        """Make a new execution durable and return its id without running it: a worker will.

        Takes the options of :meth:`run` (``execution_id``, ``history``, ``metadata``, ``model``,
        ``idempotency_key``, ``output_type``), checked as ``run`` checks them, before anything is written. The
        execution's start record is written (with the store's durability mode) and the execution is then
        ``running`` with no owner: any worker serving this ``agent_id`` (``delite worker``,
        :meth:`Runtime.work <delite.Runtime.work>`) takes it on, and so would :meth:`resume`. Nothing is called.

        An ``idempotency_key`` already bound returns the execution it is bound to (whatever it does now); with
        another input it raises :class:`~delite.errors.IdempotencyConflictError`, as ``run`` does. An
        ``execution_id`` that exists returns it unchanged, or raises
        :class:`~delite.errors.ExecutionIdConflictError` when it was started with another ``text``.

        The worker's agent must be configured as this one (the same prompt, tools, provider and model, or its
        ``on_drift`` policy decides), and with ``output_type`` the worker's agent must have that output type.
        """
        output_type, args = _split_options("enqueue", options)
        return drive(self._enqueue(text, output_type, args))

    async def aenqueue(self, text: str, **options: Unpack[RunOptions]) -> str:
        """:meth:`enqueue`, awaited: the start record is written off the event loop."""
        from delite.engine._aio import adrive  # noqa: PLC0415 - asyncio only for the async API

        output_type, args = _split_options("aenqueue", options)
        return await adrive(self._enqueue(text, output_type, args))

    def _enqueue(self, text: str, output_type: Any, args: RunArgs) -> Steps[str]:
        return self._enqueue_op(
            text,
            execution_id=args.get("execution_id"),
            history=args.get("history"),
            metadata=args.get("metadata"),
            model=args.get("model"),
            idempotency_key=args.get("idempotency_key"),
            output=self._output(output_type),
        )

    def _take(self, log: ExecutionLog, state: ExecutionState) -> Steps[Response]:
        """The operation a worker runs on an execution it claimed (see :meth:`Operations._take_op`)."""
        return self._take_op(log, state, output=self._output(None))

    @overload
    def resume(self, execution_id: str, *, model: str | None = None, output_type: type[T]) -> AnyResponse[T]: ...
    @overload
    def resume(self, execution_id: str, *, model: str | None = None, output_type: Any = None) -> AnyResponse: ...
    def resume(self, execution_id: str, *, model: str | None = None, output_type: Any = None) -> AnyResponse:
        """Continue an execution after its suspension was answered, a crash, or a failure."""
        return blocking(self._resume_op(execution_id, model=model, output=self._output(output_type)))

    @overload
    async def aresume(self, execution_id: str, *, model: str | None = None, output_type: type[T]) -> AnyResponse[T]: ...
    @overload
    async def aresume(self, execution_id: str, *, model: str | None = None, output_type: Any = None) -> AnyResponse: ...
    async def aresume(self, execution_id: str, *, model: str | None = None, output_type: Any = None) -> AnyResponse:
        """:meth:`resume`, awaited."""
        return await awaited(self._resume_op(execution_id, model=model, output=self._output(output_type)))

    def stream(self, text: str, **options: Unpack[RunOptions]) -> TextStream:
        """Run like :meth:`run` (same arguments), yielding the model's text as it arrives.

        ``for chunk in agent.stream("...")`` prints the answer as it is written; ``.response`` holds the
        :class:`Response` once the loop ends. Durability is unchanged: a model turn is recorded once complete,
        a broken or stalled stream is a failed attempt that is retried. See
        :class:`~delite.engine._streaming.TextStream`.
        """
        from delite.engine._streaming import TextStream  # noqa: PLC0415 - the event classes: only when streamed

        return TextStream(self._events("stream", text, options))

    def stream_events(self, text: str, **options: Unpack[RunOptions]) -> EventStream:
        """Run like :meth:`run` (same arguments), yielding typed events for a UI.

        Text deltas, tool calls started and finished, retries, and a last event ``Completed``, ``Suspended``,
        ``Cancelled`` or ``Failed`` carrying the :class:`Response`; see :mod:`delite.engine._events`.
        """
        return self._events("stream_events", text, options)

    def _events(self, method: str, text: str, options: RunOptions) -> EventStream:
        from delite.engine._streaming import EventStream  # noqa: PLC0415 - the event classes: only when streamed

        output_type, args = _split_options(method, options)
        return EventStream(lambda: blocking(self._start(text, output_type=output_type, **args)))

    def astream(self, text: str, **options: Unpack[RunOptions]) -> AsyncTextStream:
        """:meth:`stream` for asyncio: ``async for chunk in agent.astream("...")``, the run on the event loop."""
        from delite.engine._astreaming import AsyncTextStream  # noqa: PLC0415

        return AsyncTextStream(self._aevents("astream", text, options))

    def astream_events(self, text: str, **options: Unpack[RunOptions]) -> AsyncEventStream:
        """:meth:`stream_events` for asyncio: ``async for event in agent.astream_events("...")``."""
        return self._aevents("astream_events", text, options)

    def _aevents(self, method: str, text: str, options: RunOptions) -> AsyncEventStream:
        from delite.engine._astreaming import AsyncEventStream  # noqa: PLC0415 - asyncio only for the async API

        output_type, args = _split_options(method, options)
        return AsyncEventStream(lambda: awaited(self._start(text, output_type=output_type, **args)))

    # -- reading ---------------------------------------------------------------------------------------------

    def get(self, execution_id: str) -> ExecutionState:
        """The folded state of an execution, read without claiming it."""
        return drive(self._get_op(execution_id))

    async def aget(self, execution_id: str) -> ExecutionState:
        """:meth:`get`, read in a thread."""
        from delite.engine._aio import adrive  # noqa: PLC0415

        return await adrive(self._get_op(execution_id))

    def _response(self, execution_id: str) -> Steps[Response]:
        """The execution's current outcome as a :class:`Response`, without advancing it."""
        return self._response_op(execution_id, self._default_output)

    response = entry(_response)
    aresponse = twin(_response)

    # -- answering suspensions -------------------------------------------------------------------------------

    def approve(self, execution_id: str, confirmation_id: str, *, reason: str | None = None) -> AnyResponse:
        """Approve one pending call (or override a contract for it). Recorded; call :meth:`resume` to go on."""
        checks.check_text("confirmation_id", confirmation_id)
        return self.decide(execution_id, {confirmation_id: True}, reasons={confirmation_id: reason}, advance=False)

    def reject(self, execution_id: str, confirmation_id: str, *, reason: str | None = None) -> AnyResponse:
        """Reject one pending call: it never runs and the model is told why. Call :meth:`resume` to go on."""
        checks.check_text("confirmation_id", confirmation_id)
        return self.decide(execution_id, {confirmation_id: False}, reasons={confirmation_id: reason}, advance=False)

    def _submit_approval(
        self,
        execution_id: str,
        *,
        approved: bool | None = None,
        rejection_reason: str | None = None,
        decisions: Mapping[str, bool] | None = None,
    ) -> Steps[Response]:
        """Decide every pending call (``approved=``) or each by id (``decisions=``), then continue the run.

        ``approved=`` decides the pending calls that have no decision yet (checked under the claim); when
        every one already has one, it raises :class:`~delite.errors.AlreadyDecidedError`.
        """
        return self._submit_approval_op(
            execution_id, approved=approved, rejection_reason=rejection_reason, decisions=decisions
        )

    submit_approval = entry(_submit_approval)
    asubmit_approval = twin(_submit_approval)

    def _decide(
        self,
        execution_id: str,
        decisions: Mapping[str, bool],
        *,
        reasons: Mapping[str, str | None] | None = None,
        advance: bool = True,
    ) -> Steps[Response]:
        """Record decisions on pending approval or contract calls; continue the run when ``advance``.

        Each call takes one decision: a call that already has one, or no longer waits for one, raises
        :class:`~delite.errors.AlreadyDecidedError` (409), an unknown id
        :class:`~delite.errors.InvalidToolResultError` (400), and either refuses the whole batch with nothing
        recorded. A call id ``<child>/<call>`` (a sub-agent's call, as the suspension lists it) is recorded
        in the child's log.
        """
        return self._decide_op(execution_id, decisions, reasons=reasons, advance=advance)

    decide = entry(_decide)
    adecide = twin(_decide)

    def _submit_tool_results(
        self, execution_id: str, results: Mapping[str, Any], *, advance: bool = True
    ) -> Steps[Response]:
        """Give the results of client tool calls (``{call_id: value}``, every pending one) and continue.

        With ``advance=False`` the results are only recorded (no provider or tools needed, as in the
        ``delite`` command); :meth:`resume` continues later. Each call takes one result: naming a call that
        already has one raises :class:`~delite.errors.AlreadyDecidedError` and records nothing.
        """
        return self._tool_results_op(execution_id, results, advance=advance)

    submit_tool_results = entry(_submit_tool_results)
    asubmit_tool_results = twin(_submit_tool_results)

    def _submit_input(self, execution_id: str, text: str, *, advance: bool = True) -> Steps[Response]:
        """Answer the model's clarifying question and continue (only record it with ``advance=False``).

        A question takes one answer: once answered, a second one raises
        :class:`~delite.errors.AlreadyDecidedError` and records nothing.
        """
        return self._input_op(execution_id, text, advance=advance)

    submit_input = entry(_submit_input)
    asubmit_input = twin(_submit_input)

    def _resolve(
        self,
        execution_id: str,
        call_id: str,
        *,
        result: Any = None,
        error: str | None = None,
        rerun: bool = False,
        advance: bool = True,
    ) -> Steps[Response]:
        """Settle an in-doubt call: supply its ``result`` (or ``error``), or ``rerun=True`` it; then continue.

        With ``advance=False`` the settlement is only recorded; :meth:`resume` continues later. A call is
        settled once: a second resolution (a result, an error or a re-run request) raises
        :class:`~delite.errors.AlreadyDecidedError` and records nothing.
        """
        return self._resolve_op(execution_id, call_id, result=result, error=error, rerun=rerun, advance=advance)

    resolve = entry(_resolve)
    aresolve = twin(_resolve)

    def _cancel(self, execution_id: str, *, reason: str = "cancelled") -> Steps[Response]:
        """Cancel an execution from any process.

        A suspended or stopped execution is cancelled at once; one that a live process is advancing stops at
        its next step boundary (no new model or tool call starts after that). Cancelling a completed or
        cancelled execution changes nothing and returns its status. Sub-agents go with their parent: a
        running one stops at its next step boundary, one the parent was waiting on is cancelled too.
        """
        return self._cancel_op(execution_id, reason=reason)

    cancel = entry(_cancel)
    acancel = twin(_cancel)

    # -- lifecycle -------------------------------------------------------------------------------------------

    def close(self) -> None:
        """Close the store if the agent opened it (:attr:`owns_store`); a borrowed store stays open.

        The provider, and a store handed in or borrowed from a :class:`~delite.Runtime`, are their owner's to
        close.
        """
        if self.owns_store:
            self.store.close()

    async def aclose(self) -> None:
        """:meth:`close`, for ``async with``."""
        self.close()

    def __enter__(self) -> Self:
        """Use as a context manager."""
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        """Close the agent."""
        self.close()

    async def __aenter__(self) -> Self:
        """Use as an async context manager: ``async with Agent(...) as agent``."""
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        """Close the agent."""
        await self.aclose()


def _resolve_provider(provider: AnyProvider | str | None) -> AnyProvider | None:
    """A recipe string becomes its provider now, so a bad recipe or a missing key fails at construction."""
    if not isinstance(provider, str):
        return provider
    from delite.providers._recipe import from_recipe  # noqa: PLC0415 - only when a recipe is used

    return from_recipe(provider)


def _check_options(
    *,
    data_dir: object,
    provider: object,
    prompt: object,
    tools: object,
    model: object,
    agent_id: object,
    durability: object,
    store: object,
    human_input_tool: object,
    retry: object,
    clock: object,
    output_retries: object,
    parallel_tool_calls: object,
) -> Durability:
    """A :class:`UsageError` naming the first option of the wrong type; the durability mode otherwise."""
    checks.check_optional_text("prompt", prompt)
    checks.check_optional_text("model", model)
    if not checks.check_text("agent_id", agent_id):
        raise UsageError("agent_id must not be empty")
    checks.check_optional_text("human_input_tool", human_input_tool)
    checks.check_int("output_retries", output_retries)
    checks.check_flag("parallel_tool_calls", parallel_tool_calls)
    if retry is not None and not isinstance(retry, RetryPolicy):
        raise UsageError(f"retry must be a RetryPolicy or None, not {type(retry).__name__}")
    if not callable(clock):
        raise UsageError("clock must be a callable returning seconds since the epoch")
    if isinstance(tools, str | bytes) or not isinstance(tools, Iterable):
        raise UsageError("tools must be a list of functions or Tool objects")
    if provider is not None and not isinstance(provider, str) and not callable(provider):
        kind = type(provider).__name__
        raise UsageError(f"provider must be a provider, a callable or a recipe string, not {kind}")
    if data_dir is not None and not isinstance(data_dir, str | os.PathLike):
        raise UsageError(
            f"data_dir must be a path or a postgresql:// URL (str or os.PathLike), not {type(data_dir).__name__}"
        )
    if store is not None and not isinstance(store, Store):
        raise UsageError(f"store must be a delite Store, not {type(store).__name__}")
    try:
        return Durability(durability)
    except ValueError:
        choices = ", ".join(repr(d.value) for d in Durability)
        raise UsageError(f"durability must be one of {choices}, not {durability!r:.80}") from None


def _run_args(method: str, options: Mapping[str, Any]) -> RunArgs:
    """The run options as given, after refusing a keyword ``run`` does not take, as its signature would."""
    unknown = sorted(options.keys() - RUN_ARGS)
    if unknown:
        raise TypeError(f"{method}() got an unexpected keyword argument {unknown[0]!r}")
    return cast("RunArgs", dict(options))


def _split_options(method: str, options: RunOptions) -> tuple[Any, RunArgs]:
    """``(output_type, the other options)`` of a streaming entry point, unknown keywords refused as by ``run``."""
    args = dict(options)
    output_type = args.pop("output_type", None)
    return output_type, _run_args(method, args)
