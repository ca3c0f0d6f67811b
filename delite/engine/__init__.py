"""The engine: the agent loop, replay checks and the embedded ``Agent``."""

from __future__ import annotations

from delite.engine._agent import Agent
from delite.engine._budget import Budget
from delite.engine._delegation import adelegate, delegate
from delite.engine._loop import RetryPolicy
from delite.engine._response import AnyResponse, NotSuspendedResponse, Response, SuspendedResponse

__all__ = [
    "Agent",
    "AnyResponse",
    "Budget",
    "NotSuspendedResponse",
    "Response",
    "RetryPolicy",
    "SuspendedResponse",
    "adelegate",
    "delegate",
]
