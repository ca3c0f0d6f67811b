"""The PostgreSQL store: :class:`PostgresStore` (a :class:`~delite.store.Store`) and its claimed log.

Same records as the file store: each row of ``records`` holds a record's payload bytes exactly as the file
store frames them (:func:`~delite.log._codec.encode_record`) and ``zlib.crc32`` of them; every read verifies
the checksum and the sequence numbers. Data goes through a pool of connections (``prepare_threshold=None``, so
a statement pooler in front of them does no harm); claims through one dedicated connection per store object
(:mod:`._claims`).

An append is one statement: it moves the execution's head ``WHERE head_seq = <the claim's head> AND
owner_epoch = <the claim's epoch>`` and inserts the records only if that row moved. The epoch is bumped by
every claim, so a writer whose claim was lost (its connection dropped by a partition, a pause, a database
restart) and taken over can never append again: it gets :class:`~delite.errors.ClaimLostError`, and nothing
is written. The same statement keeps the ``status``, ``advanceable`` and ``dormant`` columns exact (the claim
folds its records once and each appended record into that state), which is what finding work reads.

Durability: ``full`` (the default) commits every append synchronously; ``normal`` commits appends that are
not barriers with ``synchronous_commit = off`` (a database crash can lose the last of them, as a power loss
can lose the file store's unsynced writes; barriers, creations and answers are synchronous); ``off`` does so
for every append. A process crash loses nothing in any mode.
"""

from __future__ import annotations

import contextlib
import threading
import time
import weakref
import zlib
from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar

import msgspec
import psycopg
import psycopg_pool

from delite.errors import (
    ClaimLostError,
    ClaimTimeoutError,
    ExecutionAlreadyClaimedError,
    ExecutionIdConflictError,
    ExecutionNotFoundError,
    LogCorruptError,
    StoreError,
    UnsupportedFormatError,
    UsageError,
)
from delite.log._durability import Durability
from delite.log._shell import unsealed_shell
from delite.log.records import ExecutionStarted, Record
from delite.state._model import ExecutionState
from delite.state._ready import advanceable
from delite.store._base import ExecutionLog, Store, decode_stored
from delite.store._derive import summarize, unreadable
from delite.store._erase import Deleted, check_deletable, check_force
from delite.store._ids import validate_execution_id
from delite.store._postgres._claims import ClaimConnection, lock_key
from delite.store._postgres._connect import connect_error, redact, split_url
from delite.store._postgres._listen import CHANNEL, Listener
from delite.store._postgres._log import APPEND, PostgresExecutionLog
from delite.store._postgres._rows import (
    column_text,
    encoded,
    fold_or_none,
    from_column,
    log_columns,
    verify,
    where_record,
    within_limit,
)
from delite.store._postgres._schema import ensure_schema
from delite.store._query import ListingQuery, check_agents, check_binding, check_ids, check_key, check_listing
from delite.store._records import RecordRange, StoredPayload, check_range
from delite.store._views import ExecutionSummary, Page

__all__ = ["PostgresExecutionLog", "PostgresStore"]

T = TypeVar("T")
Conn = psycopg.Connection[tuple[Any, ...]]

_summary_decoder = msgspec.json.Decoder(ExecutionSummary)
_encode = msgspec.json.encode
_CHUNK = 200  # executions whose summaries are recomputed per query

_INSERT_EXECUTION = """INSERT INTO executions (id, lock_key, agent_id, status, advanceable, dormant, parent_id,
    forked_from, created_at, updated_at, head_seq, owner_epoch)
VALUES (%(id)s, %(key)s, %(agent)s, %(status)s, %(adv)s, %(dormant)s, %(parent)s, %(forked)s, %(created)s,
    %(updated)s, %(head)s, %(epoch)s)
ON CONFLICT (id) DO NOTHING RETURNING id"""

_INSERT_RECORDS = """INSERT INTO records (execution_id, seq, payload, crc)
SELECT %(id)s, r.seq, r.payload, r.crc
FROM unnest(%(seqs)s::bigint[], %(payloads)s::bytea[], %(crcs)s::bigint[]) AS r(seq, payload, crc)"""

_READ = """SELECT e.head_seq, r.seq, r.payload, r.crc
FROM executions e
LEFT JOIN LATERAL (
    SELECT seq, payload, crc FROM records
    WHERE execution_id = e.id AND seq > %(after)s AND seq <= e.head_seq
    ORDER BY seq LIMIT %(limit)s
) r ON true
WHERE e.id = %(id)s
ORDER BY r.seq"""

_HELD_LOCKS = """SELECT ((l.classid::bigint << 32) | l.objid::bigint) AS k FROM pg_locks l
    WHERE l.locktype = 'advisory' AND l.objsubid = 1
      AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())"""

