"""A store in memory: the same bytes and semantics as the file store, for tests and throw-away runs."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Sequence

from delite.errors import (
    ClaimTimeoutError,
    ExecutionAlreadyClaimedError,
    ExecutionIdConflictError,
    ExecutionNotFoundError,
    UsageError,
)
from delite.log._codec import encode_record
from delite.log._framing import HEADER, TornTail, encode_frame
from delite.log._reader import LogContents, parse_log
from delite.log.records import AnyRecord, Record
from delite.store._base import ExecutionLog, Store, decode_stored
from delite.store._derive import summary_of_log
from delite.store._erase import Deleted, check_deletable, check_force
from delite.store._ids import validate_execution_id
from delite.store._logfile import check_identity
from delite.store._query import ListingQuery, check_binding, check_ids, check_key
from delite.store._records import FramedRange, StoredPayload, check_range, frame_payloads, framed_range, stored_payloads
from delite.store._views import ExecutionSummary, Page

__all__ = ["MemoryStore"]


class _MemoryLog(ExecutionLog):
    torn: TornTail | None  # the memory store keeps framed bytes too, so a torn tail can be cut off

    def __init__(self, store: MemoryStore, execution_id: str, records: list[AnyRecord]) -> None:
        self.execution_id = execution_id
        self.records = records
        self.torn = None
        self._store: MemoryStore | None = store
        self._head = len(records)

    @property
    def head(self) -> int:
        """The sequence of the last record: those read at the claim plus those appended since."""
        return self._head

    def waits(self, *, barrier: bool) -> bool:
        """False: an append only adds bytes in memory."""
        del barrier
        return False

    def append(
        self,
        records: Sequence[Record],
        *,
        barrier: bool = False,  # noqa: ARG002 - no disk
        expected: int | None = None,
    ) -> None:
        """Append the records' frames (fenced by ``expected``, see :meth:`ExecutionLog.append`)."""
        store = self._store
        if store is None:
            raise UsageError(f"execution {self.execution_id!r} was released; claim it again to write")
        self._fence(expected)
        data = b"".join(encode_frame(encode_record(r)) for r in records)
        store.logs[self.execution_id] += data
        self._head += len(records)

    def release(self) -> None:
        store, self._store = self._store, None
        if store is not None:
            store._release(self.execution_id)  # noqa: SLF001 - the store's own claim table


