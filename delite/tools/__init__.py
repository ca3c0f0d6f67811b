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
from delite.tools._redact import REDACTED, Redactor, redact_patterns

__all__ = [
    "REDACTED",
    "Clarification",
    "DelegationSuspended",
    "Redactor",
    "Tool",
    "ToolCallContext",
    "current_call",
    "current_idempotency_key",
    "redact_patterns",
    "tool",
]
