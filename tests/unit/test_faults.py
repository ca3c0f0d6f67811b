"""Fault injection at the write path: the OS calls under ``delite.log._os`` fail the way disks fail.

Only the ``os`` module that ``delite.log._os`` sees is replaced, so nothing else in the process is touched.
Every fault must surface as a :class:`StoreError` naming the log, leave a log that reads cleanly with nothing
after its last complete record, and leave an execution that a fresh agent finishes with the same answer and
without running a completed tool call again.
"""

from __future__ import annotations

import collections
import errno
import os
from pathlib import Path
from typing import Any

import pytest

from delite import Agent, ScriptedProvider, current_call, tool
from delite.errors import StoreError
from delite.log import Durability, LogWriter, read_log
from delite.log import _os as log_os
from delite.log import _writer as log_writer
from delite.log.records import ExecutionStarted, ToolFinished, ToolStarted

STEPS = 3
TEXT = "do the steps"
EID = "job"


class FaultyOS:
    """The ``os`` module as ``delite.log._os`` sees it, with ``write`` and ``fsync`` under a test's control."""

    def __init__(
        self,
        *,
        byte_budget: int | None = None,
        budget_errno: int = errno.ENOSPC,
        fail_write: int | None = None,
        fail_fsync: int | None = None,
        max_chunk: int | None = None,
    ) -> None:
        self.byte_budget = byte_budget  # the disk takes this many bytes in all, then fails
        self.budget_errno = budget_errno
        self.fail_write = fail_write  # the n-th os.write raises EIO, writing nothing
        self.fail_fsync = fail_fsync  # the n-th fsync raises EIO
        self.max_chunk = max_chunk  # every write is short: at most this many bytes
        self.writes = 0
        self.fsyncs = 0
        self.written = 0
        self.failed = False

    def __getattr__(self, name: str) -> Any:
        return getattr(os, name)

    def write(self, fd: int, data: Any) -> int:
        self.writes += 1
        if self.writes == self.fail_write:
            self.failed = True
            raise OSError(errno.EIO, os.strerror(errno.EIO))
        chunk = bytes(data)
        if self.max_chunk is not None:
            chunk = chunk[: self.max_chunk]
        if self.byte_budget is not None:
            room = self.byte_budget - self.written
            if room <= 0:
                self.failed = True
                raise OSError(self.budget_errno, os.strerror(self.budget_errno))
            chunk = chunk[:room]  # a short write: the loop in write_all comes back for the rest
        n = os.write(fd, chunk)
        self.written += n
        return n

    def fsync(self, fd: int) -> None:
        self.fsyncs += 1
        if self.fsyncs == self.fail_fsync:
            self.failed = True
            raise OSError(errno.EIO, os.strerror(errno.EIO))
        os.fsync(fd)


def make_agent(data_dir: Path, runs: collections.Counter[str], durability: str = "full") -> Agent:
    @tool
    def step(i: int) -> str:
        """One step with a side effect."""
        ctx = current_call()
        runs[ctx.idempotency_key] += 1
        return f"step {i} ok (attempt {ctx.attempt})"

    def answer(messages: list[dict[str, Any]]) -> str:
        return "; ".join(m["content"].split(" (")[0] for m in messages if m["role"] == "tool")

    provider = ScriptedProvider.tool_loop(STEPS, "step", answer=answer)
    return Agent(data_dir, provider=provider, tools=[step], durability=durability)


EXPECTED = "; ".join(f"step {i} ok" for i in range(STEPS))


def signature(records: list[Any]) -> list[tuple[str, Any]]:
    """The records of a run without their timings, to compare a prefix with an uninterrupted run."""
    return [(type(r).__name__, getattr(r, "call_id", getattr(r, "step", None))) for r in records]


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[tuple[str, Any]], int]:
    """An uninterrupted run: its record signature and how many bytes it wrote."""
    data_dir = tmp_path_factory.mktemp("reference")
    runs: collections.Counter[str] = collections.Counter()
    with make_agent(data_dir, runs) as agent:
        response = agent.run(TEXT, execution_id=EID)
    assert str(response) == EXPECTED
    path = data_dir / "executions" / f"{EID}.log"
    return signature(read_log(str(path)).records), path.stat().st_size


