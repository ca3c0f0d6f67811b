"""The fake server's script: what each model turn says, what it costs, and which faults come first.

A script is one conversation. The turn a request gets is chosen from the request itself, like
``delite.ScriptedProvider``: turn *k* answers a conversation with *k* assistant turns since the last user
message. So a retried or resumed request for step *k* gets turn *k* again, whichever process sends it.

Faults belong to a turn and are used up one per request, in order: a turn with two faults fails its first
two requests (each in its own way) and is served on the third.
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec

__all__ = ["Call", "Fault", "Script", "Tokens", "Turn"]

FaultKind = Literal[
    "status",  # an HTTP error status with the vendor's error body (and retry-after headers when given)
    "stall",  # JSON: wait `seconds` before answering. SSE: send `after` events, then wait `seconds`
    "slow",  # SSE: wait `seconds` before every event (the answer is complete, just slow)
    "drop",  # send part of the body (JSON) or `after` events (SSE), then close the connection abruptly
    "truncate",  # SSE: send `after` events and end the stream cleanly, without its terminal event
    "malformed",  # JSON: a 200 whose body is not JSON. SSE: after `after` events, a data line that is not JSON
    "stream_error",  # SSE: after `after` events, the vendor's in-band error event
]


class Call(msgspec.Struct, frozen=True, kw_only=True):
    """A tool call the model makes; the id is generated when not given."""

    name: str
    arguments: dict[str, Any] = msgspec.field(default_factory=dict)
    id: str | None = None


class Tokens(msgspec.Struct, frozen=True, kw_only=True):
    """A turn's usage in disjoint buckets; each API renders it its own way.

    ``input`` is uncached input, ``cached`` cache reads, ``cache_write`` cache writes (``cache_write_1h`` of
    them at the one-hour TTL, Anthropic only), ``output`` output including ``reasoning``.
    """

    input: int = 20
    cached: int = 0
    cache_write: int = 0
    cache_write_1h: int = 0
    output: int = 10
    reasoning: int = 0

    @property
    def prompt(self) -> int:
        """Every input token, as the OpenAI APIs count them."""
        return self.input + self.cached + self.cache_write


class Fault(msgspec.Struct, frozen=True, kw_only=True):
    """One failed request; see ``FaultKind``."""

    kind: FaultKind
    status: int = 500
    retry_after: str | None = None
    retry_after_ms: str | None = None
    should_retry: str | None = None
    after: int = 2
    seconds: float = 5.0
    message: str = "injected fault"
    error_type: str | None = None


class Turn(msgspec.Struct, frozen=True, kw_only=True):
    """One model turn: text and/or tool calls, usage, and the faults served before it."""

    text: str | None = None
    calls: list[Call] = msgspec.field(default_factory=list)
    tokens: Tokens = msgspec.field(default_factory=Tokens)
    faults: list[Fault] = msgspec.field(default_factory=list)
    stop: str | None = None  # "length" (each API's own word for it), or a vendor's stop reason verbatim


class Script(msgspec.Struct, kw_only=True):
    """A conversation's turns; the served model id is the one requested unless ``model`` is set."""

    turns: list[Turn] = msgspec.field(default_factory=list)
    model: str | None = None


def encode(script: Script) -> bytes:
    """The script as JSON, for the control endpoint."""
    return msgspec.json.encode(script)


def decode(data: bytes) -> Script:
    """A script from JSON."""
    return msgspec.json.decode(data, type=Script)
