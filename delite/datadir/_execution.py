"""One execution, read from its log at one moment: every view of it, derived on first use."""

from __future__ import annotations

from functools import cached_property

from delite._version import __version__
from delite.log.records import AnyRecord
from delite.state._model import ExecutionState
from delite.store._derive import Derived
from delite.store._records import FramedRange, RecordRange
from delite.store._views import Event, ExecutionDetail, Export, LlmCall, Pause, Step, ToolCall

__all__ = ["ExecutionView"]


class ExecutionView:
    """A read-only view of one execution's log as it was when read (see :meth:`delite.DataDir.execution`).

    Reading never claims or repairs the log, so it is safe while another process advances the execution;
    read again to see newer records. Built from one read of the store (:meth:`delite.store.LogStore.read`):
    byte offsets, the log's size and its torn tail are known only when the store keeps framed bytes.
    """

    def __init__(self, read: RecordRange, *, path: str = "") -> None:
        """Wrap a whole read of one execution (``path``: where its log is, for messages)."""
        self.execution_id = read.execution_id
        self.path = path
        self.read = read

    @property
    def records(self) -> list[AnyRecord]:
        """The raw records, in log order (a torn tail left out)."""
        return self.read.records

    @property
    def offsets(self) -> list[int] | None:
        """The byte offset of each record in the log file, or None when the store keeps no bytes."""
        return self.read.offsets if isinstance(self.read, FramedRange) else None

    @cached_property
    def _derived(self) -> Derived:
        r = self.read
        framed = r if isinstance(r, FramedRange) else None
        size, torn = (framed.size, framed.torn) if framed is not None else (0, None)
        return Derived(self.execution_id, r.records, self.offsets, log_bytes=size, torn=torn, path=self.path)

    @property
    def state(self) -> ExecutionState:
        """The folded state, as the engine sees it.

        Raises:
            LogCorruptError: a record does not fold (this and every derived view below).
        """
        return self._derived.state

    @property
    def detail(self) -> ExecutionDetail:
        """The summary, configuration, pending calls, time spent and last error."""
        return self._derived.detail

    @property
    def steps(self) -> list[Step]:
        """One entry per completed model call, with the tool calls it asked for."""
        return self._derived.steps

    @property
    def llm_calls(self) -> list[LlmCall]:
        """Every model call attempt, failed ones included, in order."""
        return self._derived.llm_calls

    @property
    def tool_calls(self) -> list[ToolCall]:
        """Every tool call the model asked for, in order."""
        return self._derived.tool_calls

    @property
    def pauses(self) -> list[Pause]:
        """Every suspension and when it ended."""
        return self._derived.pauses

    @cached_property
    def events(self) -> list[Event]:
        """Every record decoded, with its sequence number and byte offset (None when the store keeps no bytes)."""
        return self._derived.events()

    def export(self) -> Export:
        """The whole execution in the export format (``docs/export-format.md``)."""
        return Export(
            delite_version=__version__,
            execution=self.detail,
            steps=self.steps,
            llm_calls=self.llm_calls,
            tool_calls=self.tool_calls,
            pauses=self.pauses,
            events=self.events,
        )