def check_after_fault(data_dir: Path, error: StoreError, reference: list[tuple[str, Any]], *, resume: bool) -> None:
    log_path = data_dir / "executions" / f"{EID}.log"
    assert error.path == str(log_path)
    assert isinstance(error, OSError)
    if log_path.exists():
        contents = read_log(str(log_path))
        assert contents.torn is None
        assert contents.end == log_path.stat().st_size  # nothing after the last good record
        assert signature(contents.records) == reference[: len(contents.records)]
        finished_before = {r.call_id for r in contents.records if isinstance(r, ToolFinished)}
    else:
        finished_before = set()

    runs: collections.Counter[str] = collections.Counter()
    with make_agent(data_dir, runs) as agent:
        assert not agent.store.is_claimed(EID)
        response = agent.resume(EID) if resume and log_path.exists() else agent.run(TEXT, execution_id=EID)
    assert response.status == "completed"
    assert str(response) == EXPECTED
    after = read_log(str(log_path))
    assert after.torn is None
    finished = collections.Counter(r.call_id for r in after.records if isinstance(r, ToolFinished))
    assert len(finished) == STEPS
    assert set(finished.values()) == {1}
    for key in runs:
        assert key.split(":", 1)[1] not in finished_before, f"{key} had a recorded result but ran again"
    # A call whose intent was durable but whose result was not is retried once, with the same key.
    for r in after.records:
        if isinstance(r, ToolStarted) and r.attempt > 1:
            assert r.idempotency_key == f"{EID}:{r.call_id}"


def run_with_faults(data_dir: Path, faulty: FaultyOS, monkeypatch: pytest.MonkeyPatch) -> StoreError:
    runs: collections.Counter[str] = collections.Counter()
    monkeypatch.setattr(log_os, "os", faulty)
    try:
        with make_agent(data_dir, runs) as agent, pytest.raises(StoreError) as info:
            agent.run(TEXT, execution_id=EID)
    finally:
        monkeypatch.undo()
    assert faulty.failed
    return info.value


def test_short_writes_are_completed_by_the_write_loop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, reference: tuple[list[Any], int]
) -> None:
    monkeypatch.setattr(log_os, "os", FaultyOS(max_chunk=7))
    runs: collections.Counter[str] = collections.Counter()
    with make_agent(tmp_path, runs) as agent:
        assert str(agent.run(TEXT, execution_id=EID)) == EXPECTED
    contents = read_log(str(tmp_path / "executions" / f"{EID}.log"))
    assert contents.torn is None
    assert signature(contents.records) == reference[0]


def test_disk_full_after_n_bytes_at_every_offset(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, reference: tuple[list[Any], int]
) -> None:
    signature_, total = reference
    seen_messages = set()
    # Timestamps make each run's size differ by a few bytes: stop well inside the last write.
    for budget in range(0, total - 64, 23):
        data_dir = tmp_path / f"n{budget}"
        error = run_with_faults(data_dir, FaultyOS(byte_budget=budget), monkeypatch)
        assert "ENOSPC" in str(error)
        assert error.errno == errno.ENOSPC
        seen_messages.add(error.message.split(":")[0])
        check_after_fault(data_dir, error, signature_, resume=budget % 2 == 1)
    # Both a failed creation and a failed append were exercised.
    assert seen_messages == {"could not create the log", "could not append to the log"}


@pytest.mark.parametrize("k", range(1, 2 * STEPS + 3))
def test_eio_on_the_kth_write(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, reference: tuple[list[Any], int], k: int
) -> None:
    error = run_with_faults(tmp_path, FaultyOS(fail_write=k), monkeypatch)
    assert "EIO" in str(error)
    assert error.errno == errno.EIO
    check_after_fault(tmp_path, error, reference[0], resume=k % 2 == 0)