class MemoryStore(Store):
    """Logs held as bytes in a dict; claims are per-store, not per-process. Nothing survives the process."""

    def __init__(self) -> None:
        """An empty store."""
        self.logs: dict[str, bytearray] = {}
        self._claimed: set[str] = set()
        self._cancels: set[str] = set()
        self._keys: dict[str, tuple[str, str]] = {}
        self._cond = threading.Condition()
        self._summaries: dict[str, tuple[bytes, ExecutionSummary]] = {}

    def __repr__(self) -> str:
        """How many executions it holds (the CLI names a store this way)."""
        return f"MemoryStore({len(self.logs)} executions)"

    def exists(self, execution_id: str) -> bool:
        """Whether the execution exists."""
        return validate_execution_id(execution_id) in self.logs

    def list_ids(self) -> list[str]:
        """Every execution id, sorted."""
        return sorted(self.logs)

    def read(self, execution_id: str, *, after: int | None = None, limit: int | None = None) -> FramedRange:
        """Parse the execution's bytes; the records after sequence ``after``, at most ``limit`` of them."""
        check_range(after, limit)
        return framed_range(execution_id, self._contents(execution_id), after=after, limit=limit)

    def _contents(self, execution_id: str) -> LogContents:
        validate_execution_id(execution_id)
        try:
            data = bytes(self.logs[execution_id])
        except KeyError:
            raise ExecutionNotFoundError(execution_id) from None
        return parse_log(data, path=f"memory:{execution_id}")

    def create(self, execution_id: str, records: Sequence[Record]) -> None:
        """Create an execution holding ``records`` in one step (see :meth:`LogStore.create`)."""
        validate_execution_id(execution_id)
        if not records:
            raise UsageError(f"execution {execution_id!r} must be created with at least one record")
        data = HEADER + b"".join(encode_frame(encode_record(r)) for r in records)  # encoded before anything changes
        self._install(execution_id, data)

    def read_payloads(self, execution_id: str) -> list[StoredPayload]:
        """The execution's complete records as the exact payload bytes it holds, with their CRC-32."""
        validate_execution_id(execution_id)
        try:
            data = bytes(self.logs[execution_id])
        except KeyError:
            raise ExecutionNotFoundError(execution_id) from None
        return stored_payloads(data, path=f"memory:{execution_id}")[1]

    def create_payloads(self, execution_id: str, payloads: Sequence[StoredPayload]) -> None:
        """Create an execution holding these exact payloads, verified first (see :meth:`LogStore.create_payloads`)."""
        validate_execution_id(execution_id)
        records = decode_stored(execution_id, payloads)
        if not records:
            raise UsageError(f"execution {execution_id!r} must be created with at least one record")
        check_identity(execution_id, f"memory:{execution_id}", records)
        data = HEADER + frame_payloads(payloads)
        self._install(execution_id, data)

    def _install(self, execution_id: str, data: bytes) -> None:
        """Add a new execution's whole log, unless the id is taken or claimed (``create``, ``create_payloads``)."""
        with self._cond:
            if execution_id in self.logs:
                detail = "an execution with this id exists already; choose another id"
                raise ExecutionIdConflictError(execution_id, "", detail)
            if execution_id in self._claimed:
                raise ExecutionAlreadyClaimedError(execution_id)
            self.logs[execution_id] = bytearray(data)

    def claim(self, execution_id: str, *, create: Sequence[Record] | None = None, timeout: float = 0.0) -> ExecutionLog:
        """Take the claim, then read (or create) the execution."""
        validate_execution_id(execution_id)
        if create is None and execution_id not in self.logs:
            raise ExecutionNotFoundError(execution_id)
        deadline = time.monotonic() + timeout
        with self._cond:
            while execution_id in self._claimed:
                remaining = deadline - time.monotonic()
                if timeout <= 0:
                    raise ExecutionAlreadyClaimedError(execution_id)
                if remaining <= 0:
                    raise ClaimTimeoutError(execution_id, timeout)
                self._cond.wait(remaining)
            self._claimed.add(execution_id)
        try:
            if create is not None and execution_id not in self.logs:
                self.logs[execution_id] = bytearray(HEADER)
                log = _MemoryLog(self, execution_id, [])
                log.append(create)
                log.records = list(create)  # type: ignore[arg-type]
                log.created = True
                return log
            contents = self._contents(execution_id)
            del self.logs[execution_id][contents.end :]
            log = _MemoryLog(self, execution_id, contents.records)
            log.torn = contents.torn
        except BaseException:
            self._release(execution_id)
            raise
        return log

    def rewrite(self, log: ExecutionLog, records: Sequence[Record]) -> None:
        """Replace every record of an execution ``log`` holds the claim of, in one step (``delite rekey``).

        Raises:
            UsageError: ``log`` is not a live claim of this store, or ``records`` is empty.
        """
        if not isinstance(log, _MemoryLog) or log._store is not self:  # noqa: SLF001 - this store's own log
            raise UsageError("rewrite takes a live claim of this store")
        if not records:
            raise UsageError(f"execution {log.execution_id!r} must keep at least one record")
        data = HEADER + b"".join(encode_frame(encode_record(r)) for r in records)  # encoded before anything changes
        with self._cond:
            self.logs[log.execution_id] = bytearray(data)
        log._head = len(records)  # noqa: SLF001

    def _release(self, execution_id: str) -> None:
        with self._cond:
            self._claimed.discard(execution_id)
            self._cond.notify_all()

    def is_claimed(self, execution_id: str) -> bool:
        """Whether the claim is held."""
        return validate_execution_id(execution_id) in self._claimed

    def bind_key(self, key: str, execution_id: str, fingerprint: str) -> tuple[str, str]:
        """Bind the key unless it is bound already; return the binding that holds."""
        check_binding(key, execution_id, fingerprint)
        with self._cond:
            return self._keys.setdefault(key, (execution_id, fingerprint))

    def lookup_key(self, key: str) -> tuple[str, str] | None:
        """The key's binding, if it is bound."""
        check_key(key)
        with self._cond:
            return self._keys.get(key)

    def request_cancel(self, execution_id: str) -> None:
        """Mark the execution for cancellation."""
        self._cancels.add(validate_execution_id(execution_id))

    def cancel_requested(self, execution_id: str) -> bool:
        """Whether a cancel is pending."""
        return validate_execution_id(execution_id) in self._cancels

    def cancels_requested(self, execution_ids: Iterable[str]) -> set[str]:
        """Which of these have a cancel pending (one set intersection)."""
        return self._cancels.intersection(check_ids(execution_ids))

    def clear_cancel(self, execution_id: str) -> None:
        """Forget the cancel request."""
        self._cancels.discard(validate_execution_id(execution_id))

    def delete_execution(self, execution_id: str, *, force: bool = False) -> Deleted:
        """Remove the execution, its summary, the keys bound to it and its cancel request, in one step.

        See :meth:`Store.delete_execution`; the bytes freed are those of its log.
        """
        validate_execution_id(execution_id)
        check_force(force)
        with self._cond:
            if execution_id not in self.logs:
                raise ExecutionNotFoundError(execution_id)
            status = self._summary(execution_id).status
            check_deletable(execution_id, status, claimed=execution_id in self._claimed, force=force)
            size = len(self.logs.pop(execution_id))
            self._summaries.pop(execution_id, None)
            self._cancels.discard(execution_id)
            for key in [k for k, (bound, _fp) in self._keys.items() if bound == execution_id]:
                del self._keys[key]
        return Deleted(id=execution_id, status=status, bytes=size)

    # -- queries -------------------------------------------------------------------------------------------------

    def _summary(self, execution_id: str) -> ExecutionSummary:
        """The execution's summary as a listing shows it (derived from its records, kept until they change)."""
        validate_execution_id(execution_id)
        try:
            data = bytes(self.logs[execution_id])
        except KeyError:
            raise ExecutionNotFoundError(execution_id) from None
        kept = self._summaries.get(execution_id)
        if kept is not None and kept[0] == data:
            return kept[1]
        summary = summary_of_log(execution_id, data, path=f"memory:{execution_id}")
        self._summaries[execution_id] = (data, summary)
        return summary

    def query_executions(self, query: ListingQuery) -> Page:
        """Filter every execution's summary in memory, newest first."""
        return query.page(self._summary(eid) for eid in list(self.logs))
