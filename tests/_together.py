"""A scripted model whose replies of one step all come back in the same turn of the event loop."""

from __future__ import annotations

import asyncio
from typing import Any

from delite import ScriptedProvider


class InStep(ScriptedProvider):
    """A ``tool_loop`` script whose model calls of a step each wait until ``runs`` executions have made theirs.

    The runs are then in flight at the same time, and their replies resume in one turn of the loop (latencies
    alone would not line them up on a loaded machine).
    """

    def __init__(self, runs: int, steps: int, tool_name: str) -> None:
        super().__init__(ScriptedProvider.tool_loop(steps, tool_name).script)
        self.runs = runs
        self.arrived: dict[int, int] = {}
        self.released: dict[int, asyncio.Event] = {}

    async def acall(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]], model: str | None) -> Any:
        """Wait for the step's other calls, then reply from the script."""
        step = len(messages)
        released = self.released.setdefault(step, asyncio.Event())
        self.arrived[step] = self.arrived.get(step, 0) + 1
        if self.arrived[step] == self.runs:
            released.set()
        await released.wait()
        return self._reply(messages, tools, model)
