"""The provider contract: a callable from a conversation to the model's next turn.

A provider is any callable ``(messages, tools, model) -> dict`` where ``messages`` are plain dicts in the
OpenAI chat shape (``role``, ``content``, ``tool_calls``, ``tool_call_id``), ``tools`` are
``{"name", "description", "parameters"}`` dicts with JSON-schema parameters, and ``model`` is the model to
use (or None for the provider's default). It returns::

    {"content": str | None,
     "tool_calls": [{"id": str, "name": str, "arguments": dict}],
     "usage": {"input_tokens": int, "output_tokens": int},
     "model": str}            # optional: the model that actually answered

or a :class:`ModelTurn`. Providers must not modify ``messages``.

For the async API a provider may also have ``async def acall(messages, tools, model)`` (and ``astream``, like
``stream``): it is awaited on the event loop. A provider without them is called in a worker thread.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Protocol, runtime_checkable

import msgspec

from delite.errors import ProviderError
from delite.log.records import Usage

__all__ = [
    "OUTPUT_RETRY_PREFIX",
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
    """A tool call as a provider returns it; ``id`` is the provider's own."""

    id: str
    name: str
    arguments: Any = None


class ModelTurn(msgspec.Struct, frozen=True, kw_only=True):
    """A model's normalised answer: text, tool calls, usage and the model id."""

    content: str | None = None
    tool_calls: list[ProviderCall] = msgspec.field(default_factory=list)
    usage: Usage = msgspec.field(default_factory=Usage)
    model: str | None = None
    raw_usage: dict[str, Any] | None = None


@runtime_checkable
class Provider(Protocol):
    """What delite calls to get the model's next turn."""

    def __call__(
        self, messages: list[dict[str, Any]], tools: list[dict[str, Any]], model: str | None
    ) -> Mapping[str, Any] | ModelTurn:
        """Return the next turn for this conversation."""
        ...


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


def provider_name(provider: Callable[..., Any] | None) -> str:
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
    """Accept a :class:`ModelTurn` or the documented dict; anything else is a :class:`ProviderError`."""
    if isinstance(value, ModelTurn):
        return value
    if not isinstance(value, Mapping):
        raise ProviderError(f"provider returned {type(value).__name__}, expected a dict", provider=provider)
    data = dict(value)
    usage = data.get("usage") or {}
    calls = data.get("tool_calls") or []
    try:
        return ModelTurn(
            content=data.get("content"),
            tool_calls=[msgspec.convert(c, ProviderCall) for c in calls],
            usage=msgspec.convert(usage, Usage) if not isinstance(usage, Usage) else usage,
            model=data.get("model"),
            raw_usage=data.get("raw_usage"),
        )
    except (msgspec.ValidationError, TypeError) as e:
        raise ProviderError(f"provider returned a malformed turn: {e}", provider=provider) from e
