"""The store interface: create, read, list and claim execution logs.

The engine only talks to these two classes, so a second backend (say, PostgreSQL for a fleet of workers)
is a new implementation of them, not a change to the engine. ``tests/contract`` runs one suite against
every implementation.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from types import TracebackType
from typing import Self

from delite.log.framing import TornTail
from delite.log.reader import LogContents
from delite.log.records import AnyRecord, Record
from delite.state.outcome import Outcome

__all__ = ["ExecutionLog", "Store"]


class ExecutionLog(abc.ABC):
    """A claimed execution: the records it had when claimed, and the sole right to append to it.

    Use as a context manager, or call :meth:`release`. The claim also ends if the process dies.
    """

    execution_id: str
    records: list[AnyRecord]
    torn: TornTail | None
    created: bool = False
    outcome: Outcome | None = None
    """The execution's outcome when the store kept one that matches the log exactly (see :meth:`save_outcome`).

    When it is set, a caller that needs no more than the outcome (a finished execution asked for again) can
    skip folding ``records``; a store may then decode ``records`` only when they are read.
    """

    @abc.abstractmethod
    def append(self, records: Sequence[Record], *, barrier: bool = False) -> None:
        """Append records atomically as one write; ``barrier`` marks a point that must be durable (see modes)."""

    @abc.abstractmethod
    def release(self) -> None:
        """Give up the claim (idempotent)."""

    def save_outcome(self, outcome: Outcome) -> None:  # noqa: B027 - optional hook, most stores keep nothing
        """Offer the outcome of the log as it is now (every append made) for the next claim to reuse.

        Derived data: a store may keep it, verified against the log, or ignore it (the default).
        """

    def __enter__(self) -> Self:
        """Hold the claim for the block."""
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        """Release the claim."""
        self.release()


class Store(abc.ABC):
    """Where execution logs live."""

    @abc.abstractmethod
    def exists(self, execution_id: str) -> bool:
        """Whether an execution with this id has a log."""

    @abc.abstractmethod
    def list_ids(self) -> list[str]:
        """Every execution id, sorted."""

    @abc.abstractmethod
    def read(self, execution_id: str) -> LogContents:
        """The execution's complete records, without claiming or repairing it.

        Raises:
            ExecutionNotFoundError: there is no such execution.
            LogCorruptError: a record before the tail is damaged.
        """

    @abc.abstractmethod
    def claim(self, execution_id: str, *, create: Sequence[Record] | None = None, timeout: float = 0.0) -> ExecutionLog:
        """Take the sole right to advance an execution, and read it (cutting off a torn tail).

        With ``create``, a missing execution is created holding those records (``created`` is then True); an
        existing one is claimed and read as usual, so two callers racing to create it both end up with it.

        Raises:
            ExecutionAlreadyClaimedError: another owner holds it and ``timeout`` is 0.
            ClaimTimeoutError: another owner held it for all of ``timeout`` seconds.
            ExecutionNotFoundError: no such execution (and no ``create``).
        """

    @abc.abstractmethod
    def is_claimed(self, execution_id: str) -> bool:
        """Whether a live owner holds the execution right now (a snapshot; it may change at once)."""

    @abc.abstractmethod
    def bind_key(self, key: str, execution_id: str, fingerprint: str) -> tuple[str, str]:
        """Bind a run-level idempotency key to an execution, once and for all.

        Returns the binding that holds, ``(execution_id, fingerprint)``: the one given if the key was new, the
        earlier one otherwise. Atomic across processes: of two callers racing with the same key, one wins and
        both get its binding.
        """

    @abc.abstractmethod
    def request_cancel(self, execution_id: str) -> None:
        """Ask whoever advances the execution to cancel it at its next step boundary."""

    @abc.abstractmethod
    def cancel_requested(self, execution_id: str) -> bool:
        """Whether a cancel was requested and not yet carried out."""

    @abc.abstractmethod
    def clear_cancel(self, execution_id: str) -> None:
        """Forget a cancel request once it is recorded in the log."""

    def close(self) -> None:  # noqa: B027 - optional hook, most stores hold nothing open
        """Release resources held by the store."""
