"""Comparing what a log recorded with what the resuming agent would do: configuration drift."""

from __future__ import annotations

import msgspec

from delite.log.records import ConfigFingerprint, ToolSpec

__all__ = ["config_changes"]

_enc = msgspec.json.Encoder(order="sorted")


def _tool_text(spec: ToolSpec) -> str:
    return _enc.encode(spec).decode()


def config_changes(old: ConfigFingerprint, new: ConfigFingerprint) -> list[tuple[str, str, str]]:
    """Every difference between two fingerprints as ``(what, old, new)``; empty when they match.

    The agent's default model is compared; a per-run override (``run(..., model=...)``) is not part of the
    fingerprint, it is recorded per call.
    """
    changes: list[tuple[str, str, str]] = []
    if (old.prompt or "") != (new.prompt or ""):
        changes.append(("prompt", old.prompt or "", new.prompt or ""))
    if old.provider != new.provider:
        changes.append(("provider", old.provider, new.provider))
    if (old.model or "") != (new.model or ""):
        changes.append(("model", old.model or "", new.model or ""))
    old_tools = {t.name: t for t in old.tools}
    new_tools = {t.name: t for t in new.tools}
    for name in sorted(old_tools.keys() | new_tools.keys()):
        before = _tool_text(old_tools[name]) if name in old_tools else "(absent)"
        after = _tool_text(new_tools[name]) if name in new_tools else "(absent)"
        if before != after:
            changes.append((f"tool {name}", before, after))
    return changes
