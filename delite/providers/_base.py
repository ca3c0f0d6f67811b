"""The provider contract: a callable from a conversation to the model's next turn.

A provider is any callable ``(messages, tools, model) -> dict`` where ``messages`` are plain dicts in the
OpenAI chat shape (``role``, ``content``, ``tool_calls``, ``tool_call_id``), ``tools`` are
``{"name", "description", "parameters"}`` dicts with JSON-schema parameters, and ``model`` is the model to
use (or None for the provider's default). It returns::

    {"content": str | None,
     "tool_calls": [{"id": str, "name": str, "arguments": dict}],
     "usage": {"input_tokens": int, "output_tokens": int},
     "model": str}            # optional: the model that actually answered

or a :class:`ModelTurn`. A tool call's ``id`` may be left out (delite's own call id is then used with the
model); ``content`` may also be a list of content blocks (text and ``tool_use`` blocks are read, thinking
is left out), and the whole turn may be an OpenAI chat completion or an Anthropic message as a dict (see
:func:`normalize_turn`). Anything else is a :class:`~delite.errors.ProviderError`, recorded as a failed
attempt and retried under the agent's retry policy. Providers must not modify ``messages``.

For the async API a provider may also have ``async def acall(messages, tools, model)`` (and ``astream``, like
``stream``): it is awaited on the event loop. A provider without them is called in a worker thread.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from decimal import Decimal, InvalidOperation
from typing import Any, Protocol, runtime_checkable

import msgspec

from delite.errors import ProviderError
from delite.log.records import Usage
from delite.providers._shapes import MalformedTurnError, documented_turn, reported_usage

__all__ = [
    "OUTPUT_RETRY_PREFIX",
    "AnyProvider",
    "AsyncProvider",
    "ModelTurn",
    "Provider",
    "ProviderCall",
    "StreamingProvider",
    "normalize_turn",
    "provider_name",
]

OUTPUT_RETRY_PREFIX = "Your answer did not match the required output"
"""How a user message starts when delite asks the model to correct a structured answer (``output_type``)."""


class ProviderCall(msgspec.Struct, frozen=True, kw_only=True):
    """A tool call as a provider returns it; ``id`` is the provider's own ("" when it gave none)."""

    id: str = ""
    name: str
    arguments: Any = None


class ModelTurn(msgspec.Struct, frozen=True, kw_only=True):
    """A model's normalised answer: text, tool calls, usage and the model id.

    ``model`` is the model that answered (as the provider reported it). The other fields describe the call for
    the log and for telemetry, and are optional: ``request_model`` the model asked for, ``response_id`` the
    provider's id of the answer, ``finish_reasons`` why the model stopped (as the provider says it: ``stop``,
    ``tool_calls``, ``end_turn``...), ``server_address`` and ``server_port`` the API's host and port.
    """

    content: str | None = None
    tool_calls: list[ProviderCall] = msgspec.field(default_factory=list)
    usage: Usage = msgspec.field(default_factory=Usage)
    model: str | None = None
    raw_usage: dict[str, Any] | None = None
    request_model: str | None = None
    response_id: str | None = None
    finish_reasons: list[str] = msgspec.field(default_factory=list)
    server_address: str | None = None
    server_port: int | None = None


ProviderTurn = Mapping[str, Any] | ModelTurn
"""What a provider returns: the documented dict (or a chat completion, a message...) or a :class:`ModelTurn`."""


@runtime_checkable
class Provider(Protocol):
    """What delite calls to get the model's next turn."""

    def __call__(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]], model: Any, /) -> ProviderTurn:
        """Return the next turn for this conversation.

        delite passes the three arguments by position. ``model`` is the model id, or None when neither the run
        nor the agent names one; it is typed ``Any`` so that a function declaring ``model: str`` (for an agent
        that always names its model) is a provider too.
        """
        ...


class AsyncProvider(Protocol):
    """A provider written as a coroutine function, ``async def model(messages, tools, model)``.

    Only the async API (``arun``, ``astream``, a :class:`~delite.Runtime`) can use it: it awaits it on the
    event loop. A provider object serves both APIs: a :class:`Provider` with an ``async def acall`` method.
    """

    async def __call__(
        self, messages: list[dict[str, Any]], tools: list[dict[str, Any]], model: Any, /
    ) -> ProviderTurn:
        """Return the next turn for this conversation (the arguments as for :class:`Provider`)."""
        ...


AnyProvider = Provider | AsyncProvider
"""What an :class:`~delite.Agent` takes as its model: a :class:`Provider` or an :class:`AsyncProvider`."""


@runtime_checkable
class StreamingProvider(Provider, Protocol):
    """A provider that can also stream its turn; ``agent.stream(...)`` uses ``stream`` when a provider has it.

    ``stream`` calls ``on_text`` with each piece of the answer's text as it arrives and returns the complete
    turn, like ``__call__``. A stream that breaks or ends early must raise (a retryable
    :class:`~delite.errors.ProviderError`), never return a partial turn: only complete turns are recorded.
    """

    def stream(
        self,
        messages: list[dict[str, Any]],
        tools: list[dict[str, Any]],
        model: str | None,
        *,
        on_text: Callable[[str], None],
    ) -> Mapping[str, Any] | ModelTurn:
        """Stream the next turn's text to ``on_text``; return the whole turn."""
        ...


