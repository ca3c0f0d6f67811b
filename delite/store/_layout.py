"""Every path under a data directory, in one place."""

from __future__ import annotations

import os

from delite.errors import UsageError
from delite.log._os import make_private_dir

__all__ = ["DATA_DIR_ENV", "DEFAULT_DATA_DIR", "Layout"]

DATA_DIR_ENV = "DELITE_DATA_DIR"
"""The environment variable naming the default data directory (for ``Agent()`` and the ``delite`` command)."""

DEFAULT_DATA_DIR = "data"
"""The data directory when none is given and ``DELITE_DATA_DIR`` is unset, relative to the working directory.

The ``delite`` command's ``--data-dir`` default is the same (spelled out there, so the command does not import
the store to start).
"""


class Layout:
    """Where a data directory keeps each kind of file.

    ``executions/<id>.log`` are the logs (the source of truth); ``claims/<id>.lock`` the claim locks;
    ``signals/<id>.cancel`` cancel requests from other processes; ``keys/`` run-level idempotency keys;
    ``index.sqlite3`` the listing index, ``snapshots/<id>.snap`` the snapshots of finished executions and
    ``checkpoints/<id>.ckpt`` the fold checkpoints of unfinished ones, all derived from the logs (deleting them
    loses nothing). Every directory delite creates here is ``0700`` and
    every file ``0600``, whatever the umask.
    """

    __slots__ = ("checkpoints", "claims", "executions", "index", "keys", "root", "signals", "snapshots")

    def __init__(self, root: str | os.PathLike[str]) -> None:
        """Name the paths under ``root``; nothing is created.

        Raises:
            UsageError: ``root`` is not a path (``str`` or ``os.PathLike`` giving ``str``), or holds a NUL.
        """
        if not isinstance(root, str | os.PathLike) or isinstance(root, bytes):
            raise UsageError(f"the data directory must be a path (str or os.PathLike), not {type(root).__name__}")
        # Plain strings, not pathlib: opening a store in a fresh process does not import pathlib (and with it
        # urllib.parse and ipaddress), about a third of what opening a data directory cost (docs/benchmarks.md).
        given = os.fspath(root)
        if not isinstance(given, str):  # an os.PathLike whose __fspath__ gives bytes
            raise UsageError(f"the data directory must be a path naming text, not {type(given).__name__}")
        if "\x00" in given:
            raise UsageError(f"the data directory's path may not contain a NUL character: {given!r}")
        self.root: str = given.rstrip(os.sep) or (os.sep if given else ".")
        join = os.path.join
        self.executions = join(self.root, "executions")
        self.claims = join(self.root, "claims")
        self.signals = join(self.root, "signals")
        self.keys = join(self.root, "keys")
        self.index = join(self.root, "index.sqlite3")
        self.snapshots = join(self.root, "snapshots")
        self.checkpoints = join(self.root, "checkpoints")

    def log(self, execution_id: str) -> str:
        """The log file of an execution."""
        return os.path.join(self.executions, execution_id + ".log")

    def claim(self, execution_id: str) -> str:
        """The claim lock of an execution."""
        return os.path.join(self.claims, execution_id + ".lock")

    def cancel_signal(self, execution_id: str) -> str:
        """The file whose presence asks the execution's owner to cancel it."""
        return os.path.join(self.signals, execution_id + ".cancel")

    def snapshot(self, execution_id: str) -> str:
        """The derived snapshot of a finished execution (``snapshots/<id>.snap``; deleting it loses nothing)."""
        return os.path.join(self.snapshots, execution_id + ".snap")

    def checkpoint(self, execution_id: str) -> str:
        """The fold checkpoint of an unfinished execution (``checkpoints/<id>.ckpt``; deleting it loses nothing)."""
        return os.path.join(self.checkpoints, execution_id + ".ckpt")

    def ensure(self) -> None:
        """Create the directories that are missing (idempotent), each ``0700`` whatever the umask.

        Directories that exist are left as they are (``delite health`` warns about loose ones), and nothing
        is written when they all exist, so a read-only data directory can still be read.
        """
        if not os.path.isdir(self.root):
            os.makedirs(os.path.dirname(os.path.abspath(self.root)), exist_ok=True)  # the user's folders above it
            make_private_dir(self.root)
        for d in (self.executions, self.claims, self.signals, self.keys):
            if not os.path.isdir(d):
                make_private_dir(d)
