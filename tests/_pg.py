"""A throwaway PostgreSQL server for the tests: the machine's own server binaries, a private cluster.

:class:`PgServer` runs ``initdb`` once (trust authentication, ``fsync=off``: for tests only) in a temporary
directory, starts ``postgres`` on a free loopback port (and any extra ``listen_addresses``), as an
unprivileged user when the tests run as root (PostgreSQL refuses to run as root), and hands out one fresh
database per test. Nothing shared is ever touched: no system cluster, no default port.

The binaries are looked for with ``pg_config --bindir``, under ``/usr/lib/postgresql/*/bin`` (newest first)
and on ``PATH``; :func:`find_bindir` returns None when there are none, and the fixtures skip with that reason.
"""

from __future__ import annotations

import contextlib
import glob
import itertools
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

__all__ = ["PgServer", "find_bindir", "free_port", "unavailable"]

_NEEDED = ("initdb", "pg_ctl", "postgres")


def _has_all(bindir: str) -> bool:
    return all(os.access(os.path.join(bindir, name), os.X_OK) for name in _NEEDED)


def find_bindir() -> str | None:
    """The directory of the server binaries (``initdb``, ``pg_ctl``, ``postgres``), or None."""
    candidates: list[str] = []
    pg_config = shutil.which("pg_config")
    if pg_config:
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            out = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, timeout=10, check=True)
            candidates.append(out.stdout.strip())

    def version(path: str) -> float:
        try:
            return float(Path(path).parent.name)
        except ValueError:
            return 0.0

    candidates.extend(sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=version, reverse=True))
    initdb = shutil.which("initdb")
    if initdb:
        candidates.append(os.path.dirname(initdb))
    for bindir in candidates:
        if bindir and _has_all(bindir):
            return bindir
    return None


def unavailable() -> str | None:
    """Why a throwaway server cannot be started here (None: it can)."""
    try:
        import psycopg  # noqa: F401 - only asked whether it is installed
    except ImportError:
        return 'psycopg is not installed (pip install "delite-agents[postgres]")'
    if find_bindir() is None:
        return "no PostgreSQL server binaries (initdb, pg_ctl, postgres) on this machine"
    if os.geteuid() == 0 and not (_user_exists("postgres") or shutil.which("useradd")):
        return "running as root with no unprivileged user to run PostgreSQL as"
    return None


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def _user_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