_WORK = (  # constant SQL: every value is a parameter
    "WITH held AS MATERIALIZED ("  # noqa: S608
    + _HELD_LOCKS
    + """)
SELECT e.id, e.head_seq, e.summary, e.summary_head FROM executions e
WHERE e.advanceable AND {scope}
  AND (%(agents)s::text[] IS NULL OR e.agent_id = ANY(%(agents)s::text[]))
  AND NOT EXISTS (SELECT 1 FROM held WHERE held.k = e.lock_key)
ORDER BY e.created_at, e.id
LIMIT %(limit)s"""
)

_REWRITE = """UPDATE records AS r SET payload = v.payload, crc = v.crc
FROM unnest(%(seqs)s::bigint[], %(payloads)s::bytea[], %(crcs)s::bigint[]) AS v(seq, payload, crc)
WHERE r.execution_id = %(id)s AND r.seq = v.seq
  AND EXISTS (SELECT 1 FROM executions e WHERE e.id = %(id)s AND e.owner_epoch = %(epoch)s AND e.head_seq = %(head)s)"""

_IS_CLAIMED = "SELECT EXISTS (" + _HELD_LOCKS + " AND ((l.classid::bigint << 32) | l.objid::bigint) = %s)"


class _Pending:
    """A claim being taken by a thread of this store (the id is reserved, the lock not yet won)."""


