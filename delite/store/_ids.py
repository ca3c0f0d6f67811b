"""Execution ids: validation of supplied ids, generation of new time-sortable ones, and resolving a part of one.

The one place these rules are written: every store validates with :func:`validate_execution_id`, and
``DataDir.resolve`` (so every ``delite`` command) resolves a prefix or suffix with :func:`resolve_execution_id`.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable

from delite.errors import AmbiguousExecutionIdError, ExecutionNotFoundError, InvalidExecutionIdError

__all__ = [
    "MAX_ID_LENGTH",
    "WAITING_FOR_SUB_AGENT",
    "is_execution_id",
    "new_execution_id",
    "plain_sub_agent_id",
    "resolve_execution_id",
    "sub_agent_id",
    "validate_execution_id",
]

MAX_ID_LENGTH = 128
_ALLOWED = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]*")
_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def validate_execution_id(execution_id: object) -> str:
    """Return ``execution_id`` if it is safe to use as a file name, else raise :class:`InvalidExecutionIdError`.

    Allowed: 1 to 128 characters from ``A-Z a-z 0-9 . _ : -``, starting with a letter or digit, and no ``..``.
    This refuses path separators, control characters, whitespace and every name with a special meaning to the
    file system before any file is touched.
    """
    if isinstance(execution_id, str) and is_execution_id(execution_id):
        return execution_id  # the common case: one match; the checks below only choose the refusal's words
    if not isinstance(execution_id, str):
        raise InvalidExecutionIdError(repr(execution_id), "must be a string")
    if not execution_id:
        raise InvalidExecutionIdError(execution_id, "must not be empty")
    if len(execution_id) > MAX_ID_LENGTH:
        raise InvalidExecutionIdError(execution_id, f"longer than {MAX_ID_LENGTH} characters")
    if "/" in execution_id or "\\" in execution_id:
        raise InvalidExecutionIdError(execution_id, "contains a path separator")
    if ".." in execution_id:
        raise InvalidExecutionIdError(execution_id, "contains '..'")
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in execution_id):
        raise InvalidExecutionIdError(execution_id, "contains a control character")
    if not _ALLOWED.fullmatch(execution_id):
        raise InvalidExecutionIdError(
            execution_id, "may hold only letters, digits, '.', '_', ':' and '-', and must start with a letter or digit"
        )
    return execution_id


WAITING_FOR_SUB_AGENT = "waiting for sub-agent "
"""How a parent's suspension message names the sub-agent it waits on (its id follows)."""


def plain_sub_agent_id(parent: str, call: str, n: int = 1) -> str:
    """The id of the ``n``-th sub-agent a parent's call starts, before :func:`sub_agent_id`.

    ``<parent>:<call>``, then ``<parent>:<call>:2``...: the rule ``delegate`` names them by, and a fork traces
    them back by.
    """
    base = f"{parent}:{call}"
    return base if n == 1 else f"{base}:{n}"


def sub_agent_id(base: str) -> str:
    """The execution id of a sub-agent whose plain id is ``base`` (``<parent>:<call>``...).

    ``base`` itself, or a stable digest of it when it is longer than :data:`MAX_ID_LENGTH` (deep trees of long
    ids). The one rule, used where a sub-agent is started (``delegate``) and where a fork works out the ids its copies
    of the origin's sub-agents must have.
    """
    if len(base) <= MAX_ID_LENGTH:
        return base
    import hashlib  # noqa: PLC0415 - OpenSSL's hashlib costs milliseconds to import; rarely needed here

    return "sub-" + hashlib.sha256(base.encode()).hexdigest()[:48]


def is_execution_id(text: str) -> bool:
    """Whether :func:`validate_execution_id` accepts ``text`` (a fast check, for names found in a listing)."""
    return 0 < len(text) <= MAX_ID_LENGTH and ".." not in text and _ALLOWED.fullmatch(text) is not None


def new_execution_id(now: float | None = None) -> str:
    """A new 26-character id, ULID-like: 48 bits of milliseconds then 80 random bits, Crockford base32.

    Ids made later sort after ids made earlier (to the millisecond), so listings by id are by age.
    """
    ms = int((time.time() if now is None else now) * 1000) & ((1 << 48) - 1)
    value = (ms << 80) | int.from_bytes(os.urandom(10), "big")
    chars = []
    for _ in range(26):
        chars.append(_CROCKFORD[value & 31])
        value >>= 5
    return "".join(reversed(chars))


def resolve_execution_id(
    text: object, *, exists: Callable[[str], bool], ids: Callable[[], list[str]], where: str | None = None
) -> str:
    """The full id of the one execution whose id is ``text``, or starts or ends with it.

    ``exists`` answers for a full id (tried first), ``ids`` lists every id (asked only when ``text`` is not
    one); ``where`` names the place searched in the "not found" error (a data directory). Matching is
    case-sensitive first, then case-insensitive when nothing matched.

    Raises:
        InvalidExecutionIdError: the text is empty or could not be part of an id.
        ExecutionNotFoundError: nothing matches.
        AmbiguousExecutionIdError: more than one execution matches.
    """
    part = validate_execution_id(text)
    if exists(part):
        return part
    every = ids()
    matches = [i for i in every if i.startswith(part) or i.endswith(part)]
    if not matches:
        folded = part.casefold()
        matches = [i for i in every if i.casefold().startswith(folded) or i.casefold().endswith(folded)]
    if not matches:
        raise ExecutionNotFoundError(part, where)
    if len(matches) > 1:
        raise AmbiguousExecutionIdError(part, matches)
    return matches[0]
