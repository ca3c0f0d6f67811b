"""What ``Agent.run`` and friends return."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from delite.log.records import SuspendReason, Usage
from delite.state.model import ExecutionState, Status

__all__ = ["Response"]


@dataclass(frozen=True)
class Response:
    """The outcome of advancing an execution: its answer, or why it stopped.

    ``str(response)`` is the answer (empty while there is none).
    """

    execution_id: str
    status: Status
    answer: str | None
    suspend_reason: SuspendReason | None
    usage: Usage
    steps: int
    output: Any = None
    error: str | None = None

    @property
    def is_suspended(self) -> bool:
        """Stopped on purpose, waiting for something outside the process (see ``suspend_reason``)."""
        return self.status.is_suspended

    @property
    def is_complete(self) -> bool:
        """Finished with an answer."""
        return self.status is Status.COMPLETED

    def __str__(self) -> str:
        """The answer, or an empty string."""
        return self.answer or ""

    @classmethod
    def from_state(cls, state: ExecutionState) -> Response:
        """Describe an execution's folded state."""
        t = state.totals
        usage = Usage(
            input_tokens=t.input_tokens,
            output_tokens=t.output_tokens,
            cached_input_tokens=t.cached_input_tokens,
            cache_write_tokens=t.cache_write_tokens,
            reasoning_tokens=t.reasoning_tokens,
            cost=str(t.cost) if t.cost_known else None,
            known=t.usage_known,
        )
        error = None
        if state.status is Status.FAILED:
            error = f"{state.error_type}: {state.error_message}"
        return cls(
            execution_id=state.execution_id,
            status=state.status,
            answer=state.answer,
            suspend_reason=state.suspend_reason,
            usage=usage,
            steps=state.steps,
            output=state.output,
            error=error,
        )