@pytest.mark.parametrize("k", range(1, 2 * STEPS + 4))
def test_eio_on_the_kth_fsync(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, reference: tuple[list[Any], int], k: int
) -> None:
    # fsync 1 is the new log's, 2 its directory's, then one per append (durability "full").
    error = run_with_faults(tmp_path, FaultyOS(fail_fsync=k), monkeypatch)
    assert "EIO" in str(error)
    assert error.errno == errno.EIO
    assert "sync" in str(error) or "create" in str(error)
    check_after_fault(tmp_path, error, reference[0], resume=k % 2 == 0)


def test_failed_rollback_leaves_a_torn_tail_that_the_next_claim_repairs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, reference: tuple[list[Any], int]
) -> None:
    class NoTruncate:
        def __getattr__(self, name: str) -> Any:
            return getattr(os, name)

        def ftruncate(self, fd: int, size: int) -> None:
            raise OSError(errno.EIO, os.strerror(errno.EIO))

    signature_, total = reference
    monkeypatch.setattr(log_writer, "os", NoTruncate())
    error = run_with_faults(tmp_path, FaultyOS(byte_budget=total // 2), monkeypatch)
    log_path = tmp_path / "executions" / f"{EID}.log"
    contents = read_log(str(log_path))
    assert contents.torn is not None  # the partial frame the writer could not cut off
    assert contents.end < log_path.stat().st_size
    assert signature(contents.records) == signature_[: len(contents.records)]
    check_after_torn = read_log(str(log_path))
    assert check_after_torn.torn == contents.torn
    # The next claim cuts the torn tail; after that the execution finishes as usual.
    runs: collections.Counter[str] = collections.Counter()
    with make_agent(tmp_path, runs) as agent:
        assert str(agent.resume(EID)) == EXPECTED
    assert read_log(str(log_path)).torn is None
    assert "ENOSPC" in str(error)


def test_writer_is_closed_after_a_failed_rollback(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = str(tmp_path / "x.log")
    writer = LogWriter.create(path, Durability.OFF, [ExecutionStarted(execution_id="x")])
    size = writer.size

    class NoTruncate:
        def __getattr__(self, name: str) -> Any:
            return getattr(os, name)

        def ftruncate(self, fd: int, size: int) -> None:
            raise OSError(errno.EIO, os.strerror(errno.EIO))

    monkeypatch.setattr(log_writer, "os", NoTruncate())
    monkeypatch.setattr(log_os, "os", FaultyOS(byte_budget=5))
    with pytest.raises(StoreError, match="ENOSPC"):
        writer.append([ToolStarted(call_id="c")])
    monkeypatch.undo()
    # It must not append after the partial frame it could not remove: that would bury a torn tail as damage.
    with pytest.raises(StoreError, match="closed after an earlier failure"):
        writer.append([ToolStarted(call_id="c")])
    writer.close()
    contents = read_log(path)
    assert contents.end == size
    assert contents.torn is not None


def test_interrupt_in_the_middle_of_a_write_rolls_back(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = str(tmp_path / "x.log")
    writer = LogWriter.create(path, Durability.OFF, [ExecutionStarted(execution_id="x")])
    size = writer.size
    real_write = log_os.write_all

    def interrupted(fd: int, data: bytes) -> None:
        real_write(fd, data[:9])
        raise KeyboardInterrupt

    monkeypatch.setattr(log_os, "write_all", interrupted)
    with pytest.raises(KeyboardInterrupt):
        writer.append([ToolStarted(call_id="c")])
    monkeypatch.undo()
    assert os.path.getsize(path) == size  # the partial frame is gone
    writer.append([ToolStarted(call_id="d")])
    writer.close()
    contents = read_log(path)
    assert contents.torn is None
    assert [type(r).__name__ for r in contents.records] == ["ExecutionStarted", "ToolStarted"]
    assert contents.records[-1].call_id == "d"  # type: ignore[union-attr]


def test_eio_on_the_sync_at_close_is_a_store_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = str(tmp_path / "x.log")
    writer = LogWriter.create(path, Durability.NORMAL, [ExecutionStarted(execution_id="x")])
    writer.append([ToolStarted(call_id="c")])  # not a barrier: synced later, at the latest on close
    monkeypatch.setattr(log_os, "os", FaultyOS(fail_fsync=1))
    with pytest.raises(StoreError, match="EIO") as info:
        writer.close()
    assert info.value.path == path
    monkeypatch.undo()
    writer.close()  # closed already: nothing more to do
    assert read_log(path).records[-1] == ToolStarted(call_id="c")


class ErrnoOS(FaultyOS):
    """:class:`FaultyOS` whose failing ``write`` or ``fsync`` raises a chosen errno (ENOSPC as well as EIO)."""

    def __init__(self, errno_: int, **faults: Any) -> None:
        super().__init__(**faults)
        self.errno_ = errno_

    def write(self, fd: int, data: Any) -> int:
        if self.writes + 1 == self.fail_write:
            self.writes += 1
            self.failed = True
            raise OSError(self.errno_, os.strerror(self.errno_))
        return super().write(fd, data)

    def fsync(self, fd: int) -> None:
        if self.fsyncs + 1 == self.fail_fsync:
            self.fsyncs += 1
            self.failed = True
            raise OSError(self.errno_, os.strerror(self.errno_))
        super().fsync(fd)


@pytest.mark.parametrize("k", [1, 2, 4, 2 * STEPS + 2])
def test_enospc_on_the_kth_write(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, reference: tuple[list[Any], int], k: int
) -> None:
    error = run_with_faults(tmp_path, ErrnoOS(errno.ENOSPC, fail_write=k), monkeypatch)
    assert error.errno == errno.ENOSPC
    assert "ENOSPC" in str(error)
    check_after_fault(tmp_path, error, reference[0], resume=k % 2 == 0)


@pytest.mark.parametrize("k", [1, 2, 3, 5, 2 * STEPS + 3])
def test_enospc_on_the_kth_fsync(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, reference: tuple[list[Any], int], k: int
) -> None:
    # Some file systems report a full disk only when delayed allocation runs, at fsync.
    error = run_with_faults(tmp_path, ErrnoOS(errno.ENOSPC, fail_fsync=k), monkeypatch)
    assert error.errno == errno.ENOSPC
    assert "ENOSPC" in str(error)
    check_after_fault(tmp_path, error, reference[0], resume=k % 2 == 1)


def test_eio_after_n_bytes_with_short_writes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, reference: tuple[list[Any], int]
) -> None:
    """Every write is short (at most 5 bytes), and the disk fails with EIO after N bytes, at many N."""
    signature_, total = reference
    for budget in range(3, total - 64, 41):
        data_dir = tmp_path / f"n{budget}"
        faulty = FaultyOS(byte_budget=budget, budget_errno=errno.EIO, max_chunk=5)
        error = run_with_faults(data_dir, faulty, monkeypatch)
        assert error.errno == errno.EIO
        assert faulty.written == budget  # the short writes went through up to the failure
        check_after_fault(data_dir, error, signature_, resume=True)


@pytest.mark.parametrize("durability", ["normal", "off"])
def test_faults_in_the_other_durability_modes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, reference: tuple[list[Any], int], durability: str
) -> None:
    """The failure contract does not depend on the mode: in ``normal`` the failing fsync is a barrier's."""
    signature_, total = reference
    cases: list[FaultyOS] = [FaultyOS(byte_budget=total // 3), ErrnoOS(errno.EIO, fail_write=3)]
    if durability == "normal":
        cases.append(ErrnoOS(errno.ENOSPC, fail_fsync=3))
    for n, faulty in enumerate(cases):
        data_dir = tmp_path / f"case{n}"
        runs: collections.Counter[str] = collections.Counter()
        monkeypatch.setattr(log_os, "os", faulty)
        try:
            with make_agent(data_dir, runs, durability) as agent, pytest.raises(StoreError) as info:
                agent.run(TEXT, execution_id=EID)
        finally:
            monkeypatch.undo()
        assert faulty.failed
        assert info.value.errno in (errno.EIO, errno.ENOSPC)
        check_after_fault(data_dir, info.value, signature_, resume=True)
