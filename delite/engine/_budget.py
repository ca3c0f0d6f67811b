"""Spending limits, checked per call (each model call and retry, each tool body) against the folded totals."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any, Literal

from delite.errors import UsageError
from delite.state._model import Totals

__all__ = ["Budget", "UnknownCostPolicy"]

UnknownCostPolicy = Literal["suspend", "ignore"]
"""What a dollar limit does once a call's cost is unknown: ``suspend`` (the default) or ``ignore``."""

_COUNTS = ("max_llm_calls", "max_tokens", "max_tool_calls")


@dataclass(frozen=True)
class Budget:
    """Limits on what one execution may spend. ``None`` means no limit.

    Model-call limits (``max_llm_calls``, ``max_tokens``, ``max_dollars``) are checked before every model
    call and before each retry of a failed one; ``max_tool_calls`` before every tool body starts, within one
    turn too (a turn asking for more calls than are left runs only as many). When a limit is reached the
    execution suspends (kind ``budget``) before the call; all completed work is kept. Raise the limit on the
    agent and ``resume`` to continue.

    A dollar limit counts the calls whose cost is known. When a call's cost is unknown (a model missing from
    the price table) the limit cannot be enforced, and ``on_unknown_cost`` decides: ``"suspend"`` (default)
    suspends before the next model call, saying the cost is unknown (``limit`` is ``max_dollars``, the limit
    that cannot be enforced; ``spent["dollars"]`` is None): it never claims the limit was reached;
    ``"ignore"`` counts unknown costs as zero and goes on (the limit then covers the priced calls only).

    Every value is checked when the budget is built: the counts are ints of 0 or more, ``max_dollars`` a
    finite amount of 0 or more (a ``Decimal``, an int, a float or a decimal string such as ``"2.50"``).
    Anything else raises :class:`~delite.errors.UsageError`.
    """

    max_dollars: Decimal | float | str | None = None
    max_llm_calls: int | None = None
    max_tokens: int | None = None
    max_tool_calls: int | None = None
    on_unknown_cost: UnknownCostPolicy = "suspend"

    def __post_init__(self) -> None:
        """Validate every limit (a bad budget fails here, not at the first model call)."""
        for name in _COUNTS:
            value = getattr(self, name)
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, int):
                raise UsageError(f"Budget({name}=...) must be an int of 0 or more, or None; got {_show(value)}")
            if value < 0:
                raise UsageError(f"Budget({name}=...) must be 0 or more; got {value}")
        if self.max_dollars is not None:
            _dollars(self.max_dollars)
        if self.on_unknown_cost not in ("suspend", "ignore"):
            got = _show(self.on_unknown_cost)
            raise UsageError(f"Budget(on_unknown_cost=...) must be 'suspend' or 'ignore'; got {got}")

    @property
    def dollars(self) -> Decimal | None:
        """``max_dollars`` as a ``Decimal``, or None."""
        return None if self.max_dollars is None else _dollars(self.max_dollars)

    def exhausted(self, totals: Totals) -> str | None:
        """The name of the first limit that stops the execution, or None (see :meth:`explain` for why)."""
        if self.max_llm_calls is not None and totals.llm_calls >= self.max_llm_calls:
            return "max_llm_calls"
        if self.max_tokens is not None and totals.total_tokens >= self.max_tokens:
            return "max_tokens"
        if self.max_tool_calls is not None and totals.tool_calls >= self.max_tool_calls:
            return "max_tool_calls"
        limit = self.dollars
        if limit is not None:
            if self.cost_unknown(totals) and self.on_unknown_cost == "suspend":
                return "max_dollars"
            if totals.cost >= limit:
                return "max_dollars"
        return None

    def cost_unknown(self, totals: Totals) -> bool:
        """Whether some call's cost is unknown, so a dollar limit cannot be enforced."""
        return not totals.cost_known and totals.llm_calls > 0

    def explain(self, limit: str, totals: Totals) -> str:
        """One line saying why ``limit`` stops the execution: reached, or (for dollars) unenforceable."""
        limit_dollars = self.dollars
        unenforceable = limit_dollars is not None and self.cost_unknown(totals) and totals.cost < limit_dollars
        if limit == "max_dollars" and unenforceable:
            known = f"${totals.cost} known so far" if totals.cost else "no cost known"
            return (
                "cost unknown: a model call's cost is unknown (its model is not in the price table, or the "
                f"provider reported no token usage), so max_dollars="
                f"{limit_dollars} cannot be enforced ({known}); on_unknown_cost='suspend' stops here. "
                "Price the model, or set on_unknown_cost='ignore' or max_dollars=None, then resume"
            )
        return f"budget limit {limit} reached"


def _dollars(value: Any) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, Decimal | int | float | str):
        got = _show(value)
        raise UsageError(f"Budget(max_dollars=...) must be an amount (a Decimal, int, float or str); got {got}")
    try:
        amount = value if isinstance(value, Decimal) else Decimal(str(value).strip())
    except InvalidOperation:
        raise UsageError(f"Budget(max_dollars=...) must be an amount like '2.50'; got {value!r}") from None
    if not amount.is_finite():
        raise UsageError(f"Budget(max_dollars=...) must be a finite amount; got {value!r}")
    if amount < 0:
        raise UsageError(f"Budget(max_dollars=...) must be 0 or more; got {value!r}")
    return amount


def _show(value: Any) -> str:
    text = repr(value)
    return f"{type(value).__name__} {text[:60]}"
