"""The PostgreSQL store: the same logs (record bytes and checksums) in tables, claims as session advisory locks.

Private; opened as :class:`PostgresStore` (``PostgresStore("postgresql://...")``) or from a URL wherever a data
directory is accepted. Needs the ``postgres`` extra (``pip install "delite-agents[postgres]"``): importing this
package without psycopg raises :class:`~delite.errors.MissingExtraError`.

* :mod:`._schema`: the tables and their numbered migrations (:func:`migrate`, :func:`migration_status`).
* :mod:`._connect`: connection settings (keepalives), URLs without passwords, driver errors as store errors.
* :mod:`._claims`: the dedicated claim connection (advisory locks, the pooler check).
* :mod:`._listen`: ``LISTEN``/``NOTIFY`` wake-ups for workers.
* :mod:`._rows`: records checked and decoded; the columns that follow a log (status, advanceable).
* :mod:`._log`: the claimed log and its fenced append.
* :mod:`._store`: :class:`PostgresStore`: claims, reads, listings, work, cancels and keys.
"""

from __future__ import annotations

from delite.errors import MissingExtraError

try:
    import psycopg  # noqa: F401 - the extra's presence is checked here, once
    import psycopg_pool  # noqa: F401
except ImportError as e:  # pragma: no cover - the test extra installs both
    raise MissingExtraError("postgres", "a PostgreSQL store (a postgresql:// URL)") from e

from delite.store._postgres._schema import MIGRATIONS, Migration, migrate, migration_status
from delite.store._postgres._store import PostgresExecutionLog, PostgresStore

__all__ = ["MIGRATIONS", "Migration", "PostgresExecutionLog", "PostgresStore", "migrate", "migration_status"]
