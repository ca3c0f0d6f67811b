"""The multi-agent runtime: many executions advancing at once in one process, resumed after a crash.

:meth:`Runtime.work` makes it a worker that takes on the runnable executions of its agents (see
:class:`WorkEvent` and :class:`WorkReport` for what it reports).
"""

from __future__ import annotations

from delite.runtime._runtime import Runtime
from delite.runtime._worker import WorkEvent, WorkReport

__all__ = ["Runtime", "WorkEvent", "WorkReport"]
