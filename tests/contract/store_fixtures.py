"""How the contract suites build each store: one fixture class per implementation, shared by every suite.

A new backend adds one class here (``make_store`` and ``second_handle``) and one subclass of each contract suite
with it (``class TestXLogStore(XStores, LogStoreContract)``). :class:`ListStore` is such a backend, written
against the public seam only.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import pytest

from delite.errors import (
    ClaimTimeoutError,
    ExecutionAlreadyClaimedError,
    ExecutionIdConflictError,
    ExecutionNotFoundError,
    UsageError,
)
from delite.log.records import AnyRecord, Record
from delite.store import (
    Deleted,
    ExecutionLog,
    FileStore,
    ListingQuery,
    MemoryStore,
    Page,
    RecordRange,
    Store,
    check_binding,
    check_deletable,
    check_force,
    check_ids,
    check_range,
    summarize,
    validate_execution_id,
)


class MemoryStores:
    """The memory store: a second handle is the same object (claims are per store)."""

    name = "memory"

    def make_store(self, tmp_path: Path) -> Store:
        return MemoryStore()

    def second_handle(self, store: Store, tmp_path: Path) -> Store:
        return store


class FileStores:
    """The file store: a second handle is another FileStore on the same directory (as another process has)."""

    name = "file"

    def make_store(self, tmp_path: Path) -> Store:
        return FileStore(tmp_path / "data")

    def second_handle(self, store: Store, tmp_path: Path) -> Store:
        assert isinstance(store, FileStore)
        return FileStore(store.layout.root)


class PostgresStores:
    """The PostgreSQL store on a fresh database of the session's throwaway server (skipped where none can run).

    A second handle is another PostgresStore on the same database (its own pool and claim connection, as another
    process has); every handle is closed after the test.
    """

    name = "postgres"

    @pytest.fixture(autouse=True)
    def _database(self, pg_schema_url: str) -> Iterator[None]:
        self.url = pg_schema_url
        self.handles: list[Store] = []
        yield
        for handle in self.handles:
            handle.close()

    def make_store(self, tmp_path: Path) -> Store:
        from delite.store._postgres import PostgresStore

        return PostgresStore(self.url)

    def second_handle(self, store: Store, tmp_path: Path) -> Store:
        from delite.store._postgres import PostgresStore

        handle = PostgresStore(self.url)
        self.handles.append(handle)
        return handle


class ListStore(Store):
    """A toy third backend: a dict of record lists, written against the public seam only (``delite.store``).

    It keeps records, not bytes (no offsets, no torn tails, no framing), so it proves that "adding a backend"
    as ``docs/architecture.md`` describes needs nothing else: both contract suites, an Agent, ``DataDir``, the
    CLI and Runtime recovery run on it unchanged.
    """

    def __init__(self) -> None:
        self.logs: dict[str, list[AnyRecord]] = {}
        self.claimed: set[str] = set()
        self.cancels: set[str] = set()
        self.keys: dict[str, tuple[str, str]] = {}
        self.lock = threading.Condition()

    def exists(self, execution_id: str) -> bool:
        return validate_execution_id(execution_id) in self.logs

    def list_ids(self) -> list[str]:
        with self.lock:
            return sorted(self.logs)

    def read(self, execution_id: str, *, after: int | None = None, limit: int | None = None) -> RecordRange:
        check_range(after, limit)
        validate_execution_id(execution_id)
        with self.lock:
            if execution_id not in self.logs:
                raise ExecutionNotFoundError(execution_id)
            records = list(self.logs[execution_id])
        start = after or 0
        stop = None if limit is None else start + limit
        return RecordRange(execution_id=execution_id, records=records[start:stop], after=start, head=len(records))

    def create(self, execution_id: str, records: Sequence[Record]) -> None:
        validate_execution_id(execution_id)
        if not records:
            raise UsageError("an execution is created with at least one record")
        with self.lock:
            if execution_id in self.logs:
                raise ExecutionIdConflictError(execution_id, "", "an execution with this id exists already")
            if execution_id in self.claimed:
                raise ExecutionAlreadyClaimedError(execution_id)
            self.logs[execution_id] = list(records)  # type: ignore[arg-type]

    def claim(self, execution_id: str, *, create: Sequence[Record] | None = None, timeout: float = 0.0) -> ExecutionLog:
        validate_execution_id(execution_id)
        deadline = time.monotonic() + timeout
        with self.lock:
            if create is None and execution_id not in self.logs:
                raise ExecutionNotFoundError(execution_id)
            while execution_id in self.claimed:
                remaining = deadline - time.monotonic()
                if timeout <= 0:
                    raise ExecutionAlreadyClaimedError(execution_id)
                if remaining <= 0:
                    raise ClaimTimeoutError(execution_id, timeout)
                self.lock.wait(remaining)
            self.claimed.add(execution_id)
            created = execution_id not in self.logs
            if created:
                assert create is not None
                self.logs[execution_id] = list(create)  # type: ignore[arg-type]
            return _ListLog(self, execution_id, list(self.logs[execution_id]), created=created)

    def rewrite(self, log: ExecutionLog, records: Sequence[Record]) -> None:
        """Replace every record of a claimed execution at once (what ``delite rekey`` needs of a store)."""
        if not isinstance(log, _ListLog) or log.store is not self or not records:
            raise UsageError("rewrite takes a live claim of this store and at least one record")
        with self.lock:
            self.logs[log.execution_id] = list(records)  # type: ignore[arg-type]
        log._head = len(records)

    def release(self, execution_id: str) -> None:
        with self.lock:
            self.claimed.discard(execution_id)
            self.lock.notify_all()

    def is_claimed(self, execution_id: str) -> bool:
        return validate_execution_id(execution_id) in self.claimed

    def query_executions(self, query: ListingQuery) -> Page:
        with self.lock:
            logs = {eid: list(records) for eid, records in self.logs.items()}
        return query.page(summarize(eid, records) for eid, records in logs.items())

    def request_cancel(self, execution_id: str) -> None:
        self.cancels.add(validate_execution_id(execution_id))

    def cancel_requested(self, execution_id: str) -> bool:
        return validate_execution_id(execution_id) in self.cancels

    def cancels_requested(self, execution_ids: Iterable[str]) -> set[str]:
        return self.cancels.intersection(check_ids(execution_ids))

    def clear_cancel(self, execution_id: str) -> None:
        self.cancels.discard(validate_execution_id(execution_id))

    def bind_key(self, key: str, execution_id: str, fingerprint: str) -> tuple[str, str]:
        check_binding(key, execution_id, fingerprint)
        with self.lock:
            return self.keys.setdefault(key, (execution_id, fingerprint))

    def lookup_key(self, key: str) -> tuple[str, str] | None:
        if not isinstance(key, str) or not key:
            raise UsageError(f"an idempotency key is a non-empty string, not {key!r}")
        return self.keys.get(key)

    def delete_execution(self, execution_id: str, *, force: bool = False) -> Deleted:
        validate_execution_id(execution_id)
        check_force(force)
        with self.lock:
            if execution_id not in self.logs:
                raise ExecutionNotFoundError(execution_id)
            status = summarize(execution_id, list(self.logs[execution_id])).status
            check_deletable(execution_id, status, claimed=execution_id in self.claimed, force=force)
            del self.logs[execution_id]
            self.cancels.discard(execution_id)
            for key in [k for k, (bound, _fp) in self.keys.items() if bound == execution_id]:
                del self.keys[key]
        return Deleted(id=execution_id, status=status)


class _ListLog(ExecutionLog):
    def __init__(self, store: ListStore, execution_id: str, records: list[AnyRecord], *, created: bool) -> None:
        self.store: ListStore | None = store
        self.execution_id = execution_id
        self.records = records
        self.created = created
        self._head = len(records)

    @property
    def head(self) -> int:
        return self._head

    def append(self, records: Sequence[Record], *, barrier: bool = False, expected: int | None = None) -> None:
        if self.store is None:
            raise UsageError(f"execution {self.execution_id!r} was released; claim it again to write")
        self._fence(expected)
        with self.store.lock:
            self.store.logs[self.execution_id].extend(records)  # type: ignore[arg-type]
        self._head += len(records)

    def release(self) -> None:
        store, self.store = self.store, None
        if store is not None:
            store.release(self.execution_id)


class ListStores:
    """The toy third backend: a second handle is the same object (claims are per store, as in memory)."""

    name = "list"

    def make_store(self, tmp_path: Path) -> Store:
        return ListStore()

    def second_handle(self, store: Store, tmp_path: Path) -> Store:
        return store
