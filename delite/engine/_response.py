"""What ``Agent.run`` and friends return.

A :class:`Response` is generic in its structured output: ``agent.run(..., output_type=Quote)`` returns a
``Response[Quote]`` whose ``output`` is a ``Quote`` once complete; a plain run's is ``Response[Any]``.

Every response an agent returns is one of two kinds, so a type checker can follow a check of
``is_suspended``: a :class:`SuspendedResponse` (``is_suspended`` is ``True`` and ``suspend_reason`` is a
:class:`~delite.SuspendReason`) or a :class:`NotSuspendedResponse` (``False`` and ``None``). The seed's
one-liner needs no assert::

    r = agent.run("Refund order 1")
    if r.is_suspended:  # mypy narrows r here; with pyright write `if r.suspend_reason:` (it narrows both)
        agent.approve(r.execution_id, r.suspend_reason.confirmation_id)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Generic, Literal, TypeAlias

from typing_extensions import TypeVar

from delite.log.records import SuspendReason, Usage
from delite.state._model import ExecutionState, Status
from delite.state._outcome import Outcome, outcome

__all__ = ["AnyResponse", "NotSuspendedResponse", "Response", "SuspendedResponse"]

OutT = TypeVar("OutT", default=Any)
"""The type of a response's structured output (``Any`` for a plain run)."""


@dataclass(frozen=True)
class Response(Generic[OutT]):
    """The outcome of advancing an execution: its answer, or why it stopped.

    ``str(response)`` is the answer (while there is none, the status in brackets and why). ``output`` is the
    structured answer of a run with an ``output_type`` (None until it completes). The agent's methods return
    one of the two subclasses, :class:`SuspendedResponse` or :class:`NotSuspendedResponse` (see
    :data:`AnyResponse`).
    """

    execution_id: str
    status: Status
    answer: str | None
    suspend_reason: SuspendReason | None
    usage: Usage
    steps: int
    output: OutT | None = None
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
        """The answer; while there is none, the status in brackets and why (``[waiting_approval] approval: ...``).

        So ``print(response)`` never prints an empty line for a run that stopped without an answer.
        """
        if self.answer is not None:
            return self.answer
        why = self.suspend_reason or self.error
        return f"[{self.status.value}] {why}" if why else f"[{self.status.value}]"

    @classmethod
    def from_state(cls, state: ExecutionState) -> AnyResponse:
        """Describe an execution's folded state."""
        return cls.from_outcome(outcome(state))

    @classmethod
    def from_outcome(cls, o: Outcome) -> AnyResponse:
        """Describe an execution's outcome (what :func:`~delite.state._outcome.outcome` keeps of its state)."""
        error = None
        if o.status is Status.FAILED:
            error = f"{o.error_type}: {o.error_message}"
        return _make(
            execution_id=o.execution_id,
            status=o.status,
            answer=o.answer,
            suspend_reason=o.suspend_reason,
            usage=o.usage,
            steps=o.steps,
            output=o.output,
            error=error,
        )


@dataclass(frozen=True)
class SuspendedResponse(Response[OutT]):
    """A response of a suspended execution: ``is_suspended`` is ``True`` and ``suspend_reason`` is set."""

    suspend_reason: SuspendReason

    @property
    def is_suspended(self) -> Literal[True]:
        """Always True: the execution waits for an approval, a client tool, a human's answer..."""
        return True


@dataclass(frozen=True)
class NotSuspendedResponse(Response[OutT]):
    """A response of an execution that is not suspended (complete, failed, cancelled or still running)."""

    suspend_reason: None

    @property
    def is_suspended(self) -> Literal[False]:
        """Always False: nothing waits for an answer."""
        return False


AnyResponse: TypeAlias = SuspendedResponse[OutT] | NotSuspendedResponse[OutT]
"""What the agent's methods return: a suspended response or not; checking ``is_suspended`` tells which."""


def settled(response: Response[OutT]) -> AnyResponse[OutT]:
    """``response`` as one of the two kinds (a plain :class:`Response` built by hand is rebuilt as one)."""
    if isinstance(response, SuspendedResponse | NotSuspendedResponse):
        return response
    return _make(
        execution_id=response.execution_id,
        status=response.status,
        answer=response.answer,
        suspend_reason=response.suspend_reason,
        usage=response.usage,
        steps=response.steps,
        output=response.output,
        error=response.error,
    )


def _make(*, status: Status, suspend_reason: SuspendReason | None, **fields: Any) -> AnyResponse:
    if status.is_suspended and suspend_reason is not None:
        return SuspendedResponse(status=status, suspend_reason=suspend_reason, **fields)
    return NotSuspendedResponse(status=status, suspend_reason=None, **fields)
