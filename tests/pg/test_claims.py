"""Claims on PostgreSQL: advisory locks that die with their owner, the owner-epoch fence, keepalives.

Every test runs against a real server (the session's throwaway cluster) and real processes; nothing is mocked.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from delite import DataDir
from delite.errors import (
    ClaimLostError,
    ClaimTimeoutError,
    ExecutionAlreadyClaimedError,
    ExecutionStateError,
    LogCorruptError,
    UsageError,
)
from delite.log.records import ExecutionStarted, ModelResponded, Record, RecordedToolCall, ToolStarted
from delite.store._postgres import PostgresStore

WORKER = str(Path(__file__).with_name("pg_worker.py"))

STEP: list[Record] = [
    ModelResponded(at=2.0, step=1, tool_calls=[RecordedToolCall(id="c1.0", name="t", arguments={"x": 1})]),
    ToolStarted(at=3.0, call_id="c1.0", idempotency_key="e:c1.0"),
]


def started(eid: str) -> ExecutionStarted:
    return ExecutionStarted(at=1.0, execution_id=eid, input="hello")


@pytest.fixture
def store(pg_url: str) -> Iterator[PostgresStore]:
    s = PostgresStore(pg_url)
    yield s
    s.close()


@pytest.fixture
def other(pg_url: str) -> Iterator[PostgresStore]:
    s = PostgresStore(pg_url)
    yield s
    s.close()


def terminate(url: str, pid: int) -> None:
    """End a server session as an administrator (or a dead network) would."""
    with psycopg.connect(url, autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
        deadline = time.monotonic() + 10
        while admin.execute("SELECT 1 FROM pg_stat_activity WHERE pid = %s", (pid,)).fetchone() is not None:
            assert time.monotonic() < deadline, "the session did not end"
            time.sleep(0.02)


def test_a_zombie_whose_session_was_terminated_cannot_append(
    store: PostgresStore, other: PostgresStore, pg_url: str
) -> None:
    store.create("e1", [started("e1")])
    zombie = store.claim("e1")
    terminate(pg_url, store.claim_pid)  # its lock is gone with its session
    assert not other.is_claimed("e1")
    with other.claim("e1") as log:  # taken over at once
        log.append(STEP, expected=1)
    with pytest.raises(ClaimLostError) as info:
        zombie.append([ModelResponded(at=9.0, step=1, content="late")], expected=1)
    assert isinstance(info.value, ExecutionStateError) and info.value.http_status == 409
    assert "nothing was written" in str(info.value)
    assert store.read("e1").records == [started("e1"), *STEP]  # nothing of the zombie's
    with pytest.raises(UsageError):  # the lost claim counts as released
        zombie.append(STEP, expected=3)
    zombie.release()
    with store.claim("e1") as log:  # the store reconnects its claim connection for new claims
        assert log.head == 3


def test_a_lost_session_is_noticed_before_anything_is_written(store: PostgresStore, pg_url: str) -> None:
    with store.claim("e1", create=[started("e1")]) as log:
        terminate(pg_url, store.claim_pid)
        with pytest.raises(ClaimLostError, match="connection"):
            log.append(STEP, expected=1)
    assert store.read("e1").records == [started("e1")]


def test_the_epoch_fences_a_writer_whose_claim_was_taken_over(store: PostgresStore, pg_url: str) -> None:
    """The database's own fence: a takeover bumps the epoch, and the old writer's append moves nothing."""
    with store.claim("e1", create=[started("e1")]) as log:
        epoch = log.epoch
        with psycopg.connect(pg_url, autocommit=True) as conn:  # what another worker's claim does to the row
            conn.execute("UPDATE executions SET owner_epoch = owner_epoch + 1 WHERE id = 'e1'")
        with pytest.raises(ClaimLostError, match="another worker took the execution over"):
            log.append(STEP, expected=1)
    assert store.read("e1").records == [started("e1")]
    with store.claim("e1") as log:
        assert log.epoch == epoch + 2  # every claim bumps it
        log.append(STEP, expected=1)
    assert store.head("e1") == 3


def test_a_claim_dies_with_its_process(store: PostgresStore, pg_url: str) -> None:
    store.create("e1", [started("e1")])
    holder = subprocess.Popen(
        [sys.executable, WORKER, "hold", pg_url, "e1"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None
        line = holder.stdout.readline()
        assert line.startswith("claimed"), holder.stderr.read() if holder.stderr else line
        assert store.is_claimed("e1")
        with pytest.raises(ExecutionAlreadyClaimedError):
            store.claim("e1")
        assert store.runnable() == []
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=10)
        killed = time.monotonic()
        with store.claim("e1", timeout=5) as log:  # the server dropped the lock with the session
            assert time.monotonic() - killed < 2
            assert log.head == 1
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()
        for pipe in (holder.stdout, holder.stderr):
            if pipe is not None:
                pipe.close()


def test_one_claim_per_execution_within_one_store(store: PostgresStore) -> None:
    """Advisory locks are re-entrant in a session: the store itself keeps a second thread out."""
    store.create("e1", [started("e1")])
    log = store.claim("e1")
    with pytest.raises(ExecutionAlreadyClaimedError):
        store.claim("e1")
    got: list[int] = []

    def wait_for_it() -> None:
        with store.claim("e1", timeout=10) as mine:
            got.append(mine.head)

    t = threading.Thread(target=wait_for_it)
    t.start()
    time.sleep(0.2)
    log.append(STEP, expected=1)
    log.release()
    t.join()
    assert got == [3]


def test_a_claim_timeout(store: PostgresStore, other: PostgresStore) -> None:
    store.create("e1", [started("e1")])
    with store.claim("e1"):
        t0 = time.monotonic()
        with pytest.raises(ClaimTimeoutError):
            other.claim("e1", timeout=0.3)
        assert 0.3 <= time.monotonic() - t0 < 3


def test_keepalives_are_set_on_both_ends_of_the_claim_connection(store: PostgresStore, pg_url: str) -> None:
    assert store.claim_setting("tcp_keepalives_idle") == "5"
    assert store.claim_setting("tcp_keepalives_interval") == "2"
    assert store.claim_setting("tcp_keepalives_count") == "3"
    assert store.claim_setting("tcp_user_timeout") == "15000"  # milliseconds
    tuned = PostgresStore(pg_url + "?keepalives_idle=7&keepalives_count=4", keepalives_interval=1)
    try:
        assert tuned.claim_setting("tcp_keepalives_idle") == "7"  # from the URL
        assert tuned.claim_setting("tcp_keepalives_interval") == "1"  # from the argument
        assert tuned.claim_setting("tcp_keepalives_count") == "4"
    finally:
        tuned.close()
    with pytest.raises(UsageError):
        PostgresStore(pg_url, keepalives_idle=-1)
    with pytest.raises(UsageError):
        PostgresStore(pg_url + "?keepalives_count=often")


def test_every_read_verifies_the_checksums(store: PostgresStore, pg_url: str) -> None:
    with store.claim("e1", create=[started("e1")]) as log:
        log.append(STEP, expected=1)
    with psycopg.connect(pg_url, autocommit=True) as conn:  # one flipped byte, behind the store's back
        conn.execute(
            "UPDATE records SET payload = overlay(payload placing '\\x58'::bytea from 3 for 1) "
            "WHERE execution_id = 'e1' AND seq = 2"
        )
    with pytest.raises(LogCorruptError, match="record 2 does not match its checksum") as info:
        store.read("e1")
    assert "e1" in str(info.value)
    assert store.read("e1", limit=1).records == [started("e1")]  # the range before it reads
    with pytest.raises(LogCorruptError):
        store.claim("e1")
    with pytest.raises(LogCorruptError):
        store.read_payloads("e1")
    assert not store.is_claimed("e1")  # the failed claim let go
    report = DataDir(store).health()  # listings keep derived summaries; health reads every record
    assert not report.healthy
    assert [(p.kind, p.execution_id) for p in report.problems if p.severity == "error"] == [("corrupt", "e1")]


def test_a_released_advanceable_execution_wakes_a_listener(store: PostgresStore, other: PostgresStore) -> None:
    other.listen()
    assert other.wait_for_work(0.05) is False
    store.create("e1", [started("e1")])  # a running execution nobody holds: work
    assert other.wait_for_work(5) is True
    with store.claim("e1") as log:
        log.append(STEP, expected=1)
    assert other.wait_for_work(5) is True  # let go while still advanceable
    assert [s.id for s in other.runnable()] == ["e1"]


@pytest.mark.parametrize("durability", ["normal", "off"])
def test_appends_without_a_synchronous_commit_are_fenced_the_same(pg_url: str, durability: str) -> None:
    store = PostgresStore(pg_url, durability=durability)
    try:
        with store.claim("e1", create=[started("e1")]) as log:
            log.append(STEP[:1], expected=1)  # not a barrier: committed with synchronous_commit off
            log.append(STEP[1:], expected=2, barrier=True)
            with psycopg.connect(pg_url, autocommit=True) as conn:
                conn.execute("UPDATE executions SET owner_epoch = owner_epoch + 1 WHERE id = 'e1'")
            with pytest.raises(ClaimLostError):
                log.append([ModelResponded(at=9.0, step=2, content="late")], expected=3)
        assert store.read("e1").records == [started("e1"), *STEP]
    finally:
        store.close()


def test_a_database_restart_loses_claims_and_the_store_reconnects(store: PostgresStore, pg_server: object) -> None:
    log = store.claim("e1", create=[started("e1")])
    pg_server.restart()  # type: ignore[attr-defined] - tests/_pg.PgServer
    with pytest.raises(ClaimLostError):  # the lock went with the old session: nothing may be written
        log.append(STEP, expected=1)
    assert store.read("e1").records == [started("e1")]  # the pool reconnects for reads
    assert [s.id for s in store.runnable()] == ["e1"]  # left running with no owner: work, not stranded
    with store.claim("e1") as again:  # and the claim connection for claims
        again.append(STEP, expected=1)
    assert store.head("e1") == 3


def test_a_short_outage_is_ridden_through(store: PostgresStore, pg_server: object) -> None:
    store.create("e1", [started("e1")])
    pg_server.stop()  # type: ignore[attr-defined]
    back = threading.Timer(1.0, pg_server.start)  # type: ignore[attr-defined]
    back.start()
    try:
        assert store.read("e1").head == 1  # waits for the pool to reconnect
    finally:
        back.join()
    with store.claim("e1") as log:  # a new claim connection
        log.append(STEP, expected=1)
    assert store.read("e1").head == 3
