"""A deterministic model for tests, examples and the demo, shipped in the package.

It picks its reply from the conversation it is given: reply *k* of the script answers a conversation with *k*
assistant turns since the last user message. So a fresh process that resumes an execution gets exactly the
reply the next step needs, with no state kept in the provider.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from delite.errors import ProviderError
from delite.log.records import Usage
from delite.providers._base import OUTPUT_RETRY_PREFIX, ModelTurn, ProviderCall

__all__ = ["ScriptedProvider", "call"]

Reply = ModelTurn | str | dict[str, Any] | Callable[[list[dict[str, Any]]], "ModelTurn | str | dict[str, Any]"]


def call(name: str, /, **arguments: Any) -> dict[str, Any]:
    """A scripted turn that calls one tool: ``call("add", a=1, b=2)``."""
    return {"tool_calls": [{"name": name, "arguments": arguments}]}


def _turn_index(messages: list[dict[str, Any]], start: int = 0, before: int | None = None) -> int:
    """Assistant turns since the last user message (a retry prompt is not one), scanning back to ``start``.

    ``before``: the count for ``messages[:start]``, added when the scan reaches ``start`` without a user
    message (None: scan to the beginning, as ``start`` is then 0). Each message's role is read once; the search
    for the last user message and the count run over the list of roles (a resumed process asks with the whole
    conversation, 20,000 messages after 10,000 steps).
    """
    roles = [message.get("role") for message in messages[start:]]
    roles.reverse()
    at = 0
    while True:
        try:
            at = roles.index("user", at)
        except ValueError:
            count = roles.count("assistant")
            return count if before is None else count + before
        content = messages[len(messages) - 1 - at].get("content")
        if not (isinstance(content, str) and content.startswith(OUTPUT_RETRY_PREFIX)):
            return roles[:at].count("assistant")
        at += 1  # delite asking for a corrected answer: the script goes on with its next reply


MEMO_SIZE = 256
"""How many conversations a :class:`ScriptedProvider` remembers the turn index of (the oldest is forgotten)."""


class _Turns:
    """The turn index of the conversations seen last, so a call that extends one reads only what was added.

    An engine passes the same message objects again with more after them: a conversation is remembered by
    its first message, with a copy of the list as it was and its count. A later list whose start is that
    copy (the same objects, compared in C) counts only its new messages and adds the remembered count when
    it reaches them without a user message; any other list is scanned whole. So the answer is always the one
    the whole scan gives, for messages that are not changed in place after they were passed (delite never
    does); a fresh process (a resume) simply starts with nothing remembered.
    """

    def __init__(self) -> None:
        self.seen: dict[int, tuple[list[dict[str, Any]], int]] = {}
        self.lock = threading.Lock()

    def index(self, messages: list[dict[str, Any]]) -> int:
        """The turn index of ``messages`` (see :func:`_turn_index`)."""
        if not messages:
            return 0
        first = messages[0]
        key = id(first)
        known = self.seen.get(key)
        count: int | None = None
        if known is not None:
            prefix, before = known
            k = len(prefix)
            # prefix[0] is first: the id is of a live object (the copy holds it), not a reused one.
            if k <= len(messages) and prefix[0] is first and _starts_with(messages, prefix):
                count = _turn_index(messages, k, before)
        if count is None:
            count = _turn_index(messages)
        copy = list(messages)
        with self.lock:
            seen = self.seen
            seen.pop(key, None)
            if len(seen) >= MEMO_SIZE:
                del seen[next(iter(seen))]
            seen[key] = (copy, count)
        return count


def _starts_with(messages: list[dict[str, Any]], prefix: list[dict[str, Any]]) -> bool:
    """Whether ``messages`` begins with ``prefix``: element by element, each the same object or an equal one."""
    try:
        return messages[: len(prefix)] == prefix
    except Exception:  # noqa: BLE001 - a value that cannot be compared: not known to be the same
        return False


class ScriptedProvider:
    """Replies from a script instead of a model.

    Each script entry is a string (a final answer), a dict with ``content`` and/or ``tool_calls`` (each
    ``{"name", "arguments"}``, ids are filled in), a :class:`ModelTurn`, or a callable that receives the
    messages and returns one of those (to answer from tool results).

    ``delay`` makes every call take that many seconds, as a real model's latency would: the sync call sleeps,
    the async one (``acall``, used by ``agent.arun`` and the :class:`~delite.Runtime`) awaits
    ``asyncio.sleep``, so many calls can wait at once on one event loop.

    Example::

        provider = ScriptedProvider([call("add", a=2, b=3), lambda m: f"It is {m[-1]['content']}."])
    """

    name = "scripted"

    def __init__(
        self,
        script: Sequence[Reply] = (),
        *,
        model: str = "scripted-1",
        usage: Usage | None = None,
        delay: float = 0.0,
    ) -> None:
        """Build from a script; ``usage`` overrides the synthetic per-turn token counts."""
        self.script: list[Reply] = list(script)
        self.model = model
        self.usage = usage
        self.delay = delay
        self.calls = 0
        self._turns = _Turns()

    def enqueue(self, *replies: Reply) -> None:
        """Append replies to the script."""
        self.script.extend(replies)

    @classmethod
    def tool_loop(
        cls,
        steps: int,
        tool_name: str,
        arguments: Callable[[int], dict[str, Any]] | None = None,
        *,
        answer: str | Callable[[list[dict[str, Any]]], str] = "done",
        model: str = "scripted-1",
        delay: float = 0.0,
    ) -> ScriptedProvider:
        """A script of ``steps`` turns that each call ``tool_name`` once, then a final answer."""
        args = arguments or (lambda i: {"i": i})

        def step_reply(i: int) -> dict[str, Any]:
            return {"tool_calls": [{"name": tool_name, "arguments": args(i)}]}

        script: list[Reply] = [step_reply(i) for i in range(steps)]
        script.append(answer)
        return cls(script, model=model, delay=delay)

    def __call__(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]], model: str | None) -> ModelTurn:
        """The script's reply for this conversation (after ``delay`` seconds)."""
        if self.delay:
            time.sleep(self.delay)
        return self._reply(messages, tools, model)

    async def acall(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]], model: str | None) -> ModelTurn:
        """The script's reply, awaiting ``delay`` seconds on the event loop."""
        if self.delay:
            import asyncio  # noqa: PLC0415 - only the async API needs it

            await asyncio.sleep(self.delay)
        return self._reply(messages, tools, model)

    def _reply(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]], model: str | None) -> ModelTurn:  # noqa: ARG002
        self.calls += 1
        index = self._turns.index(messages)
        if index >= len(self.script):
            raise ProviderError(f"script exhausted: no reply for turn {index + 1}", provider=self.name)
        reply = self.script[index]
        if callable(reply):
            reply = reply(messages)
        used = model or self.model
        usage = self.usage or Usage(input_tokens=12 * len(messages), output_tokens=8)
        if isinstance(reply, ModelTurn):
            return reply
        if isinstance(reply, str):
            return ModelTurn(content=reply, usage=usage, model=used)
        calls = [
            ProviderCall(id=c.get("id") or f"call_{index}_{i}", name=c["name"], arguments=c.get("arguments", {}))
            for i, c in enumerate(reply.get("tool_calls") or [])
        ]
        return ModelTurn(content=reply.get("content"), tool_calls=calls, usage=usage, model=used)

    def stream(
        self,
        messages: list[dict[str, Any]],
        tools: list[dict[str, Any]],
        model: str | None,
        *,
        on_text: Callable[[str], None],
    ) -> ModelTurn:
        """The script's reply, its text handed to ``on_text`` word by word first (see ``agent.stream``)."""
        return _spoken(self(messages, tools, model), on_text)

    async def astream(
        self,
        messages: list[dict[str, Any]],
        tools: list[dict[str, Any]],
        model: str | None,
        *,
        on_text: Callable[[str], None],
    ) -> ModelTurn:
        """:meth:`stream` for the async API (``agent.astream``)."""
        return _spoken(await self.acall(messages, tools, model), on_text)


def _spoken(turn: ModelTurn, on_text: Callable[[str], None]) -> ModelTurn:
    """Hand the turn's text to ``on_text`` word by word, as a streaming model would; return the turn."""
    for piece in re.findall(r"\S+\s*|\s+", turn.content or ""):
        on_text(piece)
    return turn
