"""The read side: list, inspect, verify, export and fork the executions of a data directory, or of any store."""

from __future__ import annotations

from delite.datadir._directory import WAITING, DataDir
from delite.datadir._execution import ExecutionView
from delite.datadir._retention import RetentionReport
from delite.store._views import (
    EXPORT_FORMAT,
    Decision,
    Event,
    ExecutionDetail,
    ExecutionSummary,
    Export,
    HealthReport,
    LastError,
    LlmCall,
    Page,
    Pause,
    Problem,
    Step,
    Tokens,
    ToolCall,
    TornInfo,
)

__all__ = [
    "EXPORT_FORMAT",
    "WAITING",
    "DataDir",
    "Decision",
    "Event",
    "ExecutionDetail",
    "ExecutionSummary",
    "ExecutionView",
    "Export",
    "HealthReport",
    "LastError",
    "LlmCall",
    "Page",
    "Pause",
    "Problem",
    "RetentionReport",
    "Step",
    "Tokens",
    "ToolCall",
    "TornInfo",
]
