"""The tools layer: declaring tools, validating their arguments, and the call context inside them."""

from __future__ import annotations

from delite.tools._base import (
    Clarification,
    DelegationSuspended,
    Tool,
    ToolCallContext,
    current_call,
    current_idempotency_key,
    tool,
)

__all__ = [
    "Clarification",
    "DelegationSuspended",
    "Tool",
    "ToolCallContext",
    "current_call",
    "current_idempotency_key",
    "tool",
]