class PgServer:
    """One private PostgreSQL cluster: ``start``, ``stop``, ``restart``, and a fresh database per test.

    ``listen_addresses`` are extra addresses to listen on besides loopback (a network namespace's bridge
    address, say); ``pg_hba.conf`` trusts loopback and ``10.0.0.0/8``.
    """

    def __init__(self, *, listen_addresses: tuple[str, ...] = (), bindir: str | None = None) -> None:
        """Create the cluster's directory and run ``initdb`` (the server is not started: call :meth:`start`)."""
        found = bindir or find_bindir()
        if found is None:
            raise RuntimeError("no PostgreSQL server binaries found")
        self.bindir = found
        self.host = "127.0.0.1"
        self.port = free_port()
        self.listen_addresses = ("127.0.0.1", *listen_addresses)
        self.root = Path(tempfile.mkdtemp(prefix="delite-pg-"))
        self.data = self.root / "data"
        self.log = self.root / "server.log"
        self.user = self._os_user()
        self._names = itertools.count(1)
        self._owned: list[str] = []
        self._template: str | None = None
        self._recycled: list[str] = []
        os.chmod(self.root, 0o755)  # noqa: S103 - the server's user must reach its directory
        if self.user is not None:
            shutil.chown(self.root, self.user, self.user)
        self._run(
            [
                os.path.join(self.bindir, "initdb"),
                "-D",
                str(self.data),
                "-U",
                "postgres",
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
            ]
        )
        self._configure()

    # -- set up --------------------------------------------------------------------------------------------------

    @staticmethod
    def _os_user() -> str | None:
        """The unprivileged user to run the server as (None: the current one, not root)."""
        if os.geteuid() != 0:
            return None
        if not _user_exists("postgres"):
            subprocess.run(["useradd", "--system", "--no-create-home", "postgres"], check=True, capture_output=True)
        return "postgres"

    def _command(self, argv: list[str]) -> list[str]:
        if self.user is None:
            return argv
        return ["runuser", "-u", self.user, "--", *argv]

    def _run(self, argv: list[str], *, timeout: float = 120) -> None:
        done = subprocess.run(self._command(argv), capture_output=True, text=True, timeout=timeout, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"{argv[0]} failed ({done.returncode}): {done.stdout}{done.stderr}{self._log_tail()}")

    def _log_tail(self) -> str:
        try:
            return "\nserver log:\n" + self.log.read_text(errors="replace")[-3000:]
        except OSError:
            return ""

    def _configure(self) -> None:
        conf = self.data / "postgresql.conf"
        with conf.open("a") as f:
            f.write(
                "\n# delite tests: a throwaway cluster\n"
                f"port = {self.port}\n"
                f"listen_addresses = '{','.join(self.listen_addresses)}'\n"
                f"unix_socket_directories = '{self.root}'\n"
                "max_connections = 300\n"
                "shared_buffers = 32MB\n"
                "fsync = off\n"  # tests only: a power loss is not what they test
                "full_page_writes = off\n"
                "synchronous_commit = on\n"
                "log_min_messages = warning\n"
                "log_line_prefix = '%m [%p] '\n"
            )
        hba = self.data / "pg_hba.conf"
        hba.write_text(
            "local all all trust\n"
            "host all all 127.0.0.1/32 trust\n"
            "host all all ::1/128 trust\n"
            "host all all 10.0.0.0/8 trust\n"
        )

    # -- life cycle -----------------------------------------------------------------------------------------------

    def start(self) -> None:
        """Start the server and wait until it accepts connections."""
        pg_ctl = os.path.join(self.bindir, "pg_ctl")
        self._run([pg_ctl, "-D", str(self.data), "-l", str(self.log), "-w", "-t", "60", "start"])
        self._wait_ready()

    def stop(self, mode: str = "fast") -> None:
        """Stop the server (``fast``: disconnect every client; ``immediate``: as a crash would)."""
        pg_ctl = os.path.join(self.bindir, "pg_ctl")
        self._run([pg_ctl, "-D", str(self.data), "-m", mode, "-w", "-t", "60", "stop"])

    def restart(self, mode: str = "fast") -> None:
        """Stop and start the server on the same port (every client connection is cut)."""
        self.stop(mode)
        self.start()

    def listen_on(self, *addresses: str) -> None:
        """Also listen on these addresses (a network namespace's bridge, say): rewrites the setting and restarts."""
        self.listen_addresses = tuple(dict.fromkeys((*self.listen_addresses, *addresses)))
        with (self.data / "postgresql.conf").open("a") as f:
            f.write(f"listen_addresses = '{','.join(self.listen_addresses)}'\n")  # the last setting wins
        if self.running():
            self.restart()

    def running(self) -> bool:
        """Whether the server's postmaster is up."""
        pg_ctl = os.path.join(self.bindir, "pg_ctl")
        done = subprocess.run(self._command([pg_ctl, "-D", str(self.data), "status"]), capture_output=True, check=False)
        return done.returncode == 0

    def _wait_ready(self, timeout: float = 30.0) -> None:
        import psycopg

        deadline = time.monotonic() + timeout
        while True:
            try:
                with psycopg.connect(self.url("postgres"), connect_timeout=2):
                    return
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def destroy(self) -> None:
        """Stop the server (if running) and remove its directory."""
        with contextlib.suppress(RuntimeError, OSError, subprocess.SubprocessError):
            if self.running():
                self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)

    # -- databases ------------------------------------------------------------------------------------------------

    def url(self, dbname: str = "postgres", *, host: str | None = None) -> str:
        """A ``postgresql://`` URL of a database on this server (over TCP to ``host``, loopback by default)."""
        return f"postgresql://postgres@{host or self.host}:{self.port}/{dbname}"

    def create_database(self, *, migrated: bool = False) -> str:
        """A new, empty database; returns its URL. ``migrated``: with delite's schema already in it (a copy of a
        template migrated once per server, faster than migrating each one)."""
        import psycopg

        if migrated and self._recycled:
            return self.url(self._recycled.pop())
        name = f"delite_test_{os.getpid()}_{next(self._names)}"
        template = self._migrated_template() if migrated else "template0"
        with psycopg.connect(self.url("postgres"), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
        self._owned.append(name)
        return self.url(name)

    def _migrated_template(self) -> str:
        name = "delite_migrated_template"
        if self._template is None:
            import psycopg

            from delite.store._postgres import migrate

            with psycopg.connect(self.url("postgres"), autocommit=True) as conn:
                conn.execute(f'CREATE DATABASE "{name}" TEMPLATE template0')
            migrate(self.url(name))
            self._template = name
        return name

    def recycle_database(self, url: str) -> None:
        """Empty a database made with ``migrated=True`` for the next such request: every session on it is ended
        (its claims with it) and delite's tables are emptied. Far cheaper than dropping and creating one."""
        import psycopg

        name = url.rsplit("/", 1)[-1]
        try:
            with psycopg.connect(url, autocommit=True) as conn:
                # Ended again each round: a client a test left open may connect anew (a store's listener does,
                # after a pause), and what counts is a moment with no session at all.
                deadline = time.monotonic() + 30
                while conn.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s AND pid <> "
                    "pg_backend_pid()",
                    (name,),
                ).fetchall():
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"sessions on {name} did not end")
                    time.sleep(0.01)
                conn.execute("TRUNCATE executions, records, cancels, idempotency_keys")
                conn.execute("SELECT pg_advisory_unlock_all()")
        except psycopg.Error:
            self.drop_database(url)
            return
        self._recycled.append(name)

    def drop_database(self, url: str) -> None:
        """Drop a database made by :meth:`create_database`, cutting its connections (best effort)."""
        import psycopg

        name = url.rsplit("/", 1)[-1]
        with contextlib.suppress(psycopg.Error), psycopg.connect(self.url("postgres"), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
