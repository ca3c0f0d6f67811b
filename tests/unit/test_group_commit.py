"""Group commit in the async driver: the fsynced appends of one turn of the event loop go to the I/O threads
together, and each execution still goes on only once its own append has returned."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path
from typing import Any, Self

import pytest
from _together import InStep

from delite import Agent, DataDir, tool
from delite.engine import _aio
from delite.engine._effects import Append


class SlowLog:
    """A stand-in log whose append takes a moment (an fsync's worth) and says when it ended."""

    def __init__(self, name: str, *, fail: bool = False) -> None:
        self.name = name
        self.fail = fail
        self.appended: list[tuple[str, float, str]] = []  # (records, when it ended, thread)

    def waits(self, *, barrier: bool) -> bool:
        return True

    def append(self, records: Any, *, barrier: bool) -> None:
        time.sleep(0.002)
        if self.fail:
            raise OSError(f"disk full for {self.name}")
        self.appended.append((records, time.perf_counter(), threading.current_thread().name))


class Submits:
    """Counts the calls handed to the I/O threads while installed."""

    def __init__(self) -> None:
        self.pool = _aio.io_pool()
        self.real = self.pool.submit
        self.count = 0
        self.appends = 0  # hops that carry appends (one or a batch)

    def __enter__(self) -> Self:
        def submit(fn: Any, *args: Any) -> None:
            self.count += 1
            jobs = args[0] if args and isinstance(args[0], list) else [args[0]] if args else []
            if any(getattr(job, "fn", None) is _aio._append for job in jobs):
                self.appends += 1
            self.real(fn, *args)

        self.pool.submit = submit
        return self

    def __exit__(self, *exc: object) -> None:
        self.pool.submit = self.real


def test_appends_of_one_turn_share_thread_hops_and_each_returns_after_its_own_append() -> None:
    logs = [SlowLog(f"log{i}") for i in range(100)]
    returned: dict[str, float] = {}

    async def one(log: SlowLog) -> None:
        await _aio._commit(Append(log, [f"r-{log.name}"], barrier=True))  # type: ignore[arg-type]
        returned[log.name] = time.perf_counter()

    async def main() -> None:
        await asyncio.gather(*(one(log) for log in logs))

    with Submits() as submits:
        asyncio.run(main())
    assert submits.count <= _aio.IO_THREADS  # 100 appends, one turn of the loop: at most one hop per batch
    for log in logs:
        assert len(log.appended) == 1
        records, ended, thread = log.appended[0]
        assert records == [f"r-{log.name}"]
        assert thread.startswith("delite-io")  # never on the event loop
        assert returned[log.name] >= ended  # the caller went on only once its append had returned


def test_a_failed_append_fails_only_its_own_caller() -> None:
    good = [SlowLog(f"ok{i}") for i in range(5)]
    bad = SlowLog("bad", fail=True)

    async def main() -> list[Any]:
        effects = [Append(log, ["r"], barrier=True) for log in [*good, bad]]  # type: ignore[arg-type]
        return await asyncio.gather(*(_aio._commit(e) for e in effects), return_exceptions=True)

    outcomes = asyncio.run(main())
    assert outcomes[:5] == [None] * 5
    assert isinstance(outcomes[5], OSError) and "bad" in str(outcomes[5])
    assert all(len(log.appended) == 1 for log in good)


def test_a_caller_cancelled_while_its_append_is_queued_waits_for_the_append() -> None:
    log = SlowLog("cancelled")

    async def main() -> None:
        task = asyncio.ensure_future(_aio._commit(Append(log, ["r"], barrier=True)))  # type: ignore[arg-type]
        await asyncio.sleep(0)  # queued for this turn's hand-over, not yet run
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert len(log.appended) == 1  # the append ran to its end before the caller stopped

    asyncio.run(main())


@tool
def step(i: int) -> str:
    """A trivial tool."""
    return f"s{i}"


def test_many_executions_in_full_mode_hop_less_than_once_per_append(tmp_path: Path) -> None:
    n, steps = 40, 3
    real_append = _aio._append
    appends = 0

    def counted(effect: Append) -> None:
        nonlocal appends
        appends += 1
        real_append(effect)

    async def main() -> list[str | None]:
        agent = Agent(tmp_path, provider=InStep(n, steps, "step"), tools=[step])
        responses = await asyncio.gather(*(agent.arun("go") for _ in range(n)))
        return [r.answer for r in responses]

    _aio._append = counted
    try:
        with Submits() as submits:
            answers = asyncio.run(main())
    finally:
        _aio._append = real_append
    assert answers == ["done"] * n
    assert appends >= n * steps  # full mode: every append fsyncs, in the I/O threads
    assert 0 < submits.appends < appends  # appends of the same turn shared their hops
    assert submits.appends <= appends - (steps + 1) * (n - _aio.IO_THREADS)  # each model reply's n appends: a few hops
    report = DataDir(tmp_path).health()
    assert report.healthy and report.logs == n
