"""A transaction-mode pooler in front of the claim connection is detected and refused (a real PgBouncer).

Session advisory locks live in a server session; PgBouncer in transaction mode hands each transaction to any
free server connection, so a claim would stay behind on a connection another client gets next. In session mode
each client keeps its server connection, and the store works through it. Skipped where ``pgbouncer`` is not
installed (Debian/Ubuntu package ``pgbouncer``).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from _pg import free_port

from delite.errors import StoreError, UnsupportedPoolerError
from delite.log.records import ExecutionStarted
from delite.store._postgres import PostgresStore

PGBOUNCER = shutil.which("pgbouncer") or next(
    (p for p in ("/usr/sbin/pgbouncer", "/usr/bin/pgbouncer") if os.access(p, os.X_OK)), None
)
pytestmark = pytest.mark.skipif(PGBOUNCER is None, reason="pgbouncer is not installed (package pgbouncer)")


class Bouncer:
    """A PgBouncer in front of the test server, in one pool mode, as the server's unprivileged user."""

    def __init__(self, server: Any, mode: str) -> None:
        self.port = free_port()
        self.root = Path(tempfile.mkdtemp(prefix="delite-pgbouncer-"))
        (self.root / "users.txt").write_text('"postgres" ""\n')
        (self.root / "pgbouncer.ini").write_text(
            "[databases]\n"
            f"* = host=127.0.0.1 port={server.port}\n"
            "[pgbouncer]\n"
            "listen_addr = 127.0.0.1\n"
            f"listen_port = {self.port}\n"
            "unix_socket_dir =\n"
            "auth_type = trust\n"
            f"auth_file = {self.root / 'users.txt'}\n"
            f"pool_mode = {mode}\n"
            "default_pool_size = 4\n"
            "max_client_conn = 100\n"
            f"logfile = {self.root / 'pgbouncer.log'}\n"
            "ignore_startup_parameters = extra_float_digits,options\n"
        )
        argv = [str(PGBOUNCER), str(self.root / "pgbouncer.ini")]
        as_user: dict[str, Any] = {}
        if os.geteuid() == 0:  # pgbouncer refuses to run as root: drop to the server's user (signals reach it)
            for path in (self.root, *self.root.iterdir()):
                shutil.chown(path, server.user, server.user)
            as_user = {"user": server.user, "group": server.user, "extra_groups": []}
        self.proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, **as_user)
        deadline = time.monotonic() + 15
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                break
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    log = (self.root / "pgbouncer.log").read_text() if (self.root / "pgbouncer.log").exists() else ""
                    raise RuntimeError(f"pgbouncer did not start: {log}") from None
                time.sleep(0.05)

    def url(self, server_url: str) -> str:
        dbname = server_url.rsplit("/", 1)[-1]
        return f"postgresql://postgres@127.0.0.1:{self.port}/{dbname}"

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGINT)  # a fast shutdown (SIGTERM waits for the clients)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        if self.proc.stderr is not None:
            self.proc.stderr.close()
        shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture
def bouncer(request: pytest.FixtureRequest, pg_server: Any) -> Iterator[Bouncer]:
    b = Bouncer(pg_server, request.param)
    yield b
    b.stop()


@pytest.mark.parametrize("bouncer", ["transaction"], indirect=True)
def test_a_transaction_mode_pooler_is_refused(bouncer: Bouncer, pg_url: str) -> None:
    with pytest.raises(UnsupportedPoolerError) as info:
        PostgresStore(bouncer.url(pg_url))
    assert isinstance(info.value, StoreError)
    assert "transaction-mode" in str(info.value) and "direct connection" in str(info.value)
    direct = PostgresStore(pg_url)  # the same database, reached directly, is fine
    direct.close()


@pytest.mark.parametrize("bouncer", ["session"], indirect=True)
def test_a_session_mode_pooler_works(bouncer: Bouncer, pg_url: str) -> None:
    store = PostgresStore(bouncer.url(pg_url))
    other = PostgresStore(pg_url)
    try:
        with store.claim("e1", create=[ExecutionStarted(at=1.0, execution_id="e1", input="hi")]):
            assert other.is_claimed("e1")
        assert not other.is_claimed("e1")
        assert store.read("e1").head == 1
    finally:
        store.close()
        other.close()
