"""The PostgreSQL store's tables, created on first use and migrated in numbered, serialised steps.

Each step runs in its own transaction under a transaction advisory lock (``pg_advisory_xact_lock``), so
migrators racing from several processes apply every step once, in order; ``schema_migrations`` records the
steps applied. A database whose schema has a step this code does not know (a newer delite migrated it) is
refused with :class:`~delite.errors.SchemaTooNewError` before anything is written. Steps never use
``CREATE INDEX CONCURRENTLY`` (it cannot run inside a transaction).

Tables:

* ``executions``: one row per execution: the columns a listing filters and orders by (agent, status,
  parent, creation time), the head sequence and the owner epoch (the fence of every append), whether a
  worker may advance it now (``advanceable``, ``dormant``), the advisory lock key of its claim, and a cached
  listing summary with the head it was computed at.
* ``records``: ``(execution_id, seq)`` -> the record's payload bytes exactly as the file store frames them,
  and their CRC-32.
* ``cancels``: pending cancel requests. ``idempotency_keys``: run-level idempotency keys, bound once.
"""

from __future__ import annotations

from typing import NamedTuple

import psycopg

from delite.errors import SchemaTooNewError
from delite.store._postgres._connect import connect_error, redact, split_url

__all__ = ["MIGRATIONS", "MIGRATION_LOCK", "Migration", "Step", "ensure_schema", "migrate", "migration_status"]

MIGRATION_LOCK = 0x64656C6974650001
"""The transaction advisory lock every migration step holds ("delite" and 1, as one 64-bit key)."""


class Step(NamedTuple):
    """One migration step: its number, a name, and the statements it runs in one transaction."""

    number: int
    name: str
    statements: tuple[str, ...]


class Migration(NamedTuple):
    """A step of the schema and whether the database has it (what :func:`migration_status` lists)."""

    number: int
    name: str
    applied: bool


MIGRATIONS: tuple[Step, ...] = (
    Step(
        1,
        "executions, records, cancels and idempotency keys",
        (
            """CREATE TABLE executions (
                id text COLLATE "C" PRIMARY KEY,
                lock_key bigint NOT NULL,
                agent_id text NOT NULL,
                status text NOT NULL,
                advanceable boolean NOT NULL,
                dormant boolean NOT NULL,
                parent_id text,
                forked_from text,
                created_at double precision NOT NULL,
                updated_at double precision NOT NULL,
                head_seq bigint NOT NULL,
                owner_epoch bigint NOT NULL DEFAULT 0,
                summary bytea,
                summary_head bigint
            )""",
            """CREATE TABLE records (
                execution_id text NOT NULL,
                seq bigint NOT NULL,
                payload bytea NOT NULL,
                crc bigint NOT NULL,
                PRIMARY KEY (execution_id, seq)
            )""",
            "CREATE TABLE cancels (execution_id text PRIMARY KEY, requested_at timestamptz NOT NULL DEFAULT now())",
            """CREATE TABLE idempotency_keys (
                key text PRIMARY KEY,
                execution_id text NOT NULL,
                fingerprint text NOT NULL,
                bound_at timestamptz NOT NULL DEFAULT now()
            )""",
        ),
    ),
    Step(
        2,
        "indexes for listings and for finding work",
        (
            "CREATE INDEX executions_by_time ON executions (created_at DESC, id DESC)",
            "CREATE INDEX executions_by_status ON executions (status, created_at DESC, id DESC)",
            "CREATE INDEX executions_by_agent ON executions (agent_id, created_at DESC, id DESC)",
            "CREATE INDEX executions_by_parent ON executions (parent_id) WHERE parent_id IS NOT NULL",
            "CREATE INDEX executions_work ON executions (created_at, id) WHERE advanceable",
        ),
    ),
)

_STATUS_TABLE = """CREATE TABLE IF NOT EXISTS schema_migrations (
    number integer PRIMARY KEY,
    name text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)"""


def _applied(conn: psycopg.Connection[tuple[object, ...]]) -> set[int]:
    """The steps the database has (none when it has no ``schema_migrations`` table yet)."""
    row = conn.execute("SELECT to_regclass('schema_migrations') IS NOT NULL").fetchone()
    if row is None or not row[0]:
        return set()
    return {int(str(r[0])) for r in conn.execute("SELECT number FROM schema_migrations").fetchall()}


def _check_not_newer(applied: set[int], where: str) -> None:
    known = MIGRATIONS[-1].number
    newest = max(applied, default=0)
    if newest > known:
        raise SchemaTooNewError(where, newest, known)


def apply_pending(conn: psycopg.Connection[tuple[object, ...]], where: str) -> list[int]:
    """Apply the steps the database lacks, each in its own transaction under the migration lock; their numbers.

    ``conn`` must be in autocommit mode (each step opens its own transaction).
    """
    done: list[int] = []
    for step in MIGRATIONS:
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
            conn.execute(_STATUS_TABLE)
            applied = _applied(conn)
            _check_not_newer(applied, where)
            if step.number in applied:
                continue
            for statement in step.statements:
                conn.execute(statement)  # the steps' own constant SQL
            conn.execute("INSERT INTO schema_migrations (number, name) VALUES (%s, %s)", (step.number, step.name))
            done.append(step.number)
    return done


def ensure_schema(conn: psycopg.Connection[tuple[object, ...]], where: str) -> None:
    """Make the schema current on first use (one read when it is), or refuse a newer one.

    Raises:
        SchemaTooNewError: the database has a step this code does not know.
    """
    applied = _applied(conn)
    _check_not_newer(applied, where)
    if applied >= {s.number for s in MIGRATIONS}:
        return
    apply_pending(conn, where)


def _connect(url: str) -> tuple[psycopg.Connection[tuple[object, ...]], str]:
    params, _keep = split_url(url)
    where = redact(params)
    try:
        conn = psycopg.connect(autocommit=True, prepare_threshold=None, **params)
    except psycopg.Error as e:
        raise connect_error("connect to PostgreSQL", where, e) from e
    return conn, where


def migration_status(url: str) -> list[Migration]:
    """Every step this code knows, and whether the database at ``url`` has it (nothing is written).

    Raises:
        SchemaTooNewError: the database has a step this code does not know.
        StoreError: the database could not be reached.
    """
    conn, where = _connect(url)
    try:
        applied = _applied(conn)
    except psycopg.Error as e:
        raise connect_error("read the schema's steps", where, e) from e
    finally:
        conn.close()
    _check_not_newer(applied, where)
    return [Migration(s.number, s.name, s.number in applied) for s in MIGRATIONS]


def migrate(url: str) -> list[int]:
    """Apply the steps the database at ``url`` lacks, in order; returns their numbers (empty: it was current).

    Safe to run from several processes at once: each step is applied once.

    Raises:
        SchemaTooNewError: the database has a step this code does not know (nothing is changed).
        StoreError: the database could not be reached, or a step failed (that step is rolled back).
    """
    conn, where = _connect(url)
    try:
        return apply_pending(conn, where)
    except psycopg.Error as e:
        raise connect_error("migrate the schema", where, e) from e
    finally:
        conn.close()
