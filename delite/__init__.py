"""delite: the SQLite of durable agent execution.

Every model response and tool call of an agent run is appended to a checksummed, append-only log before the
next step starts, so a killed process is resumed by execution id with nothing done twice and nothing lost.
"""

# The names below are imported on first use (PEP 562), so that ``import delite.datadir`` and the ``delite``
# command do not pay for the engine, the providers and asyncio when they only read logs. To export a new
# name, add it to ``_EXPORTS``, to the ``TYPE_CHECKING`` block and to ``__all__``.

from __future__ import annotations

from typing import TYPE_CHECKING

from delite._lazy import lazy_exports
from delite._version import __version__

if TYPE_CHECKING:
    from delite.datadir import DataDir
    from delite.engine import (
        Agent,
        AnyResponse,
        Budget,
        NotSuspendedResponse,
        Response,
        RetryPolicy,
        SuspendedResponse,
        adelegate,
        delegate,
    )
    from delite.errors import (
        AlreadyDecidedError,
        AmbiguousExecutionIdError,
        ClaimTimeoutError,
        ControlSignal,
        DelegationDepthExceededError,
        DeliteDeprecationWarning,
        DeliteError,
        DriftError,
        ExecutionAlreadyActiveError,
        ExecutionAlreadyClaimedError,
        ExecutionAlreadyTerminalError,
        ExecutionIdConflictError,
        ExecutionNotFoundError,
        ExecutionNotSuspendedError,
        ExecutionStateError,
        IdempotencyConflictError,
        InvalidExecutionIdError,
        InvalidRecordError,
        InvalidToolResultError,
        LogCorruptError,
        LogIdentityError,
        MissingExtraError,
        ProviderError,
        ProviderHTTPError,
        RecordTooLargeError,
        ReplayMismatchError,
        SequenceConflictError,
        StoreError,
        StructuredOutputValidationError,
        SuspendKindMismatchError,
        ToolError,
        UnsupportedFormatError,
        UsageError,
    )
    from delite.log import Durability
    from delite.log.records import SuspendReason, Usage
    from delite.mcp import MCPServer
    from delite.providers import ScriptedProvider
    from delite.runtime import Runtime
    from delite.state import ExecutionState, Status
    from delite.store import FileStore, MemoryStore, Store
    from delite.tools import Clarification, Tool, current_call, current_idempotency_key, tool

_EXPORTS = {
    "Agent": "delite.engine",
    "AnyResponse": "delite.engine",
    "AlreadyDecidedError": "delite.errors",
    "AmbiguousExecutionIdError": "delite.errors",
    "Budget": "delite.engine",
    "ClaimTimeoutError": "delite.errors",
    "ControlSignal": "delite.errors",
    "DataDir": "delite.datadir",
    "DelegationDepthExceededError": "delite.errors",
    "DeliteDeprecationWarning": "delite.errors",
    "DeliteError": "delite.errors",
    "DriftError": "delite.errors",
    "Durability": "delite.log",
    "ExecutionAlreadyActiveError": "delite.errors",
    "ExecutionAlreadyClaimedError": "delite.errors",
    "ExecutionAlreadyTerminalError": "delite.errors",
    "ExecutionIdConflictError": "delite.errors",
    "ExecutionNotFoundError": "delite.errors",
    "ExecutionNotSuspendedError": "delite.errors",
    "ExecutionState": "delite.state",
    "ExecutionStateError": "delite.errors",
    "FileStore": "delite.store",
    "IdempotencyConflictError": "delite.errors",
    "InvalidExecutionIdError": "delite.errors",
    "InvalidRecordError": "delite.errors",
    "InvalidToolResultError": "delite.errors",
    "LogCorruptError": "delite.errors",
    "LogIdentityError": "delite.errors",
    "MissingExtraError": "delite.errors",
    "MCPServer": "delite.mcp",
    "MemoryStore": "delite.store",
    "NotSuspendedResponse": "delite.engine",
    "ProviderError": "delite.errors",
    "ProviderHTTPError": "delite.errors",
    "RecordTooLargeError": "delite.errors",
    "ReplayMismatchError": "delite.errors",
    "Response": "delite.engine",
    "RetryPolicy": "delite.engine",
    "Runtime": "delite.runtime",
    "ScriptedProvider": "delite.providers",
    "SequenceConflictError": "delite.errors",
    "Status": "delite.state",
    "Store": "delite.store",
    "StoreError": "delite.errors",
    "StructuredOutputValidationError": "delite.errors",
    "SuspendKindMismatchError": "delite.errors",
    "SuspendReason": "delite.log.records",
    "SuspendedResponse": "delite.engine",
    "Clarification": "delite.tools",
    "Tool": "delite.tools",
    "ToolError": "delite.errors",
    "UnsupportedFormatError": "delite.errors",
    "Usage": "delite.log.records",
    "UsageError": "delite.errors",
    "adelegate": "delite.engine",
    "current_call": "delite.tools",
    "current_idempotency_key": "delite.tools",
    "delegate": "delite.engine",
    "tool": "delite.tools",
}

__all__ = [
    "Agent",
    "AlreadyDecidedError",
    "AmbiguousExecutionIdError",
    "AnyResponse",
    "Budget",
    "ClaimTimeoutError",
    "Clarification",
    "ControlSignal",
    "DataDir",
    "DelegationDepthExceededError",
    "DeliteDeprecationWarning",
    "DeliteError",
    "DriftError",
    "Durability",
    "ExecutionAlreadyActiveError",
    "ExecutionAlreadyClaimedError",
    "ExecutionAlreadyTerminalError",
    "ExecutionIdConflictError",
    "ExecutionNotFoundError",
    "ExecutionNotSuspendedError",
    "ExecutionState",
    "ExecutionStateError",
    "FileStore",
    "IdempotencyConflictError",
    "InvalidExecutionIdError",
    "InvalidRecordError",
    "InvalidToolResultError",
    "LogCorruptError",
    "LogIdentityError",
    "MCPServer",
    "MemoryStore",
    "MissingExtraError",
    "NotSuspendedResponse",
    "ProviderError",
    "ProviderHTTPError",
    "RecordTooLargeError",
    "ReplayMismatchError",
    "Response",
    "RetryPolicy",
    "Runtime",
    "ScriptedProvider",
    "SequenceConflictError",
    "Status",
    "Store",
    "StoreError",
    "StructuredOutputValidationError",
    "SuspendKindMismatchError",
    "SuspendReason",
    "SuspendedResponse",
    "Tool",
    "ToolError",
    "UnsupportedFormatError",
    "Usage",
    "UsageError",
    "__version__",
    "adelegate",
    "current_call",
    "current_idempotency_key",
    "delegate",
    "tool",
]


__getattr__, __dir__ = lazy_exports(__name__, globals(), _EXPORTS)
