"""The ``delite`` command on a PostgreSQL store, for the fleet tests: ``python pg_cli.py URL ARGS...``.

It opens ``PostgresStore(URL)`` and hands it to the CLI as click's ``obj`` (the way a program embeds the CLI
on any store), so ``delite worker`` and ``delite approve`` run as real processes against the database whatever
``--data-dir`` accepts on this branch.
"""

from __future__ import annotations

import sys

from delite.store._postgres import PostgresStore
from delite_cli.main import cli


def main() -> None:
    url, *args = sys.argv[1:]
    store = PostgresStore(url)
    try:
        cli.main(args, obj=store, prog_name="delite")
    finally:
        store.close()


if __name__ == "__main__":
    main()
