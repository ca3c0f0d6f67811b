"""Fixtures of the several-hosts tests: network namespaces on a bridge (``tests/_netns.py``), and a throwaway
PostgreSQL server (``tests/_pg.py``) listening on the bridge's address, so that workers on every "host" reach
one database over a network that a test can cut."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

TESTS = Path(__file__).resolve().parents[1]
if str(TESTS) not in sys.path:
    sys.path.insert(0, str(TESTS))  # the private helpers tests/_netns.py and tests/_pg.py

from _netns import Hosts, unavailable  # noqa: E402


@pytest.fixture
def hosts() -> Iterator[Hosts]:
    """Three hosts in network namespaces on a private bridge; skipped with the reason where that cannot work."""
    reason = unavailable()
    if reason is not None:
        pytest.skip(reason)
    with Hosts(3) as made:
        yield made


@dataclass
class Cluster:
    """Three hosts, and one PostgreSQL server in the root namespace that listens on the bridge's address too."""

    hosts: Hosts
    server: Any  # _pg.PgServer

    def database(self) -> tuple[str, str]:
        """A fresh database: its URL over loopback (for the test itself) and over the bridge (for the hosts)."""
        url: str = self.server.create_database()
        name = url.rsplit("/", 1)[-1]
        return url, self.server.url(name, host=self.hosts.bridge_ip)


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    """Module-wide: three hosts and a PostgreSQL server on their bridge (skipped with the reason if impossible)."""
    reason = unavailable()
    if reason is not None:
        pytest.skip(reason)
    from _pg import PgServer
    from _pg import unavailable as pg_unavailable

    reason = pg_unavailable()
    if reason is not None:
        pytest.skip(reason)
    with Hosts(3) as made:
        server = PgServer(listen_addresses=(made.bridge_ip,))
        try:
            server.start()
            yield Cluster(made, server)
        finally:
            server.destroy()
