"""The engine: the agent loop, replay checks and the embedded ``Agent``."""

from __future__ import annotations

from delite.engine.agent import Agent
from delite.engine.budget import Budget
from delite.engine.delegation import adelegate, delegate
from delite.engine.loop import RetryPolicy
from delite.engine.response import AnyResponse, NotSuspendedResponse, Response, SuspendedResponse

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
