"""The state layer: what an execution is, derived by folding its log."""

from __future__ import annotations

from delite.state._fold import apply, fold
from delite.state._model import CallState, ExecutionState, Status, Totals

__all__ = ["CallState", "ExecutionState", "Status", "Totals", "apply", "fold"]
