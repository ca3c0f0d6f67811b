"""Durability modes, after SQLite's ``synchronous`` setting."""

from __future__ import annotations

import enum

__all__ = ["Durability"]


class Durability(enum.Enum):
    """When the log is made durable with ``fsync``.

    Every mode hands each record to the kernel with ``write`` before the next step starts, so a process that
    is killed (SIGKILL, OOM, a crash) loses nothing in any mode. The modes differ only in what an operating
    system crash or power loss can take:

    * ``FULL`` (default): ``fsync`` after every append, and of the directory when a log is created. A power
      loss loses at most a record whose append had not returned.
    * ``NORMAL``: ``fsync`` only at barriers: before a tool body runs (its intent), when the execution
      suspends or ends, and when a log is created. A power loss can lose the model responses and tool
      results written since the last barrier: a lost model response is asked for again (and paid for again),
      a lost tool result leaves its call in doubt, which is retried with the same idempotency key.
    * ``OFF``: never ``fsync``. A power loss can lose anything the kernel had not written back, including a
      tool's intent, so a tool may run again after a power loss. Process crashes still lose nothing.
    """

    FULL = "full"
    NORMAL = "normal"
    OFF = "off"
