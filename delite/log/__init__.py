"""The log layer: bytes on disk only, no agent concepts."""

# The reader and the writer are imported on first use (PEP 562): ``delite.log.records`` (imported by the
# engine) runs this file first, and it should not import the writer (``secrets``) nor the reader with it.
# Add new names to ``_EXPORTS`` too.

from __future__ import annotations

from typing import TYPE_CHECKING

from delite._lazy import lazy_exports
from delite.log._durability import Durability
from delite.log._framing import FORMAT, TornTail

if TYPE_CHECKING:
    from delite.log._reader import LogContents, parse_log, read_log
    from delite.log._writer import LogWriter

_EXPORTS = {
    "LogContents": "delite.log._reader",
    "LogWriter": "delite.log._writer",
    "parse_log": "delite.log._reader",
    "read_log": "delite.log._reader",
}

__all__ = ["FORMAT", "Durability", "LogContents", "LogWriter", "TornTail", "parse_log", "read_log"]


__getattr__, __dir__ = lazy_exports(__name__, globals(), _EXPORTS)
