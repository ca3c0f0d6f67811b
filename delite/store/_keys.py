"""Where encryption keys come from, and the refusal to advance sealed records without them.

Kept apart from :mod:`delite.store._sealed` (the sealing layer) so that a process with no keys configured
never imports it: opening a store asks :func:`keys_configured`, and every claim asks :func:`refuse_sealed`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from delite.errors import PlaintextRecordError
from delite.log.records import AnyRecord, SealedRecord

__all__ = ["KEYS_ENV", "KEY_FILE_ENV", "keys_configured", "refuse_sealed"]

KEYS_ENV = "DELITE_ENCRYPTION_KEYS"
"""The environment variable holding the keys themselves: ``id:base64key`` entries, the newest last."""

KEY_FILE_ENV = "DELITE_ENCRYPTION_KEY_FILE"
"""The environment variable naming a key file (one ``id:base64key`` line per key, the newest last)."""


def keys_configured(environ: Mapping[str, str] | None = None) -> bool:
    """Whether the environment names encryption keys (so a store opened without ``keys`` is sealed)."""
    env = os.environ if environ is None else environ
    return bool(env.get(KEYS_ENV, "").strip() or env.get(KEY_FILE_ENV, "").strip())


def refuse_sealed(execution_id: str, first: AnyRecord | None) -> None:
    """Raise :class:`PlaintextRecordError` if the log starting with ``first`` is sealed: advancing it needs the key.

    Without the key a sealed execution folds as its shells (no input, no conversation), so an engine that
    advanced it would answer from nothing and write plain text after sealed records.
    """
    if isinstance(first, SealedRecord):
        raise PlaintextRecordError(
            execution_id,
            0,
            f"the execution is sealed (key {first.key_id!r}) and no key is configured: set {KEYS_ENV} "
            f"or {KEY_FILE_ENV} to advance it",
        )
