"""What ``Agent.run`` and friends return."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from delite.log.records import SuspendReason, Usage
from delite.state.model import ExecutionState, Status
from delite.state.outcome import Outcome, outcome

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
        return cls.from_outcome(outcome(state))

    @classmethod
    def from_outcome(cls, o: Outcome) -> Response:
        """Describe an execution's outcome (what :func:`~delite.state.outcome.outcome` keeps of its state)."""
        error = None
        if o.status is Status.FAILED:
            error = f"{o.error_type}: {o.error_message}"
        return cls(
            execution_id=o.execution_id,
            status=o.status,
            answer=o.answer,
            suspend_reason=o.suspend_reason,
            usage=o.usage,
            steps=o.steps,
            output=o.output,
            error=error,
        )
