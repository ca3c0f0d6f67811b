"""The multi-agent runtime: many executions advancing at once in one process, resumed after a crash."""

from __future__ import annotations

from delite.runtime._runtime import Runtime

__all__ = ["Runtime"]
