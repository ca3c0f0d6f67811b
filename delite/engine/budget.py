"""Spending limits, checked per call (each model call and retry, each tool body) against the folded totals."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from delite.state.model import Totals

__all__ = ["Budget"]


@dataclass(frozen=True)
class Budget:
    """Limits on what one execution may spend. ``None`` means no limit.

    Model-call limits (``max_llm_calls``, ``max_tokens``, ``max_dollars``) are checked before every model
    call and before each retry of a failed one; ``max_tool_calls`` before every tool body starts, within one
    turn too (a turn asking for more calls than are left runs only as many). When a limit is reached the
    execution suspends (kind ``budget``) before the call; all completed work is kept. Raise the limit on the
    agent and ``resume`` to continue. A dollar limit counts only calls whose cost is known: if any call's cost
    is unknown (an unpriced model) the dollar limit cannot be enforced and the execution suspends rather than
    spend blind.
    """

    max_dollars: Decimal | float | str | None = None
    max_llm_calls: int | None = None
    max_tokens: int | None = None
    max_tool_calls: int | None = None

    def exhausted(self, totals: Totals) -> str | None:
        """The name of the first limit reached, or None."""
        if self.max_llm_calls is not None and totals.llm_calls >= self.max_llm_calls:
            return "max_llm_calls"
        if self.max_tokens is not None and totals.total_tokens >= self.max_tokens:
            return "max_tokens"
        if self.max_tool_calls is not None and totals.tool_calls >= self.max_tool_calls:
            return "max_tool_calls"
        if self.max_dollars is not None:
            if not totals.cost_known and totals.llm_calls:
                return "max_dollars"
            if totals.cost >= Decimal(str(self.max_dollars)):
                return "max_dollars"
        return None
