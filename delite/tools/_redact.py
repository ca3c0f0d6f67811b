"""Redaction: what a hook takes out of tool arguments, tool results and model content before it is recorded.

A redactor is a function from a JSON value (a string, a list, a dict...) to the JSON value to record in its
place. :func:`redact_patterns` builds one that replaces every match of regular expressions inside strings.
What a redactor removes never reaches the log, so neither exports, listings nor telemetry (which reads the
records) see it; see ``docs/how-to/retention.md``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import Any, TypeAlias

from delite.errors import UsageError

__all__ = ["REDACTED", "Redactor", "check_redactor", "redact_outcome", "redact_patterns", "redact_with"]

Redactor: TypeAlias = Callable[[Any], Any]
"""A redaction hook: takes a JSON value, returns the JSON value to record instead (the same one: nothing to hide)."""

REDACTED = "[REDACTED]"
"""What :func:`redact_patterns` puts in place of a match unless told otherwise."""


def redact_patterns(*patterns: str | re.Pattern[str], replacement: str = REDACTED) -> Redactor:
    r"""A redactor that replaces every match of ``patterns`` in every string of a JSON value (keys kept).

    Example: ``redact_patterns(r"sk-[A-Za-z0-9]{20,}", r"\b\d{3}-\d{2}-\d{4}\b")`` hides API keys and US
    social security numbers.

    Raises:
        UsageError: no pattern, a pattern that does not compile, or a replacement that is not a string.
    """
    if not patterns:
        raise UsageError("redact_patterns needs at least one pattern")
    if not isinstance(replacement, str):
        raise UsageError(f"the replacement is a string, not {type(replacement).__name__}")
    try:
        compiled = [p if isinstance(p, re.Pattern) else re.compile(p) for p in patterns]
    except (re.error, TypeError) as e:
        raise UsageError(f"a redaction pattern does not compile: {e}") from e

    def text(s: str) -> str:
        for p in compiled:
            s = p.sub(replacement, s)
        return s

    def walk(value: Any) -> Any:
        if isinstance(value, str):
            return text(value)
        if isinstance(value, dict):
            return {k: walk(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [walk(v) for v in value]
        return value

    return walk


def check_redactor(name: str, redact: object) -> Redactor | None:
    """``redact`` if it is None or callable, else a :class:`UsageError` naming the option."""
    if redact is not None and not callable(redact):
        raise UsageError(
            f"{name} takes a function from a JSON value to the value to record, not {type(redact).__name__}"
        )
    return redact


def redact_with(redactors: Iterable[Redactor | None], value: Any) -> Any:
    """``value`` passed through each redactor in turn (None ones skipped)."""
    for r in redactors:
        if r is not None:
            value = r(value)
    return value


def redact_outcome(redactors: Iterable[Redactor | None], result: Any, error: str | None) -> tuple[Any, str | None]:
    """A tool's result and error as they are recorded: each passed through ``redactors`` in turn.

    The same for every way a result reaches the log: a tool run here, a client tool's result submitted from
    outside, an operator's settlement of an in-doubt call. An error stays a string.
    """
    chain = tuple(redactors)
    if result is not None:
        result = redact_with(chain, result)
    if error is not None:
        redacted = redact_with(chain, error)
        error = redacted if isinstance(redacted, str) else str(redacted)
    return result, error
