"""A store in memory: the same bytes and semantics as the file store, for tests and throw-away runs."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence

from delite.errors import ClaimTimeoutError, ExecutionAlreadyClaimedError, ExecutionNotFoundError, UsageError
from delite.log.codec import encode_record
from delite.log.framing import HEADER, encode_frame
from delite.log.reader import LogContents, parse_log
from delite.log.records import AnyRecord, Record
from delite.store.base import ExecutionLog, Store
from delite.store.ids import validate_execution_id

__all__ = ["MemoryStore"]


class _MemoryLog(ExecutionLog):
    def __init__(self, store: MemoryStore, execution_id: str, records: list[AnyRecord]) -> None:
        self.execution_id = execution_id
        self.records = records
        self.torn = None
        self._store: MemoryStore | None = store

    def append(self, records: Sequence[Record], *, barrier: bool = False) -> None:  # noqa: ARG002 - no disk
        store = self._store
        if store is None:
            raise UsageError(f"execution {self.execution_id!r} was released; claim it again to write")
        data = b"".join(encode_frame(encode_record(r)) for r in records)
        store.logs[self.execution_id] += data

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

    def exists(self, execution_id: str) -> bool:
        """Whether the execution exists."""
        return validate_execution_id(execution_id) in self.logs

    def list_ids(self) -> list[str]:
        """Every execution id, sorted."""
        return sorted(self.logs)

    def read(self, execution_id: str) -> LogContents:
        """Parse the execution's bytes."""
        validate_execution_id(execution_id)
        try:
            data = bytes(self.logs[execution_id])
        except KeyError:
            raise ExecutionNotFoundError(execution_id) from None
        return parse_log(data, path=f"memory:{execution_id}")

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
            contents = self.read(execution_id)
            del self.logs[execution_id][contents.end :]
            log = _MemoryLog(self, execution_id, contents.records)
            log.torn = contents.torn
        except BaseException:
            self._release(execution_id)
            raise
        return log

    def _release(self, execution_id: str) -> None:
        with self._cond:
            self._claimed.discard(execution_id)
            self._cond.notify_all()

    def is_claimed(self, execution_id: str) -> bool:
        """Whether the claim is held."""
        return execution_id in self._claimed

    def bind_key(self, key: str, execution_id: str, fingerprint: str) -> tuple[str, str]:
        """Bind the key unless it is bound already; return the binding that holds."""
        with self._cond:
            return self._keys.setdefault(key, (execution_id, fingerprint))

    def request_cancel(self, execution_id: str) -> None:
        """Mark the execution for cancellation."""
        self._cancels.add(validate_execution_id(execution_id))

    def cancel_requested(self, execution_id: str) -> bool:
        """Whether a cancel is pending."""
        return execution_id in self._cancels

    def clear_cancel(self, execution_id: str) -> None:
        """Forget the cancel request."""
        self._cancels.discard(execution_id)