class PostgresStore(Store):
    """Execution logs in PostgreSQL, shared by every process and host that opens the same database.

    ``url`` is a ``postgresql://`` (or ``postgres://``) URL. The schema is created on first use (and migrated
    when this code knows newer steps; a newer schema is refused). Claims are held on one dedicated connection
    per store object with TCP keepalives: ``keepalives_idle``, ``keepalives_interval``, ``keepalives_count``
    (seconds, probes) and ``tcp_user_timeout`` (milliseconds) default to 5, 2, 3 and 15000, and may also be
    given as the URL's query parameters of the same names. ``pool_size`` caps the data connections.

    Raises:
        UsageError: the URL or a setting is not valid.
        StoreError: the database could not be reached.
        UnsupportedPoolerError: a transaction-mode pooler sits in front of the database.
        SchemaTooNewError: a newer delite migrated the database.
    """

    def __init__(
        self,
        url: str,
        *,
        durability: Durability | str = Durability.FULL,
        pool_size: int = 8,
        keepalives_idle: int | None = None,
        keepalives_interval: int | None = None,
        keepalives_count: int | None = None,
        tcp_user_timeout: int | None = None,
    ) -> None:
        """Connect (a pool for data, one connection for claims), check the claim connection, make the schema."""
        try:
            self.durability = Durability(durability)
        except ValueError:
            choices = ", ".join(repr(d.value) for d in Durability)
            raise UsageError(f"durability must be one of {choices}, not {durability!r:.80}") from None
        if isinstance(pool_size, bool) or not isinstance(pool_size, int) or pool_size < 1:
            raise UsageError(f"pool_size must be a whole number, 1 or more, not {pool_size!r}")
        params, keep = split_url(
            url,
            keepalives_idle=keepalives_idle,
            keepalives_interval=keepalives_interval,
            keepalives_count=keepalives_count,
            tcp_user_timeout=tcp_user_timeout,
        )
        self.where = redact(params)
        self.keepalives = keep
        self._params = params
        self._cv = threading.Condition()
        self._held: dict[str, tuple[int, PostgresExecutionLog | _Pending]] = {}
        self._closed = False
        self._claim_generation = 1
        self._pool = psycopg_pool.ConnectionPool(
            "",
            kwargs={**params, **keep.libpq(), "autocommit": True, "prepare_threshold": None},
            min_size=1,
            max_size=pool_size,
            open=False,
            name="delite",
        )
        self._listener = Listener({**params, **keep.libpq()})
        self._open = _Connections(self._pool, self._listener)
        # A store nobody closed (an Agent given a URL and dropped) closes its connections when it is collected.
        weakref.finalize(self, self._open.close)
        try:
            self._claims = ClaimConnection(self._params, self.keepalives, self.where)  # fails fast if unreachable
            self._pool.open(wait=True, timeout=30.0)
            with self._pool.connection() as probe:
                self._claims.check_session(probe)
            self._with_conn(lambda conn: ensure_schema(conn, self.where), action="create the schema", retry=False)
        except psycopg_pool.PoolTimeout as e:
            self.close()
            raise connect_error("connect to PostgreSQL", self.where, e) from e
        except BaseException:
            self.close()
            raise

    def __repr__(self) -> str:
        """The database (never the password)."""
        return f"PostgresStore({self.where!r})"

    # -- connections ----------------------------------------------------------------------------------------

    def _open_claims(self) -> ClaimConnection:
        claims = ClaimConnection(self._params, self.keepalives, self.where)
        try:
            with self._pool.connection() as other:
                claims.check_session(other)
        except BaseException:
            claims.close()
            raise
        return claims

    def _claim_connection(self) -> ClaimConnection:
        """The claim connection, reopened if it died (every claim held on the old one is lost).

        Raises:
            StoreError: it died and cannot be reopened now (the database is down); the next call tries again.
        """
        claims = self._claims
        if claims is None or self._closed:
            raise UsageError(f"the store {self.where} is closed")
        if not claims.alive():
            with self._cv:
                if self._claims is claims:
                    claims.close()
                    self._claims = self._open_claims()  # on failure the dead one stays, to be reopened later
                    self._claim_generation += 1
                claims = self._claims
                if claims is None:
                    raise UsageError(f"the store {self.where} is closed")
        return claims

    def _claim_alive(self, generation: int) -> bool:
        """Whether a claim taken on connection ``generation`` can still be held (that connection is alive)."""
        claims = self._claims
        return claims is not None and generation == self._claim_generation and claims.alive()

    def _with_conn(self, fn: Callable[[Conn], T], *, action: str, retry: bool = True) -> T:
        """Run ``fn`` on a pooled connection; a lost connection is retried once when ``retry`` (reads)."""
        if self._closed:
            raise UsageError(f"the store {self.where} is closed")
        for attempt in (1, 2):
            try:
                with self._pool.connection() as conn:
                    return fn(conn)
            except psycopg.OperationalError as e:
                with contextlib.suppress(psycopg.Error, psycopg_pool.PoolTimeout):
                    self._pool.check()  # drop every broken idle connection (a database restart breaks them all)
                if retry and attempt == 1:
                    # The other idle connections may have died with this one (a restart, a partition): drop them.
                    with contextlib.suppress(psycopg_pool.PoolTimeout, psycopg.Error):
                        self._pool.check()
                    continue
                raise connect_error(action, self.where, e) from e
            except psycopg.Error as e:
                raise connect_error(action, self.where, e) from e
            except psycopg_pool.PoolTimeout as e:
                raise connect_error(action, self.where, e) from e
        raise StoreError(f"could not {action}", self.where)  # pragma: no cover - the loop returns or raises

    def _fetchone(self, query: str, params: Any) -> tuple[Any, ...] | None:
        return self._with_conn(lambda c: c.execute(query, params).fetchone(), action="read from PostgreSQL")

    def _fetchall(self, query: str, params: Any) -> list[tuple[Any, ...]]:
        return self._with_conn(lambda c: c.execute(query, params).fetchall(), action="read from PostgreSQL")

    def _notify(self, execution_id: str) -> None:
        """Tell the listening workers that this execution may be advanced (best effort: they also poll)."""
        with contextlib.suppress(StoreError):
            self._with_conn(
                lambda c: c.execute("SELECT pg_notify(%s, %s)", (CHANNEL, execution_id)),
                action="notify the workers",
                retry=False,
            )

    def _append(self, params: dict[str, Any], *, sync: bool, notify: bool) -> int:
        """Run the fenced append; how many records it wrote (0: the fence held it back)."""

        def run(conn: Conn) -> int:
            if sync and not notify:
                return conn.execute(APPEND, params).rowcount  # one statement, one round trip
            with conn.pipeline(), conn.transaction():
                if not sync:
                    conn.execute("SET LOCAL synchronous_commit = off")
                cur = conn.execute(APPEND, params)
                if notify:
                    conn.execute("SELECT pg_notify(%s, %s)", (CHANNEL, params["id"]))
            return cur.rowcount

        return self._with_conn(run, action=f"append to execution {params['id']!r}", retry=False)

    def rewrite(self, log: ExecutionLog, records: Sequence[Record]) -> None:
        """Replace the payload of every record of an execution ``log`` holds, one for one, in one statement.

        What ``delite rekey`` needs: the same number of records, each sealed again. Fenced by the claim's epoch
        and head, so a claim lost meanwhile changes nothing.

        Raises:
            UsageError: ``log`` is not a live claim of this store, or ``records`` is not one per record.
            ClaimLostError: the claim was lost; nothing was changed.
        """
        if not isinstance(log, PostgresExecutionLog) or log._store is not self:  # noqa: SLF001
            raise UsageError("rewrite takes a live claim of this store")
        if not records or len(records) != log.head:
            raise UsageError(f"rewrite replaces the {log.head} records of {log.execution_id!r} one for one")
        payloads = encoded(records)
        params = {
            "id": log.execution_id,
            "epoch": log.epoch,
            "head": log.head,
            "seqs": list(range(1, len(payloads) + 1)),
            "payloads": payloads,
            "crcs": [zlib.crc32(p) for p in payloads],
        }

        def run(conn: Conn) -> int:
            return conn.execute(_REWRITE, params).rowcount

        written = self._with_conn(run, action=f"rewrite execution {log.execution_id!r}", retry=False)
        if written != len(payloads):
            log._diagnose(self)  # noqa: SLF001
            raise ClaimLostError(log.execution_id, "the records changed during the rewrite")

    @property
    def _claims(self) -> ClaimConnection | None:
        return self._open.claims

    @_claims.setter
    def _claims(self, claims: ClaimConnection | None) -> None:
        self._open.claims = claims

    def close(self) -> None:
        """Close the pool, the claim connection (the server drops every claim it held) and the listener."""
        self._closed = True
        self._open.close()

    # -- reading ----------------------------------------------------------------------------------------------

    def exists(self, execution_id: str) -> bool:
        """Whether the execution exists."""
        eid = validate_execution_id(execution_id)
        return self._fetchone("SELECT 1 FROM executions WHERE id = %s", (eid,)) is not None

    def list_ids(self) -> list[str]:
        """Every execution id, sorted."""
        return [str(r[0]) for r in self._fetchall("SELECT id FROM executions ORDER BY id", ())]

    def head(self, execution_id: str) -> int:
        """The sequence number of the execution's last record."""
        eid = validate_execution_id(execution_id)
        row = self._fetchone("SELECT head_seq FROM executions WHERE id = %s", (eid,))
        if row is None:
            raise ExecutionNotFoundError(eid, self.where)
        return int(row[0])

    def read(self, execution_id: str, *, after: int | None = None, limit: int | None = None) -> RecordRange:
        """The records after sequence ``after`` (at most ``limit``), every checksum verified."""
        start = check_range(after, limit)
        eid = validate_execution_id(execution_id)
        rows = self._fetchall(_READ, {"id": eid, "after": start, "limit": limit})
        if not rows:
            raise ExecutionNotFoundError(eid, self.where)
        head = int(rows[0][0])
        found = [(r[1], r[2], r[3]) for r in rows if r[1] is not None]
        wanted = max(0, head - start) if limit is None else max(0, min(limit, head - start))
        records = verify(eid, found, start)
        if len(records) != wanted:
            missing = start + len(records) + 1
            raise LogCorruptError(where_record(eid), missing, f"record {missing} is missing (the head is {head})")
        return RecordRange(execution_id=eid, records=records, after=start, head=head)

    def read_payloads(self, execution_id: str) -> list[StoredPayload]:
        """Every record's payload bytes and checksum exactly as stored (each verified)."""
        eid = validate_execution_id(execution_id)
        rows = self._fetchall(_READ, {"id": eid, "after": 0, "limit": None})
        if not rows:
            raise ExecutionNotFoundError(eid, self.where)
        head = int(rows[0][0])
        out: list[StoredPayload] = []
        where = where_record(eid)
        for i, (_head, seq, payload, crc) in enumerate((r for r in rows if r[1] is not None), start=1):
            data = bytes(payload)
            if seq != i:
                raise LogCorruptError(where, i, f"record {i} is missing (found sequence {seq})")
            if zlib.crc32(data) != crc:
                raise LogCorruptError(where, i, f"record {i} does not match its checksum")
            out.append(StoredPayload(i, data, int(crc)))
        if len(out) != head:
            raise LogCorruptError(where, len(out) + 1, f"record {len(out) + 1} is missing (the head is {head})")
        return out

    # -- creating and claiming ------------------------------------------------------------------------------------

    def create(self, execution_id: str, records: Sequence[Record]) -> None:
        """Create an execution holding ``records`` in one transaction, unclaimed (see :meth:`LogStore.create`)."""
        eid = validate_execution_id(execution_id)
        if not records:
            raise UsageError(f"execution {eid!r} must be created with at least one record")
        self._create(eid, list(records), encoded(records))

    def create_payloads(self, execution_id: str, payloads: Sequence[StoredPayload]) -> None:
        """Create an execution from stored payloads, kept byte for byte (each checksum verified first)."""
        eid = validate_execution_id(execution_id)
        kept = within_limit([bytes(p.payload) for p in payloads])
        records = decode_stored(eid, payloads)
        if not records:
            raise UsageError(f"execution {eid!r} must be created with at least one record")
        self._create(eid, records, kept)

    def _create(self, eid: str, records: Sequence[Record], payloads: list[bytes]) -> None:
        if self.exists(eid):
            raise _exists(eid)
        generation, key = self._acquire(eid, 0.0)
        try:
            self._with_conn(
                lambda conn: self._insert(conn, eid, key, records, payloads, epoch=0),
                action=f"create execution {eid!r}",
                retry=False,
            )
        finally:
            self._drop(eid, None, generation, key)

    def _insert(
        self, conn: Conn, eid: str, key: int, records: Sequence[Record], payloads: list[bytes], *, epoch: int
    ) -> ExecutionState | None:
        """Insert a new execution and its records in one transaction (:class:`ExecutionIdConflictError` if taken).

        Returns the records' fold (None: they do not fold; the execution is listed as unreadable).
        """
        first = unsealed_shell(records[0])
        started = first if isinstance(first, ExecutionStarted) else None
        state = fold_or_none(records)
        columns = log_columns(state)
        row = {
            "id": eid,
            "key": key,
            "agent": column_text(state.agent_id if state is not None else (started.agent_id if started else "")),
            "parent": state.parent_id if state is not None else None,
            "forked": started.forked_from if started is not None else None,
            "created": state.created_at if state is not None else first.at,
            "head": len(records),
            "epoch": epoch,
            **columns,
        }
        with conn.transaction():
            if conn.execute(_INSERT_EXECUTION, row).fetchone() is None:
                raise _exists(eid)
            conn.execute(
                _INSERT_RECORDS,
                {
                    "id": eid,
                    "seqs": list(range(1, len(records) + 1)),
                    "payloads": payloads,
                    "crcs": [zlib.crc32(p) for p in payloads],
                },
            )
            if columns["adv"]:
                conn.execute("SELECT pg_notify(%s, %s)", (CHANNEL, eid))
        return state

    def claim(
        self, execution_id: str, *, create: Sequence[Record] | None = None, timeout: float = 0.0
    ) -> PostgresExecutionLog:
        """Take the execution's advisory lock, bump its owner epoch and read it (or create it)."""
        eid = validate_execution_id(execution_id)
        if isinstance(timeout, bool) or not isinstance(timeout, int | float):
            raise UsageError(f"timeout must be a number of seconds, not {timeout!r}")
        payloads = encoded(create) if create else None
        if create is not None and not create:
            raise UsageError(f"execution {eid!r} must be created with at least one record")
        if create is None and not self.exists(eid):
            raise ExecutionNotFoundError(eid, self.where)
        generation, key = self._acquire(eid, float(timeout))
        try:
            log = self._with_conn(
                lambda conn: self._claimed(
                    conn, eid=eid, key=key, generation=generation, create=create, payloads=payloads
                ),
                action=f"claim execution {eid!r}",
                retry=False,
            )
        except BaseException:
            self._drop(eid, None, generation, key)
            raise
        with self._cv:
            self._held[eid] = (generation, log)
        return log

    def _claimed(
        self,
        conn: Conn,
        *,
        eid: str,
        key: int,
        generation: int,
        create: Sequence[Record] | None,
        payloads: list[bytes] | None,
    ) -> PostgresExecutionLog:
        row = conn.execute(
            "UPDATE executions SET owner_epoch = owner_epoch + 1 WHERE id = %s "
            "RETURNING head_seq, owner_epoch, advanceable",
            (eid,),
        ).fetchone()
        if row is None:
            if create is None or payloads is None:
                raise ExecutionNotFoundError(eid, self.where)
            state = self._insert(conn, eid, key, create, payloads, epoch=1)
            log = PostgresExecutionLog(
                self,
                eid,
                list(create),  # type: ignore[arg-type]
                epoch=1,
                generation=generation,
                created=True,
                was_advanceable=state is not None and advanceable(state),
            )
            log._state, log._folded = state, True  # noqa: SLF001 - folded once, for the row and the log
            return log
        head, epoch = int(row[0]), int(row[1])
        rows = conn.execute(
            "SELECT seq, payload, crc FROM records WHERE execution_id = %s AND seq <= %s ORDER BY seq", (eid, head)
        ).fetchall()
        records = verify(eid, rows, 0)
        if len(records) != head:
            missing = len(records) + 1
            raise LogCorruptError(where_record(eid), missing, f"record {missing} is missing (the head is {head})")
        return PostgresExecutionLog(
            self, eid, records, epoch=epoch, generation=generation, created=False, was_advanceable=bool(row[2])
        )

    def _acquire(self, eid: str, timeout: float) -> tuple[int, int]:
        """Reserve the id in this store, then win its advisory lock; returns (connection generation, lock key)."""
        deadline = time.monotonic() + timeout
        pending = _Pending()
        with self._cv:
            while True:
                held = self._held.get(eid)
                if held is None or (not isinstance(held[1], _Pending) and held[0] != self._claim_generation):
                    self._held[eid] = (0, pending)  # free, or held on a connection that died: its claim is lost
                    break
                remaining = deadline - time.monotonic()
                if timeout <= 0:
                    raise ExecutionAlreadyClaimedError(eid)
                if remaining <= 0:
                    raise ClaimTimeoutError(eid, timeout)
                self._cv.wait(remaining)
        key = lock_key(eid)
        try:
            return self._lock_until(eid, key, timeout, deadline)
        except BaseException:
            with self._cv:
                if self._held.get(eid, (0, None))[1] is pending:
                    del self._held[eid]
                self._cv.notify_all()
            raise

    def _lock_until(self, eid: str, key: int, timeout: float, deadline: float) -> tuple[int, int]:
        """Try the advisory lock until it is won or the deadline passes; (connection generation, key)."""
        pause = 0.02
        while True:
            claims = self._claim_connection()
            generation = self._claim_generation
            if claims.try_lock(key):
                return generation, key
            remaining = deadline - time.monotonic()
            if timeout <= 0:
                raise ExecutionAlreadyClaimedError(eid)
            if remaining <= 0:
                raise ClaimTimeoutError(eid, timeout)
            time.sleep(min(pause, remaining))
            pause = min(pause * 2, 0.25)

    def _drop(self, eid: str, log: PostgresExecutionLog | None, generation: int, key: int) -> None:
        """Unlock the id (if its lock is still on the live connection) and forget it; wake this store's waiters."""
        with self._cv:
            held = self._held.get(eid)
            mine = held is not None and (held[1] is log if log is not None else isinstance(held[1], _Pending))
            claims = self._claims
            if claims is not None and generation == self._claim_generation and (mine or log is None):
                claims.unlock(key)
            if mine:
                del self._held[eid]
            self._cv.notify_all()

    def _release(self, log: PostgresExecutionLog) -> None:
        self._drop(log.execution_id, log, log._generation, lock_key(log.execution_id))  # noqa: SLF001

    def is_claimed(self, execution_id: str) -> bool:
        """Whether a live owner (in any process) holds the execution's lock now."""
        eid = validate_execution_id(execution_id)
        with self._cv:
            held = self._held.get(eid)
        if held is not None and not isinstance(held[1], _Pending) and self._claim_alive(held[0]):
            return True
        row = self._fetchone(_IS_CLAIMED, (lock_key(eid),))
        return bool(row is not None and row[0])

    def claim_setting(self, name: str) -> str:
        """A server setting as the claim connection's session sees it (``tcp_keepalives_idle``, ...)."""
        return self._claim_connection().setting(name)

    @property
    def claim_pid(self) -> int:
        """The server process id of the claim connection (what ``pg_terminate_backend`` would end)."""
        return self._claim_connection().pid

    # -- cancels and keys ---------------------------------------------------------------------------------

    def request_cancel(self, execution_id: str) -> None:
        """Record a cancel request (asking twice is asking once)."""
        eid = validate_execution_id(execution_id)
        self._with_conn(
            lambda c: c.execute("INSERT INTO cancels (execution_id) VALUES (%s) ON CONFLICT DO NOTHING", (eid,)),
            action="request a cancel",
            retry=False,
        )

    def cancel_requested(self, execution_id: str) -> bool:
        """Whether a cancel is pending."""
        eid = validate_execution_id(execution_id)
        return self._fetchone("SELECT 1 FROM cancels WHERE execution_id = %s", (eid,)) is not None

    def cancels_requested(self, execution_ids: Iterable[str]) -> set[str]:
        """Which of these executions have a cancel pending (one query)."""
        ids = check_ids(execution_ids)
        if not ids:
            return set()
        rows = self._fetchall("SELECT execution_id FROM cancels WHERE execution_id = ANY(%s)", (ids,))
        return {str(r[0]) for r in rows}

    def clear_cancel(self, execution_id: str) -> None:
        """Forget the cancel request."""
        eid = validate_execution_id(execution_id)
        self._with_conn(
            lambda c: c.execute("DELETE FROM cancels WHERE execution_id = %s", (eid,)),
            action="clear a cancel request",
            retry=False,
        )

    def bind_key(self, key: str, execution_id: str, fingerprint: str) -> tuple[str, str]:
        """Bind the key unless it is bound (``INSERT ... ON CONFLICT DO NOTHING``); the binding that holds."""
        check_binding(key, execution_id, fingerprint)

        def bind(conn: Conn) -> tuple[str, str]:
            row = conn.execute(
                "INSERT INTO idempotency_keys (key, execution_id, fingerprint) VALUES (%s, %s, %s) "
                "ON CONFLICT (key) DO NOTHING RETURNING execution_id, fingerprint",
                (column_text(key), execution_id, column_text(fingerprint)),
            ).fetchone()
            if row is None:  # a racer bound it first (committed before our insert returned): read theirs
                row = conn.execute(
                    "SELECT execution_id, fingerprint FROM idempotency_keys WHERE key = %s", (column_text(key),)
                ).fetchone()
            if row is None:
                raise StoreError(f"the idempotency key {key!r} vanished while it was being bound", self.where)
            return str(row[0]), from_column(str(row[1]))

        return self._with_conn(bind, action="bind an idempotency key", retry=False)

    def lookup_key(self, key: str) -> tuple[str, str] | None:
        """The key's binding, if it is bound."""
        check_key(key)
        row = self._fetchone(
            "SELECT execution_id, fingerprint FROM idempotency_keys WHERE key = %s", (column_text(key),)
        )
        return None if row is None else (str(row[0]), from_column(str(row[1])))

    # -- deletion -----------------------------------------------------------------------------------------------

    def delete_execution(self, execution_id: str, *, force: bool = False) -> Deleted:
        """Delete the execution's row, records, cancel request and idempotency keys in one transaction.

        The claim is tried with a transaction-level advisory lock on the same key as the claims: held by a
        live owner (in any process, this one included), the execution is refused unless ``force``; won, no one
        can claim it until the transaction ends. See :meth:`Store.delete_execution`; the bytes freed are those
        of its record payloads.
        """
        eid = validate_execution_id(execution_id)
        check_force(force)
        key = lock_key(eid)
        with self._cv:
            held = self._held.get(eid)
        mine = held is not None and not isinstance(held[1], _Pending) and self._claim_alive(held[0])

        def run(conn: Conn) -> Deleted:
            with conn.transaction():
                row = conn.execute("SELECT status FROM executions WHERE id = %s FOR UPDATE", (eid,)).fetchone()
                if row is None:
                    raise ExecutionNotFoundError(eid, self.where)
                won = conn.execute("SELECT pg_try_advisory_xact_lock(%s)", (key,)).fetchone()
                status = str(row[0])
                check_deletable(eid, status, claimed=mine or not (won and won[0]), force=force)
                size = conn.execute(
                    "SELECT coalesce(sum(octet_length(payload)), 0) FROM records WHERE execution_id = %s", (eid,)
                ).fetchone()
                conn.execute("DELETE FROM records WHERE execution_id = %s", (eid,))
                conn.execute("DELETE FROM cancels WHERE execution_id = %s", (eid,))
                conn.execute("DELETE FROM idempotency_keys WHERE execution_id = %s", (eid,))
                conn.execute("DELETE FROM executions WHERE id = %s", (eid,))
            return Deleted(id=eid, status=status, bytes=int(size[0]) if size else None)

        return self._with_conn(run, action=f"delete execution {eid!r}", retry=False)

    # -- listings and work ------------------------------------------------------------------------------------

    def query_executions(self, query: ListingQuery) -> Page:
        """Filter, order and page in SQL (metadata filters over the summaries, in Python), newest first."""
        where: list[str] = []
        params: dict[str, Any] = {}
        if query.statuses:
            where.append("status = ANY(%(statuses)s)")
            params["statuses"] = query.statuses
        for column, name, value in (("agent_id", "agent", query.agent), ("parent_id", "parent", query.parent)):
            if value is not None:
                where.append(f"{column} = %({name})s")
                params[name] = column_text(value)
        if query.since is not None:
            where.append("created_at >= %(since)s")
            params["since"] = float(query.since)
        if query.until is not None:
            where.append("created_at < %(until)s")
            params["until"] = float(query.until)
        clause = ("WHERE " + " AND ".join(where)) if where else ""
        order = "ORDER BY created_at DESC, id DESC"
        columns = "id, head_seq, summary, summary_head"
        if query.metadata:
            rows = self._fetchall(f"SELECT {columns} FROM executions {clause} {order}", params)  # noqa: S608
            return query.page(self._summaries(rows))
        params["limit"], params["offset"] = query.limit, query.offset
        rows = self._fetchall(
            f"SELECT {columns}, count(*) OVER () FROM executions {clause} {order} LIMIT %(limit)s OFFSET %(offset)s",  # noqa: S608
            params,
        )
        if rows:
            total = int(rows[0][4])
        else:  # past the last match (or a page of none): count them
            total = int((self._fetchone(f"SELECT count(*) FROM executions {clause}", params) or (0,))[0])  # noqa: S608
        return Page(items=self._summaries(rows), total=total, offset=query.offset, limit=query.limit)

    def _summaries(self, rows: Sequence[tuple[Any, ...]]) -> list[ExecutionSummary]:
        """The summaries of these rows (``id, head_seq, summary, summary_head``), recomputed where the head moved."""
        out: dict[str, ExecutionSummary] = {}
        stale: list[tuple[str, int]] = []
        for eid, head, blob, at, *_ in rows:
            if blob is not None and at == head:
                try:
                    out[eid] = _summary_decoder.decode(bytes(blob))
                    continue
                except msgspec.DecodeError:
                    pass
            stale.append((eid, int(head)))
        for i in range(0, len(stale), _CHUNK):
            out.update(self._recompute(stale[i : i + _CHUNK]))
        return [out[str(r[0])] for r in rows]

    def _recompute(self, stale: list[tuple[str, int]]) -> dict[str, ExecutionSummary]:
        """Summarize these executions from their records (one read), and keep the summaries for the next listing."""
        ids = [eid for eid, _ in stale]
        heads = [head for _, head in stale]
        rows = self._fetchall(
            "SELECT r.execution_id, r.seq, r.payload, r.crc FROM records r "
            "JOIN unnest(%s::text[], %s::bigint[]) AS s(id, head) ON r.execution_id = s.id AND r.seq <= s.head "
            "ORDER BY r.execution_id, r.seq",
            (ids, heads),
        )
        grouped: dict[str, list[tuple[Any, ...]]] = {eid: [] for eid in ids}
        for eid, seq, payload, crc in rows:
            grouped[eid].append((seq, payload, crc))
        out: dict[str, ExecutionSummary] = {}
        for eid, head in stale:
            try:
                records = verify(eid, grouped[eid], 0)
            except (LogCorruptError, UnsupportedFormatError) as e:
                out[eid] = unreadable(eid, str(e), log_bytes=0)
                continue
            if len(records) != head:
                out[eid] = unreadable(eid, f"record {len(records) + 1} is missing (the head is {head})", log_bytes=0)
            else:
                out[eid] = summarize(eid, records)
        self._keep_summaries([(eid, head, out[eid]) for eid, head in stale])
        return out

    def _keep_summaries(self, kept: list[tuple[str, int, ExecutionSummary]]) -> None:
        """Store summaries for the next listing, each only while its execution's head is the one it was made at."""
        ids = [eid for eid, _, _ in kept]
        heads = [head for _, head, _ in kept]
        blobs = [_encode(summary) for _, _, summary in kept]
        with contextlib.suppress(StoreError):
            self._with_conn(
                lambda c: c.execute(
                    "UPDATE executions e SET summary = s.summary, summary_head = s.head "
                    "FROM unnest(%s::text[], %s::bigint[], %s::bytea[]) AS s(id, head, summary) "
                    "WHERE e.id = s.id AND e.head_seq = s.head",
                    (ids, heads, blobs),
                ),
                action="keep the listing summaries",
                retry=False,
            )

    def recoverable(self, *, agent: str | None = None, limit: int | None = None) -> list[ExecutionSummary]:
        """Running executions with no live owner (sub-agents' included, forks nobody resumed not), oldest first."""
        check_listing(limit=limit, offset=0, metadata=None, agent=agent)
        return self._work("e.status = 'running'", agents=None if agent is None else [agent], limit=limit)

    def runnable(self, *, agent: str | Iterable[str] | None = None, limit: int | None = None) -> list[ExecutionSummary]:
        """Top-level executions a worker may advance now (running, or with every answer in) and nobody holds."""
        agents = check_agents(agent)
        check_listing(limit=limit, offset=0, metadata=None)
        return self._work("e.parent_id IS NULL", agents=None if agents is None else sorted(agents), limit=limit)

    def _work(self, scope: str, *, agents: list[str] | None, limit: int | None) -> list[ExecutionSummary]:
        columns = None if agents is None else [column_text(a) for a in agents]
        rows = self._fetchall(_WORK.format(scope=scope), {"agents": columns, "limit": limit})
        return self._summaries(rows)

    def wait_for_work(self, timeout: float) -> bool:
        """Block until a ``NOTIFY`` says work may have appeared (True) or ``timeout`` seconds pass (False)."""
        if isinstance(timeout, bool) or not isinstance(timeout, int | float):
            raise UsageError(f"timeout must be a number of seconds, not {timeout!r}")
        return self._listener.wait(float(timeout))

    def listen(self) -> None:
        """Start listening for news now, so that none sent before the first :meth:`wait_for_work` is missed."""
        with contextlib.suppress(psycopg.Error):
            self._listener.start()


class _Connections:
    """What a store holds open: closed by :meth:`PostgresStore.close`, or when a store nobody closed is collected."""

    def __init__(self, pool: psycopg_pool.ConnectionPool[Any], listener: Listener) -> None:
        self.pool = pool
        self.listener = listener
        self.claims: ClaimConnection | None = None

    def close(self) -> None:
        """Close the listener, the claim connection (the server drops its claims) and the pool; again: nothing."""
        self.listener.close()
        claims, self.claims = self.claims, None
        if claims is not None:
            claims.close()
        self.pool.close()


def _exists(execution_id: str) -> ExecutionIdConflictError:
    return ExecutionIdConflictError(execution_id, "", "an execution with this id exists already; choose another id")
