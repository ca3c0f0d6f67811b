"""Run one call from several threads released at once: what each got, a return value or a refusal."""

from __future__ import annotations

import threading
from collections.abc import Callable

from delite.errors import ExecutionStateError


def race(call: Callable[[], object], threads: int = 6) -> list[object]:
    """Each thread's outcome: what ``call`` returned, or the :class:`ExecutionStateError` it raised (a 409)."""
    barrier = threading.Barrier(threads)
    outcomes: list[object] = []

    def one() -> None:
        barrier.wait()
        try:
            outcomes.append(call())
        except ExecutionStateError as e:
            outcomes.append(e)

    started = [threading.Thread(target=one) for _ in range(threads)]
    for t in started:
        t.start()
    for t in started:
        t.join()
    return outcomes
