"""Argument checks at the public boundary: a wrong type is a :class:`~delite.errors.UsageError` naming it.

Every public method that records something checks its arguments here before it claims or writes anything, so
a wrong type never reaches a log (the writer checks every record too, as a last line of defence: see
:func:`delite.log._codec.encode_record`). Text must be a ``str`` that encodes as UTF-8 (no lone surrogates);
JSON values must be plain JSON: ``dict`` with ``str`` keys, ``list``/``tuple``, ``str``, ``int``, finite
``float``, ``bool`` and ``None``. A flag must be a real ``bool``: ``"false"``, ``0`` or ``0.0`` are refused,
never read as a truth value.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

from delite.errors import UsageError

__all__ = [
    "check_flag",
    "check_history",
    "check_int",
    "check_json",
    "check_json_object",
    "check_optional_text",
    "check_run_args",
    "check_str_list",
    "check_text",
]

_ROLES = frozenset({"system", "developer", "user", "assistant", "tool"})
_MAX_DEPTH = 200
_SHOWN = 160  # the most of a value's path an error shows: a path 200 levels deep is one "[0]" per level


def _kind(value: object) -> str:
    return "None" if value is None else type(value).__name__


def check_text(name: str, value: object) -> str:
    """``value`` if it is a ``str`` that encodes as UTF-8, else a :class:`UsageError` naming ``name``."""
    if not isinstance(value, str):
        raise UsageError(f"{name} must be a string, not {_kind(value)}")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as e:
        raise UsageError(
            f"{name} is not valid Unicode text (a lone surrogate at position {e.start}); "
            "decode bytes with errors='replace' before passing them"
        ) from None
    return value


def check_optional_text(name: str, value: object) -> str | None:
    """:func:`check_text`, or None."""
    return None if value is None else check_text(name, value)


def check_flag(name: str, value: object) -> bool:
    """``value`` if it is a real ``bool`` (not ``"false"``, ``0`` or ``0.0``), else a :class:`UsageError`."""
    if not isinstance(value, bool):
        raise UsageError(f"{name} must be True or False (a bool), not {_kind(value)} {value!r:.80}")
    return value


def check_int(name: str, value: object, *, minimum: int = 0) -> int:
    """``value`` if it is an ``int`` (not a ``bool``) of at least ``minimum``, else a :class:`UsageError`."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise UsageError(f"{name} must be an int, not {_kind(value)}")
    if value < minimum:
        raise UsageError(f"{name} must be {minimum} or more, not {value}")
    return value


def check_str_list(name: str, value: object) -> list[str]:
    """An iterable of strings (a single ``str`` is refused: it would be read as its characters)."""
    if isinstance(value, str | bytes) or not isinstance(value, Iterable):
        raise UsageError(f"{name} must be a list of strings, not {_kind(value)}")
    items = list(value)
    for i, item in enumerate(items):
        check_text(f"{name}[{i}]", item)
    return items


def check_json(name: str, value: object) -> None:
    """Raise a :class:`UsageError` naming the first part of ``value`` that is not plain JSON."""
    _json(name, value, 0)


def _json(path: str, value: object, depth: int) -> None:
    if value is None or isinstance(value, bool | int):
        return
    if isinstance(value, str):
        check_text(path, value)
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise UsageError(f"{path} is {value!r}, which JSON cannot hold")
    elif depth >= _MAX_DEPTH:
        shown = path if len(path) <= _SHOWN else f"{path[: _SHOWN // 2]}...{path[-_SHOWN // 4 :]}"
        raise UsageError(f"{shown} is nested more than {_MAX_DEPTH} levels deep")
    elif isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise UsageError(f"{path} has a key {key!r:.80} of type {_kind(key)}; JSON keys are strings")
            check_text(f"{path} key {key[:40]!r}", key)
            _json(f"{path}[{key[:40]!r}]", item, depth + 1)
    elif isinstance(value, list | tuple):
        for i, item in enumerate(value):
            _json(f"{path}[{i}]", item, depth + 1)
    else:
        raise UsageError(f"{path} is a {_kind(value)}, which is not a JSON value")


def check_json_object(name: str, value: object) -> dict[str, Any] | None:
    """None, or a ``dict`` of plain JSON (as ``metadata`` must be); else a :class:`UsageError`."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise UsageError(f"{name} must be a dict of JSON values, not {_kind(value)}")
    _json(name, value, 0)
    return value


def check_history(value: object) -> list[dict[str, Any]] | None:
    """None, or a list of chat messages in the OpenAI shape (``{"role": ..., "content": ...}``) of plain JSON."""
    if value is None:
        return None
    if not isinstance(value, list | tuple):
        raise UsageError(f"history must be a list of message dicts, not {_kind(value)}")
    for i, message in enumerate(value):
        where = f"history[{i}]"
        if not isinstance(message, dict):
            example = "{'role': 'user', 'content': '...'}"
            raise UsageError(f"{where} must be a message dict like {example}, not {_kind(message)}")
        role = message.get("role")
        if not isinstance(role, str) or role not in _ROLES:  # a list or a dict is no role (and not hashable)
            raise UsageError(f"{where}['role'] must be one of {', '.join(sorted(_ROLES))}, not {role!r:.80}")
        content = message.get("content")
        if content is not None and not isinstance(content, str | list):
            raise UsageError(f"{where}['content'] must be a string, a list of content parts or None")
        if isinstance(content, list) and not all(isinstance(p, dict) for p in content):
            raise UsageError(f"{where}['content'] parts must be dicts like {{'type': 'text', 'text': '...'}}")
        calls = message.get("tool_calls")
        if calls is not None and not (isinstance(calls, list) and all(isinstance(c, dict) for c in calls)):
            raise UsageError(f"{where}['tool_calls'] must be a list of dicts")
        _json(where, message, 1)
    return list(value)


def check_run_args(text: object, *, history: object, metadata: object, model: object, idempotency_key: object) -> None:
    """The arguments of ``run``/``arun``/``Runtime.go`` that are recorded with a new execution."""
    check_text("text", text)
    check_history(history)
    check_json_object("metadata", dict(metadata) if isinstance(metadata, Mapping) else metadata)
    check_optional_text("model", model)
    if idempotency_key is not None and not check_text("idempotency_key", idempotency_key):
        raise UsageError("idempotency_key must be a non-empty string")