def provider_name(provider: AnyProvider | Callable[..., Any] | None) -> str:
    """A stable name for the configuration fingerprint: the provider's ``name`` attribute or its class."""
    if provider is None:
        return ""
    name = getattr(provider, "name", None)
    if isinstance(name, str) and name:
        return name
    if hasattr(provider, "__qualname__"):
        return f"{getattr(provider, '__module__', '')}.{provider.__qualname__}"
    return f"{type(provider).__module__}.{type(provider).__qualname__}"


def normalize_turn(value: Any, *, provider: str = "") -> ModelTurn:
    """A :class:`ModelTurn` from what a provider returned, or a retryable :class:`ProviderError` saying why not.

    Accepts a :class:`ModelTurn`, the documented dict, an OpenAI chat completion or Responses object (as
    ``model_dump()`` gives it) or an Anthropic message; content may be a string or a list of content blocks
    (see :mod:`delite.providers._shapes`). Tool calls may lack ids. Every field is converted strictly: a
    number where text belongs, a model that is not a string, usage that is not an object are refused, never
    recorded. The error is retryable, so the engine records the failed attempt and retries under its policy;
    its ``usage`` holds what the turn reported it was billed, when that could be read.
    """
    try:
        return _normalize(value, provider)
    except RecursionError:  # nested deeper than Python can walk: not a turn delite can read or record
        raise _malformed("nested too deeply to read", provider) from None


def _normalize(value: Any, provider: str) -> ModelTurn:
    if isinstance(value, ModelTurn):
        if (
            isinstance(value.content, str | None)
            and isinstance(value.usage, Usage)
            and isinstance(value.tool_calls, list)
            and all(type(c) is ProviderCall for c in value.tool_calls)
        ):
            _check_usage(value.usage, provider)
            return value  # the record of the turn is checked with the reader's types before it is written
        try:
            value = msgspec.to_builtins(value)
        except (TypeError, ValueError) as e:
            raise _malformed(f"a ModelTurn that is not plain data: {e}", provider) from e
    elif not isinstance(value, Mapping):
        raise _malformed(f"the provider returned {type(value).__name__}, not a ModelTurn or a dict", provider)
    try:
        data = documented_turn(value)
    except MalformedTurnError as e:
        raise _malformed(str(e), provider, _billed(value)) from None
    usage = data["usage"]
    try:
        if usage is None:
            usage = Usage()
        elif not isinstance(usage, Usage):
            usage = msgspec.convert(usage, Usage)
    except msgspec.ValidationError as e:
        raise _malformed(f"usage: {e}", provider) from None
    _check_usage(usage, provider)
    try:
        calls = [msgspec.convert(c, ProviderCall) for c in data["tool_calls"]]
    except msgspec.ValidationError as e:
        raise _malformed(f"tool call: {e}", provider, usage) from None
    return ModelTurn(
        content=data["content"], tool_calls=calls, usage=usage, model=data["model"], raw_usage=data["raw_usage"]
    )


def _billed(value: Mapping[str, Any]) -> Usage | None:
    """What a turn that cannot be read said it cost, so the failed attempt records it (None if unreadable)."""
    usage = reported_usage(value)
    if usage is None or isinstance(usage, Usage):
        return usage
    try:
        billed = msgspec.convert(usage, Usage)
    except msgspec.ValidationError:
        return None
    return billed if _usage_problem(billed) is None else None


_COUNTS = ("input_tokens", "output_tokens", "cached_input_tokens", "cache_write_tokens", "reasoning_tokens")


def _usage_problem(usage: Usage) -> str | None:
    """Why ``usage`` cannot be counted, or None.

    A negative or non-int token count, or a cost that is not a finite amount of 0 or more, would make budgets
    and totals wrong, or fail when they are summed.
    """
    for name in _COUNTS:
        count = getattr(usage, name)
        if isinstance(count, bool) or not isinstance(count, int) or count < 0:
            return f"usage {name} is {count!r:.40}, not a count of 0 or more"
    if usage.cost is not None:
        try:
            cost = Decimal(usage.cost)
        except (InvalidOperation, TypeError, ValueError):
            return f"usage cost is {usage.cost!r:.40}, not a decimal amount of dollars"
        if not cost.is_finite() or cost < 0:
            return f"usage cost is {usage.cost!r:.40}, not a finite amount of 0 or more"
    return None


def _check_usage(usage: Usage, provider: str) -> None:
    problem = _usage_problem(usage)
    if problem is not None:
        raise _malformed(problem, provider)


def _malformed(detail: str, provider: str, usage: Usage | None = None) -> ProviderError:
    error = ProviderError(f"malformed turn: {detail}", provider=provider, retryable=True)
    error.usage = usage
    return error
