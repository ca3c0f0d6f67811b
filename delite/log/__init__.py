"""The log layer: bytes on disk only, no agent concepts."""

from __future__ import annotations

from delite.log._durability import Durability
from delite.log._framing import FORMAT, TornTail
from delite.log._reader import LogContents, parse_log, read_log
from delite.log._writer import LogWriter

__all__ = ["FORMAT", "Durability", "LogContents", "LogWriter", "TornTail", "parse_log", "read_log"]
