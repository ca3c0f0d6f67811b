"""Tools: plain Python functions the model may call, with schemas and argument validation from type hints."""

from __future__ import annotations

import contextvars
import inspect
import threading
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, overload

import msgspec

from delite import _checks as checks
from delite.errors import ControlSignal, ToolError, UsageError
from delite.log.records import ToolSpec
from delite.tools._redact import Redactor, check_redactor

__all__ = [
    "CallInDoubtError",
    "Clarification",
    "DelegationSuspended",
    "Tool",
    "ToolCallContext",
    "active_call",
    "call_var",
    "current_call",
    "current_idempotency_key",
    "tool",
]


@dataclass(frozen=True)
class Clarification:
    """Return this from a tool to ask a human a question instead of answering.

    The execution suspends (``waiting_human_input``) with the question; the text given to
    ``agent.submit_input`` becomes the tool call's result, and the model sees it as such.
    """

    question: str


class CallInDoubtError(ToolError):
    """Raised by a tool body whose request was sent but whose answer was lost (a dropped connection).

    The call may or may not have acted. The engine records no result for it: the call stays in doubt, as
    after a crash, and the execution waits for an operator (``agent.resolve``), exactly as it would on
    resume for a tool that is not retry-safe. Raise it only for a call that must not be sent again blindly.
    """


class DelegationSuspended(ControlSignal):
    """Control signal: a sub-agent run inside a tool stopped to wait for something (approval, input...).

    Raised by :func:`~delite.delegate` (or a plain ``agent.run`` inside a tool) when the child execution
    suspends, and caught by the engine running the parent: the parent's tool call waits on the child and the
    parent suspends too, listing the child's pending calls. A :class:`~delite.errors.ControlSignal` (a
    ``BaseException``), so a tool's ``except Exception`` cannot swallow it.

    Attributes:
        execution_id: the child execution that suspended.
        reason: its :class:`~delite.SuspendReason`.
    """

    def __init__(self, execution_id: str, reason: Any) -> None:
        """Build from the child's id and its suspend reason."""
        super().__init__(execution_id, reason)
        self.execution_id = execution_id
        self.reason = reason

    def __str__(self) -> str:
        """The child and what it waits for."""
        return f"sub-agent execution {self.execution_id!r} is waiting ({self.reason})"


@dataclass(frozen=True, slots=True)
class ToolCallContext:
    """What a running tool may ask about its own call.

    Attributes:
        execution_id: the execution the call belongs to.
        call_id: the call's id in that execution (``c<step>.<index>``).
        idempotency_key: stable across retries of this call (see :func:`current_idempotency_key`).
        attempt: 1, or more when the call runs again (in doubt after a crash, or re-run after a sub-agent
            it delegated to was answered).
        depth: the execution's delegation depth (0 for a top-level run).
        max_depth: the deepest a sub-agent started from this call may be.
        lineage: this execution and the ones above it, nearest first: the ancestors of a sub-agent started
            from this call (a cancellation of any of them reaches it).
        agent_id: the agent running the execution.
    """

    execution_id: str
    call_id: str
    idempotency_key: str
    attempt: int
    depth: int = 0
    max_depth: int = 5
    lineage: tuple[str, ...] = ()
    agent_id: str = "default"
    delegations: list[str] = field(default_factory=list, compare=False, repr=False)
    """The sub-agent executions this call started, in order (kept by :func:`delite.delegate`)."""


_current: contextvars.ContextVar[ToolCallContext | None] = contextvars.ContextVar("delite_tool_call", default=None)
call_var = _current
"""The context variable that holds the current tool call (set by the engine around each body)."""


def current_call() -> ToolCallContext:
    """The tool call being run. Raises :class:`UsageError` outside a tool."""
    ctx = _current.get()
    if ctx is None:
        raise UsageError("current_call() and current_idempotency_key() work only inside a tool that delite runs")
    return ctx


def active_call() -> ToolCallContext | None:
    """The tool call running in this context, or None outside a tool (:func:`current_call` raises instead)."""
    return _current.get()


def current_idempotency_key() -> str:
    """A key unique to this tool call and the same when the call is retried after a crash.

    Forward it to payment and other APIs that deduplicate by key, so a retried call does not act twice.
    """
    return current_call().idempotency_key


