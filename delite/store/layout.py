"""Every path under a data directory, in one place."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["DATA_DIR_ENV", "DEFAULT_DATA_DIR", "Layout", "default_data_dir"]

DATA_DIR_ENV = "DELITE_DATA_DIR"
"""The environment variable naming the default data directory (for ``Agent()`` and the ``delite`` command)."""

DEFAULT_DATA_DIR = "data"
"""The data directory when none is given and ``DELITE_DATA_DIR`` is unset, relative to the working directory.

The ``delite`` command's ``--data-dir`` default is the same (spelled out there, so the command does not import
the store to start).
"""


def default_data_dir() -> Path:
    """``$DELITE_DATA_DIR``, else ``./data``, as an absolute path (a later ``chdir`` does not move it)."""
    return Path(os.path.abspath(os.environ.get(DATA_DIR_ENV) or DEFAULT_DATA_DIR))


class Layout:
    """Where a data directory keeps each kind of file.

    ``executions/<id>.log`` are the logs (the source of truth); ``claims/<id>.lock`` the claim locks;
    ``signals/<id>.cancel`` cancel requests from other processes; ``keys/`` run-level idempotency keys;
    ``index.sqlite3`` the listing index, derived from the logs (deleting it loses nothing).
    """

    __slots__ = ("claims", "executions", "index", "keys", "root", "signals")

    def __init__(self, root: str | os.PathLike[str]) -> None:
        """Name the paths under ``root``; nothing is created."""
        self.root = Path(root)
        self.executions = self.root / "executions"
        self.claims = self.root / "claims"
        self.signals = self.root / "signals"
        self.keys = self.root / "keys"
        self.index = self.root / "index.sqlite3"

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
        return os.path.join(self.root, "snapshots", execution_id + ".snap")

    def ensure(self) -> None:
        """Create the directories (idempotent)."""
        for d in (self.executions, self.claims, self.signals, self.keys):
            d.mkdir(parents=True, exist_ok=True)
