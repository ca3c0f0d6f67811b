"""The agent-facing names in one import, as the seeds write them.

``from delite.agent import current_idempotency_key`` (and ``Agent``, ``tool``...) is the shape of the original
delite SDK; these are the same objects as ``delite.Agent``, ``delite.tool`` and so on, re-exported here.
"""

from __future__ import annotations

from delite.engine import Agent, Budget, Response, RetryPolicy
from delite.log.records import SuspendReason
from delite.tools import Tool, current_call, current_idempotency_key, tool

__all__ = [
    "Agent",
    "Budget",
    "Response",
    "RetryPolicy",
    "SuspendReason",
    "Tool",
    "current_call",
    "current_idempotency_key",
    "tool",
]