class Tool:
    """A function the model may call. Build with :func:`tool`."""

    def __init__(
        self,
        fn: Callable[..., Any] | None,
        *,
        name: str,
        description: str,
        parameters: dict[str, Any],
        args_type: type[Any] | None,
        target: Literal["server", "client"] = "server",
        requires_confirmation: bool = False,
        retry_in_doubt: bool = True,
        parallel: bool = True,
        redact: Redactor | None = None,
    ) -> None:
        """Use :func:`tool` rather than this constructor."""
        self.fn = fn
        self.name = name
        self.description = description
        self.parameters = parameters
        self.target = target
        self.requires_confirmation = requires_confirmation
        self.retry_in_doubt = retry_in_doubt
        self.parallel = parallel
        self.redact = redact
        """The tool's redaction hook (see :func:`tool`), or None."""
        self._args_type = args_type
        self.is_async = fn is not None and inspect.iscoroutinefunction(fn)

    @property
    def spec(self) -> ToolSpec:
        """The tool as recorded in an execution's configuration fingerprint."""
        return ToolSpec(
            name=self.name,
            description=self.description,
            parameters=self.parameters,
            target=self.target,
            requires_confirmation=self.requires_confirmation,
            retry_in_doubt=self.retry_in_doubt,
        )

    def schema(self) -> dict[str, Any]:
        """The tool as providers receive it: ``{"name", "description", "parameters"}``."""
        return {"name": self.name, "description": self.description, "parameters": self.parameters}

    def validate(self, arguments: Any) -> dict[str, Any]:
        """Check the model's arguments against the signature; raise ``ValueError`` with a readable reason."""
        if not isinstance(arguments, dict):
            raise ValueError(f"arguments must be a JSON object, got {type(arguments).__name__}")  # noqa: TRY004
        if self._args_type is None:
            return arguments
        try:
            value = msgspec.convert(arguments, type=self._args_type, strict=False)
        except msgspec.ValidationError as e:
            raise ValueError(str(e)) from None
        return {f: getattr(value, f) for f in value.__struct_fields__}

    def invoke(self, arguments: dict[str, Any]) -> Any:
        """Run the body with validated arguments (an ``async def`` body runs to completion on an event loop)."""
        fn = self.fn
        if fn is None:
            raise UsageError(f"tool {self.name!r} runs on the client; it has no body here")
        if not self.is_async:
            return fn(**arguments)
        import asyncio  # noqa: PLC0415 - only async tools need it; importing it costs ~20 ms at startup

        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return asyncio.run(fn(**arguments))
        return _run_in_thread(fn, arguments)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Call the underlying function directly (a decorated function stays usable as a function)."""
        if self.fn is None:
            raise UsageError(f"tool {self.name!r} runs on the client; it has no body here")
        return self.fn(*args, **kwargs)

    def __repr__(self) -> str:
        """Name and target."""
        return f"Tool({self.name!r}, target={self.target!r})"


def _run_in_thread(fn: Callable[..., Any], arguments: dict[str, Any]) -> Any:
    import asyncio  # noqa: PLC0415 - see Tool.invoke

    box: dict[str, Any] = {}
    ctx = contextvars.copy_context()

    def target() -> None:
        try:
            box["value"] = ctx.run(asyncio.run, fn(**arguments))
        except BaseException as e:  # noqa: BLE001 - re-raised in the caller's thread
            box["error"] = e

    t = threading.Thread(target=target, name="delite-async-tool")
    t.start()
    t.join()
    if "error" in box:
        raise box["error"]
    return box["value"]


def _build_args(fn: Callable[..., Any], name: str) -> tuple[dict[str, Any], type[Any]]:
    sig = inspect.signature(fn)
    target = inspect.unwrap(fn)
    # Resolve only the parameters' hints: the return type (often a local class) is not part of the schema.
    shim = types.SimpleNamespace(__globals__=getattr(target, "__globals__", {}))
    shim.__annotations__ = {k: v for k, v in getattr(target, "__annotations__", {}).items() if k != "return"}
    try:
        hints = typing.get_type_hints(shim, globalns=shim.__globals__, include_extras=True)
    except Exception as e:
        raise UsageError(f"tool {name!r}: cannot resolve its type hints: {e}") from e
    fields: list[Any] = []
    for pname, p in sig.parameters.items():
        if p.kind in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD):
            raise UsageError(f"tool {name!r}: *args and **kwargs are not supported; name every parameter")
        annotation = hints.get(pname, Any)
        if p.default is inspect.Parameter.empty:
            fields.append((pname, annotation))
        else:
            fields.append((pname, annotation, p.default))
    struct_name = "".join(part.capitalize() for part in name.replace("-", "_").split("_")) or "Args"
    args_type = msgspec.defstruct(struct_name, fields, kw_only=True, forbid_unknown_fields=True)
    (_, components) = msgspec.json.schema_components([args_type], ref_template="#/$defs/{name}")
    schema = dict(components.pop(args_type.__name__))
    schema.pop("title", None)
    schema.setdefault("required", [])
    if components:
        schema["$defs"] = components
    return schema, args_type


@overload
def tool(fn: Callable[..., Any], /) -> Tool: ...
@overload
def tool(
    name: str | None = None,
    /,
    *,
    description: str | None = None,
    target: Literal["server", "client"] = "server",
    requires_confirmation: bool = False,
    retry_in_doubt: bool = True,
    parameters: dict[str, Any] | None = None,
    parallel: bool = True,
    redact: Redactor | None = None,
) -> Callable[[Callable[..., Any]], Tool]: ...


def tool(
    name: Callable[..., Any] | str | None = None,
    /,
    *,
    description: str | None = None,
    target: Literal["server", "client"] = "server",
    requires_confirmation: bool = False,
    retry_in_doubt: bool = True,
    parameters: dict[str, Any] | None = None,
    parallel: bool = True,
    redact: Redactor | None = None,
) -> Tool | Callable[[Callable[..., Any]], Tool]:
    """Declare a function as a tool, bare (``@tool``) or with options (``@tool("name", description=...)``).

    Args:
        name: the name the model calls it by; defaults to the function's name.
        description: what the model is told it does; defaults to the docstring.
        target: ``"client"`` for a tool with no body here, that the client runs (the run suspends for it).
        requires_confirmation: suspend for a human's approval before the body runs.
        retry_in_doubt: if the process died inside this tool (its intent is logged, its result is not), run it
            again with the same idempotency key (True, the default), or suspend the execution so an operator
            decides (False): use False for tools whose side effect cannot be deduplicated by key.
        parameters: a JSON schema to use instead of one built from the type hints (arguments then pass
            through unvalidated).
        parallel: when the model asks for several tools in one turn, this one may run at the same time as
            the others (True, the default: in threads for the sync API, on the event loop or in threads for
            the async one); False runs it alone, with no other call of the turn in flight.
        redact: a function from a JSON value to the value to record instead (see
            :func:`~delite.tools.redact_patterns`), applied to this tool's arguments and to its results before
            they are written: what it removes never reaches the log. The body still gets the arguments as the
            model sent them when it runs in the same process as the turn; after a resume it gets the
            recorded (redacted) ones. Not part of the configuration fingerprint: adding one is no drift.
    """
    if name is not None and not callable(name):
        checks.check_text("tool name", name)
    checks.check_optional_text("description", description)
    if target not in ("server", "client"):
        raise UsageError(f"target must be 'server' or 'client', not {target!r:.80}")
    checks.check_flag("requires_confirmation", requires_confirmation)
    checks.check_flag("retry_in_doubt", retry_in_doubt)
    checks.check_flag("parallel", parallel)
    check_redactor("redact", redact)
    checks.check_json_object("parameters", parameters)

    def wrap(fn: Callable[..., Any]) -> Tool:
        if not callable(fn):
            raise UsageError(f"@tool decorates a function, not {type(fn).__name__}")
        tool_name = name if isinstance(name, str) else fn.__name__
        if not tool_name or not tool_name.replace("_", "a").replace("-", "a").isalnum():
            raise UsageError(f"tool name {tool_name!r} must be letters, digits, '_' or '-'")
        doc = description if description is not None else inspect.getdoc(fn) or ""
        if parameters is not None:
            schema, args_type = parameters, None
        else:
            schema, args_type = _build_args(fn, tool_name)
        return Tool(
            None if target == "client" else fn,
            name=tool_name,
            description=doc,
            parameters=schema,
            args_type=args_type,
            target=target,
            requires_confirmation=requires_confirmation,
            retry_in_doubt=retry_in_doubt,
            parallel=parallel,
            redact=redact,
        )

    if callable(name):
        return wrap(name)
    return wrap
