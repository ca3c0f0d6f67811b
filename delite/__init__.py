"""delite: the SQLite of durable agent execution.

Every model response and tool call of an agent run is appended to a checksummed, append-only log before the
next step starts, so a killed process is resumed by execution id with nothing done twice and nothing lost.
"""

from __future__ import annotations

from delite._version import __version__
from delite.engine import Agent, Budget, Response, RetryPolicy
from delite.errors import DeliteError
from delite.log import Durability
from delite.log.records import SuspendReason, Usage
from delite.providers import ScriptedProvider
from delite.state import ExecutionState, Status
from delite.store import FileStore, MemoryStore, Store
from delite.tools import Tool, current_call, current_idempotency_key, tool

__all__ = [
    "Agent",
    "Budget",
    "DeliteError",
    "Durability",
    "ExecutionState",
    "FileStore",
    "MemoryStore",
    "Response",
    "RetryPolicy",
    "ScriptedProvider",
    "Status",
    "Store",
    "SuspendReason",
    "Tool",
    "Usage",
    "__version__",
    "current_call",
    "current_idempotency_key",
    "tool",
]
