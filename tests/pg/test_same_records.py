"""The same records in both stores: payload bytes and checksums identical to the file store's frames.

And whole agent runs on PostgreSQL in real processes: a worker SIGKILLed inside a tool, then resumed by a fresh
process, runs no completed call again and retries the one in doubt with the same idempotency key.
"""

from __future__ import annotations

import signal
import struct
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from delite import Agent, DataDir, ScriptedProvider
from delite.errors import ExecutionIdConflictError, LogCorruptError
from delite.log._framing import HEADER
from delite.log.records import (
    ExecutionCompleted,
    ExecutionStarted,
    ModelResponded,
    Record,
    RecordedToolCall,
    ToolFinished,
    ToolStarted,
)
from delite.store import FileStore, StoredPayload
from delite.store._postgres import PostgresStore

WORKER = str(Path(__file__).with_name("pg_worker.py"))
RECORDS: list[Record] = [
    ExecutionStarted(at=1.0, execution_id="e1", input="héllo \u2603", metadata={"thread": "t1", "n": [1, 2.5]}),
    ModelResponded(at=2.0, step=1, tool_calls=[RecordedToolCall(id="c1.0", name="t", arguments={"x": 1})]),
    ToolStarted(at=3.0, call_id="c1.0", idempotency_key="e1:c1.0"),
    ToolFinished(at=4.0, call_id="c1.0", result={"ok": True, "text": "\u00e9\u0000"}),
    ModelResponded(at=5.0, step=2, content="done"),
    ExecutionCompleted(at=6.0, answer="done"),
]


@pytest.fixture
def pg(pg_url: str) -> Iterator[PostgresStore]:
    s = PostgresStore(pg_url)
    yield s
    s.close()


def frames(log: Path) -> list[tuple[bytes, int]]:
    """The payloads and payload checksums of a log file's frames, read straight from its bytes."""
    data = log.read_bytes()
    pos, out = len(HEADER), []
    while pos < len(data):
        length, _length_crc, payload_crc = struct.unpack_from("<III", data, pos)
        pos += 12
        out.append((data[pos : pos + length], payload_crc))
        pos += length
    return out


def write(store: FileStore | PostgresStore) -> None:
    with store.claim("e1", create=RECORDS[:1]) as log:
        log.append(RECORDS[1:3], expected=1, barrier=True)
        log.append(RECORDS[3:], expected=3)


def test_payloads_and_checksums_are_the_file_stores_frames(tmp_path: Path, pg: PostgresStore) -> None:
    files = FileStore(tmp_path / "data")
    write(files)
    write(pg)
    on_disk = frames(tmp_path / "data" / "executions" / "e1.log")
    stored = pg.read_payloads("e1")
    assert [(p.payload, p.crc) for p in stored] == on_disk
    assert [p.seq for p in stored] == list(range(1, len(RECORDS) + 1))
    assert pg.read("e1").records == files.read("e1").records == RECORDS


def test_copies_both_ways_keep_every_byte(tmp_path: Path, pg: PostgresStore) -> None:
    files = FileStore(tmp_path / "data")
    write(files)
    payloads = files.read_payloads("e1")
    pg.create_payloads("e1", payloads)
    assert pg.read_payloads("e1") == payloads
    back = FileStore(tmp_path / "back")
    back.create_payloads("e1", pg.read_payloads("e1"))
    assert frames(tmp_path / "back" / "executions" / "e1.log") == frames(tmp_path / "data" / "executions" / "e1.log")
    with pytest.raises(ExecutionIdConflictError):  # never over an existing execution
        pg.create_payloads("e1", payloads)
    spoiled = [*payloads[:2], StoredPayload(3, payloads[2].payload, payloads[2].crc ^ 1), *payloads[3:]]
    with pytest.raises(LogCorruptError):
        pg.create_payloads("e2", spoiled)
    assert not pg.exists("e2")  # verified before anything was written
    summary = DataDir(pg).list().items[0]
    assert summary.status == "completed" and summary.metadata == {"thread": "t1", "n": [1, 2.5]}


def run_worker(url: str, ledger: Path, mode: str, k: int) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, WORKER, "run", url, str(ledger), "job", "3", mode, str(k)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize(("mode", "k"), [("tool-after", 2), ("tool-before", 3)])
def test_an_agent_killed_in_a_tool_resumes_in_another_process(
    tmp_path: Path, pg_url: str, pg: PostgresStore, mode: str, k: int
) -> None:
    ledger = tmp_path / "ledger.txt"
    killed = run_worker(pg_url, ledger, mode, k)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    deadline = time.monotonic() + 2
    while pg.is_claimed("job"):  # the claim dies with the process (its server session ends a moment later)
        assert time.monotonic() < deadline, "the dead worker's claim outlived it"
        time.sleep(0.01)
    assert [s.id for s in pg.runnable()] == ["job"]  # running, nobody holds it: work for any worker
    assert [s.id for s in pg.recoverable()] == ["job"]
    resumed = run_worker(pg_url, ledger, "none", 0)
    assert resumed.returncode == 0, resumed.stderr
    assert resumed.stdout.strip() == "step 0 ok; step 1 ok; step 2 ok"
    lines = ledger.read_text().splitlines()
    keys = Counter(line.split()[0] for line in lines)
    assert len(keys) == 3
    if mode == "tool-after":  # the killed call had its effect; its retry carries the same key (attempt 2)
        assert sorted(keys.values()) == [1, 1, 2]
        assert sorted(line.split()[1] for line in lines) == ["1", "1", "1", "2"]
    else:  # killed before the effect: every call's effect exactly once
        assert sorted(keys.values()) == [1, 1, 1]
    records = pg.read("job").records
    finished = [r.call_id for r in records if isinstance(r, ToolFinished)]
    assert len(finished) == len(set(finished)) == 3  # no completed call ran again
    assert pg.runnable() == [] and pg.recoverable() == []
    assert pg.list_executions(status="completed").total == 1


def test_an_agent_on_postgres_answers_like_one_on_files(tmp_path: Path, pg: PostgresStore) -> None:
    on_files = Agent(tmp_path / "data", provider=ScriptedProvider(["hi there"])).run("hello", execution_id="g1")
    on_pg = Agent(store=pg, provider=ScriptedProvider(["hi there"])).run("hello", execution_id="g1")
    assert (on_pg.answer, on_pg.status) == (on_files.answer, on_files.status)
    assert [type(r) for r in pg.read("g1").records] == [
        type(r) for r in FileStore(tmp_path / "data").read("g1").records
    ]


def test_a_claim_keeps_the_listing_summary_it_leaves(tmp_path: Path, pg_url: str, pg: PostgresStore) -> None:
    import msgspec
    import psycopg

    from delite.store import ExecutionSummary, summarize

    Agent(store=pg, provider=ScriptedProvider(["hi there"]), agent_id="greeter").run("hello", execution_id="g1")
    with psycopg.connect(pg_url) as conn:
        row = conn.execute("SELECT summary, summary_head, head_seq FROM executions WHERE id = 'g1'").fetchone()
    assert row is not None and row[1] == row[2] == 3  # kept at release, for the head it was made at
    kept = msgspec.json.decode(bytes(row[0]), type=ExecutionSummary)
    assert kept == summarize("g1", pg.read("g1").records)  # exactly what a listing would derive
    assert pg.list_executions(agent="greeter").items == [kept]
