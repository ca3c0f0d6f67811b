"""delite.DataDir: the listing index is derived, versioned and never trusted over the logs; fork; follow.

What DataDir does through the store seam (list, resolve, views, fork, follow, health of records) runs on a
data directory and on a MemoryStore (the ``target`` and ``blank`` fixtures); the SQLite index, snapshots,
torn tails and the bytes of log files are the file store's, and their tests use a data directory (``data``).
"""

from __future__ import annotations

import os
import sqlite3
import time
from pathlib import Path
from typing import Any

import msgspec
import pytest
from store_fixtures import ListStore

from delite import Agent, DataDir, FileStore, ScriptedProvider, tool
from delite.errors import AmbiguousExecutionIdError, ExecutionNotFoundError, LogCorruptError, UsageError
from delite.log.records import ExecutionCompleted, ExecutionResumed, ModelResponded, ToolFinished
from delite.providers import call
from delite.store import Layout, MemoryStore, Page, Store, _index, new_execution_id
from delite.store._index import DERIVATION, MIGRATIONS, TEMPLATE, ListingIndex, build_template

Where = Path | Store


@tool
def add(a: int, b: int) -> int:
    """Add."""
    return a + b


@tool(requires_confirmation=True)
def pay(amount: float) -> str:
    """Pay."""
    return f"paid {amount}"


def agent(where: Where, script: list[Any], **kw: Any) -> Agent:
    data, store = (None, where) if isinstance(where, Store) else (where, None)
    return Agent(data, store=store, provider=ScriptedProvider(script), tools=[add, pay], durability="off", **kw)


def store_of(where: Where) -> Store:
    """The store itself: the store given, or a file store on the data directory (as another process has)."""
    return where if isinstance(where, Store) else FileStore(where, durability="off")


def populate(where: Where) -> Where:
    agent(where, [call("add", a=1, b=2), "three"]).run("a", execution_id="run-a", metadata={"thread_id": "x"})
    agent(where, [call("pay", amount=3), "paid"], agent_id="payer").run("b", execution_id="run-b")
    agent(where, ["hi"]).run("c", execution_id="run-c", metadata={"thread_id": "y", "n": 1})
    return where


@pytest.fixture
def data(tmp_path: Path) -> Path:
    """A data directory with three executions (for what only a file store has)."""
    d = populate(tmp_path / "data")
    assert isinstance(d, Path)
    return d


@pytest.fixture(params=["file", "memory", "list"])
def blank(request: pytest.FixtureRequest, tmp_path: Path) -> Where:
    """An empty store: a data directory not made yet, a MemoryStore, or the toy third store of the contract
    suites (``ListStore``: records in a dict, written against the public seam only)."""
    if request.param == "file":
        return tmp_path / "data"
    return MemoryStore() if request.param == "memory" else ListStore()


@pytest.fixture
def target(blank: Where) -> Where:
    """The same three executions, in a data directory, a MemoryStore or a ListStore."""
    return populate(blank)


def rows(data: Path) -> dict[str, tuple[int, int, int]]:
    with sqlite3.connect(Layout(data).index) as conn:
        query = "SELECT id, log_size, log_mtime_ns, log_ino FROM executions"
        return {i: (s, m, n) for i, s, m, n in conn.execute(query)}


def test_list_builds_the_index_then_rereads_only_changed_logs(data: Path) -> None:
    dd = DataDir(data)
    assert [s.id for s in dd.list().items] == ["run-c", "run-b", "run-a"]
    assert set(rows(data)) == {"run-a", "run-b", "run-c"}
    index = ListingIndex.open(Layout(data))
    try:
        assert index.refresh() == 0  # nothing changed: no log is read
        agent(data, [call("pay", amount=3), "paid"], agent_id="payer").approve("run-b", "c1.0")
        assert index.refresh() == 1  # only the log that grew
    finally:
        index.close()


def test_the_index_is_never_trusted_over_the_logs(data: Path) -> None:
    dd = DataDir(data)
    assert dd.list(status="waiting_approval").total == 1
    # Make the index lie: a row that claims run-b completed, with the log's current size and mtime.
    with sqlite3.connect(Layout(data).index) as conn:
        conn.execute("UPDATE executions SET status = 'completed' WHERE id = 'run-b'")
    assert dd.list(status="waiting_approval").total == 0  # a lie that matches the stat is served...
    # ...until the log changes at all: then the row is derived again from the log.
    agent(data, [call("pay", amount=3), "paid"], agent_id="payer").approve("run-b", "c1.0")
    page = dd.list(status="waiting_approval")
    assert page.total == 1 and page.items[0].id == "run-b"


def test_a_deleted_log_leaves_the_listing(data: Path) -> None:
    dd = DataDir(data)
    assert dd.list().total == 3
    (data / "executions" / "run-a.log").unlink()
    assert [s.id for s in dd.list().items] == ["run-c", "run-b"]
    assert set(rows(data)) == {"run-b", "run-c"}


def test_migrations_are_named_and_versioned(data: Path) -> None:
    DataDir(data).list()
    with sqlite3.connect(Layout(data).index) as conn:
        names = [r[0] for r in conn.execute("SELECT name FROM _migrations ORDER BY name")]
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        derivation = conn.execute("SELECT value FROM meta WHERE key = 'derivation'").fetchone()[0]
    assert names == [name for name, _ in MIGRATIONS] == ["m001_executions", "m002_listing_order", "m003_log_inode"]
    assert version == len(MIGRATIONS) and derivation == DERIVATION


def _traced(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The SQL statements every connection opened from now on runs."""
    statements: list[str] = []
    real = sqlite3.connect

    def traced(*args: Any, **kwargs: Any) -> sqlite3.Connection:
        conn = real(*args, **kwargs)
        conn.set_trace_callback(statements.append)
        return conn

    monkeypatch.setattr(sqlite3, "connect", traced)
    return statements


def _schema(conn: sqlite3.Connection) -> tuple[Any, ...]:
    tables = sorted(conn.execute("SELECT type, name, sql FROM sqlite_master").fetchall(), key=str)
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    meta = conn.execute("SELECT key, value FROM meta ORDER BY key").fetchall()
    migrations = [r[0] for r in conn.execute("SELECT name FROM _migrations ORDER BY name")]
    rows = conn.execute("SELECT count(*) FROM executions").fetchone()[0]
    return tables, version, meta, migrations, rows


def test_the_template_is_the_index_the_migrations_make() -> None:
    """A new index starts as a copy of the packaged template: it must be what the migrations give, empty.

    After a migration is added or the derivation changes: python -c "from delite.store._index import TEMPLATE,
    build_template; open(TEMPLATE, 'wb').write(build_template())"
    """
    shipped = sqlite3.connect(":memory:")
    shipped.deserialize(Path(TEMPLATE).read_bytes())
    made = sqlite3.connect(":memory:")
    made.deserialize(build_template())
    assert _schema(shipped) == _schema(made)
    assert _schema(shipped)[1:] == (len(MIGRATIONS), [("derivation", DERIVATION)], [n for n, _ in MIGRATIONS], 0)
    assert shipped.execute("PRAGMA integrity_check").fetchone() == ("ok",)


def test_a_new_index_is_a_copy_of_the_template_and_an_open_one_is_not_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every write of an index file is a journal created and removed: making one runs none, reopening none."""
    layout = Layout(tmp_path / "d")
    os.makedirs(layout.executions)
    statements = _traced(monkeypatch)
    for _ in range(2):
        statements.clear()
        index = ListingIndex.open(layout)
        index.close()
        assert not index.in_memory
        assert "COMMIT" not in statements and not any(s.startswith("BEGIN") for s in statements), statements
    assert Path(layout.index).read_bytes() == Path(TEMPLATE).read_bytes()
    assert (os.stat(layout.index).st_mode & 0o777) == 0o600
    assert sorted(os.listdir(layout.root)) == ["executions", "index.sqlite3"]  # no temporary left


def test_without_the_template_a_new_index_is_made_in_one_transaction(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A missing template (or a file system without hard links) costs only time: SQLite makes the tables."""
    for broken in ("template", "link"):
        layout = Layout(tmp_path / broken)
        os.makedirs(layout.executions)
        with monkeypatch.context() as m:
            if broken == "template":
                m.setattr(_index, "TEMPLATE", tmp_path / "missing.sqlite3")
            else:
                m.setattr(os, "link", lambda *_: (_ for _ in ()).throw(OSError(1, "no hard links here")))
            statements = _traced(m)
            index = ListingIndex.open(layout)
            index.close()
        assert not index.in_memory
        assert statements.count("COMMIT") == 1 and len([s for s in statements if s.startswith("BEGIN")]) == 1
        with sqlite3.connect(layout.index) as conn:
            assert _schema(conn)[1:] == (len(MIGRATIONS), [("derivation", DERIVATION)], [n for n, _ in MIGRATIONS], 0)
        assert sorted(os.listdir(layout.root)) == ["executions", "index.sqlite3"]


def test_an_index_made_meanwhile_by_another_process_is_kept(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two first listings at once: the one that links second keeps the other's file and removes its own copy."""
    layout = Layout(tmp_path / "d")
    os.makedirs(layout.executions)
    real_link = os.link

    def other_first(src: str, dst: str) -> None:
        with sqlite3.connect(dst) as conn:  # the other process's index, with a row of its own
            _index._prepare(conn)
            conn.execute("INSERT INTO meta VALUES ('other', 'yes')")
        real_link(src, dst)

    monkeypatch.setattr(os, "link", other_first)
    ListingIndex.open(layout).close()
    with sqlite3.connect(layout.index) as conn:
        assert conn.execute("SELECT value FROM meta WHERE key = 'other'").fetchone() == ("yes",)
    assert sorted(os.listdir(layout.root)) == ["executions", "index.sqlite3"]


def test_an_older_index_is_migrated_in_place(data: Path) -> None:
    path = Layout(data).index
    with sqlite3.connect(path) as conn:  # the index as delite with only m001 and m002 made it
        conn.execute("CREATE TABLE _migrations (name TEXT PRIMARY KEY, applied_at REAL NOT NULL)")
        for name, statements in MIGRATIONS[:2]:
            for statement in statements:
                conn.execute(statement)
            conn.execute("INSERT INTO _migrations VALUES (?, 0)", (name,))
        conn.execute("INSERT INTO meta VALUES ('derivation', ?)", (DERIVATION,))
        conn.execute("PRAGMA user_version = 2")
    assert DataDir(data).list().total == 3
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
        assert [r[0] for r in conn.execute("SELECT name FROM _migrations ORDER BY name")][-1] == "m003_log_inode"
    assert all(ino > 0 for _, _, ino in rows(data).values())


def test_a_log_replaced_by_a_copy_is_read_again(data: Path) -> None:
    dd = DataDir(data)
    assert dd.list(status="completed").total == 2
    log = data / "executions" / "run-b.log"
    done = data / "executions" / "run-a.log"
    st = log.stat()
    replacement = data / "tmp.log.new"
    replacement.write_bytes(done.read_bytes()[: st.st_size].ljust(st.st_size, b"\0"))
    os.utime(replacement, ns=(st.st_atime_ns, st.st_mtime_ns))  # same size, same mtime: only the inode differs
    os.replace(replacement, log)
    assert rows(data)["run-b"][:2] == (log.stat().st_size, log.stat().st_mtime_ns)
    again = {s.id: s for s in dd.list().items}["run-b"]  # derived again, from the new file:
    assert again.status == "unreadable"  # a copy of another execution's log is not this execution's log
    assert "names execution 'run-a'" in (again.damage or "")


def test_a_new_derivation_rederives_every_row(data: Path) -> None:
    dd = DataDir(data)
    dd.list()
    with sqlite3.connect(Layout(data).index) as conn:
        conn.execute("UPDATE executions SET status = 'bogus'")
        conn.execute("UPDATE meta SET value = 'old' WHERE key = 'derivation'")
    assert {s.status for s in dd.list().items} == {"completed", "waiting_approval"}


def test_a_damaged_index_is_rebuilt(data: Path) -> None:
    Path(Layout(data).index).write_bytes(b"this is not a database" * 100)
    assert DataDir(data).list().total == 3
    assert set(rows(data)) == {"run-a", "run-b", "run-c"}


def test_an_index_from_a_newer_delite_is_left_alone(data: Path) -> None:
    path = Path(Layout(data).index)
    with sqlite3.connect(path) as conn:
        conn.execute(f"PRAGMA user_version = {len(MIGRATIONS) + 5}")
    before = path.read_bytes()
    assert DataDir(data).list().total == 3  # served from an in-memory index
    assert path.read_bytes() == before


def test_an_index_that_cannot_be_written_falls_back_to_memory(data: Path) -> None:
    os.mkdir(Layout(data).index)  # a directory where the file should be: sqlite cannot open it
    page = DataDir(data).list(agent="payer")
    assert [s.id for s in page.items] == ["run-b"]


def test_filters_and_paging(target: Where) -> None:
    dd = DataDir(target)
    assert [s.id for s in dd.list(metadata={"thread_id": "y", "n": 1}).items] == ["run-c"]
    assert dd.list(metadata={"n": "1"}).total == 0  # JSON equality: the number 1 is not the string "1"
    assert [s.id for s in dd.list(status=["waiting", "completed"], limit=1, offset=1).items] == ["run-b"]
    page = dd.list(limit=2)
    assert page.next_offset == 2 and dd.list(limit=2, offset=2).next_offset is None
    now = time.time()
    assert dd.list(since=now + 60).total == 0 and dd.list(until=now + 60).total == 3
    with pytest.raises(UsageError, match="unknown status 'sleeping'"):
        dd.list(status="sleeping")
    with pytest.raises(UsageError, match="quotes"):
        dd.list(metadata={'a"b': 1})


def test_listing_preview_is_cut_but_the_view_is_whole(blank: Where) -> None:
    long = "x" * 2000
    agent(blank, [long]).run(long, execution_id="long")
    item = DataDir(blank).list().items[0]
    assert len(item.input) == 500 and item.input.endswith("\u2026")
    detail = DataDir(blank).execution("long").detail
    assert detail.input == long and detail.answer == long


def test_resolve_prefixes(target: Where) -> None:
    dd = DataDir(target)
    assert dd.resolve("run-a") == "run-a"
    assert dd.resolve("RUN-C") == "run-c"
    with pytest.raises(AmbiguousExecutionIdError) as e:
        dd.resolve("run")
    assert e.value.matches == ["run-a", "run-b", "run-c"] and e.value.http_status == 400
    with pytest.raises(ExecutionNotFoundError) as missing:
        dd.resolve("zzz")
    if isinstance(target, Path):
        assert missing.value.data_dir == str(target) and str(target) in str(missing.value)
    else:
        assert missing.value.data_dir is None and str(missing.value) == "execution 'zzz' not found"


def test_resolve_by_a_unique_suffix_when_prefixes_are_shared(blank: Where) -> None:
    now = time.time()
    ids = [new_execution_id(now) for _ in range(3)]  # the same millisecond: the first 10 characters are shared
    for eid in ids:
        agent(blank, ["ok"]).run("x", execution_id=eid)
    dd = DataDir(blank)
    with pytest.raises(AmbiguousExecutionIdError) as e:
        dd.resolve(ids[0][:8])  # a prefix the README's example would suggest: never unique here
    assert sorted(e.value.matches) == sorted(ids) and "prefix or suffix" in str(e.value)
    for eid in ids:
        # The shortest suffix that names one id by resolve's own rule (a piece may match as a prefix or a suffix).
        suffix = next(
            eid[-n:] for n in range(1, 27) if sum(i.endswith(eid[-n:]) or i.startswith(eid[-n:]) for i in ids) == 1
        )
        assert dd.resolve(suffix) == eid
        assert dd.resolve(eid[-6:].lower()) == eid  # case-insensitive when nothing matches exactly
        assert dd.resolve(eid) == eid


def test_resolve_names_a_missing_data_directory(tmp_path: Path) -> None:
    with pytest.raises(ExecutionNotFoundError) as e:
        DataDir(tmp_path / "nowhere").resolve("01ABC")
    assert e.value.data_dir == str(tmp_path / "nowhere") and str(tmp_path / "nowhere") in str(e.value)
    with pytest.raises(ExecutionNotFoundError) as e:
        DataDir(tmp_path / "nowhere").execution("01ABC")
    assert str(tmp_path / "nowhere") in str(e.value)
    with pytest.raises(ExecutionNotFoundError) as e:
        FileStore(tmp_path / "nowhere").read("01ABC")
    assert str(tmp_path / "nowhere") in str(e.value)
    with pytest.raises(ExecutionNotFoundError) as e:
        Agent(tmp_path / "nowhere").get("01ABC")
    assert str(tmp_path / "nowhere") in str(e.value)
    assert pickle_round_trip(e.value).data_dir == str(tmp_path / "nowhere")


def pickle_round_trip(error: Exception) -> Any:
    import copy

    return copy.deepcopy(error)  # through __reduce__, as pickling is


def test_list_pages_can_be_iterated_and_keep_their_attributes(target: Where) -> None:
    page = DataDir(target).list()
    assert [s.id for s in page] == [s.id for s in page.items] and len(page) == 3 == page.total
    assert page[0] is page.items[0] and [s.id for s in page[1:]] == [s.id for s in page.items[1:]]
    assert page.offset == 0 and page.limit == 50 and page.next_offset is None
    assert sorted(s.id for s in DataDir(target).list(limit=None)) == ["run-a", "run-b", "run-c"]
    empty = DataDir(target).list(agent="nobody")
    assert list(empty) == [] and not empty and empty.total == 0


def test_health_of_a_missing_data_directory_says_so(tmp_path: Path) -> None:
    report = DataDir(tmp_path / "nowhere").health(repair=True)
    assert not report.healthy
    assert [(p.kind, p.severity) for p in report.problems] == [("missing", "error")]
    assert str(tmp_path / "nowhere") in report.problems[0].detail
    assert not (tmp_path / "nowhere").exists()  # nothing was created
    (tmp_path / "a-file").write_text("x")
    report = DataDir(tmp_path / "a-file").health()
    assert [(p.kind, p.severity) for p in report.problems] == [("not-a-directory", "error")]


def test_views_of_a_suspended_execution(target: Where) -> None:
    view = DataDir(target).execution("run-b")
    d = view.detail
    assert d.status == "waiting_approval" and d.agent_id == "payer" and d.suspend_reason is not None
    assert [c.call_id for c in d.pending_calls] == ["c1.0"] and d.pending_calls[0].status == "pending"
    assert [p.kind for p in view.pauses] == ["approval"] and view.pauses[0].ended_at is None
    assert [(c.step, c.ok) for c in view.llm_calls] == [(1, True)]
    assert [e.kind for e in view.events] == ["execution-started", "model-responded", "execution-suspended"]
    export = msgspec.json.decode(msgspec.json.encode(view.export()))
    assert export["format"] == "delite-export/1" and export["execution"]["id"] == "run-b"


def test_a_record_that_does_not_fold_is_damage(target: Where) -> None:
    store = store_of(target)
    with store.claim("run-c") as log:
        log.append([ToolFinished(at=time.time(), call_id="c9.9", result=1)])
    offsets = DataDir(target).execution("run-c").offsets  # None on a store of records: the damage has no offset
    offset = offsets[-1] if offsets is not None else None
    with pytest.raises(LogCorruptError) as e:
        _ = DataDir(target).execution("run-c").detail
    assert e.value.offset == (offset if offset is not None else -1) and "does not fold" in e.value.reason
    report = DataDir(target).health()
    assert [(p.kind, p.execution_id, p.offset) for p in report.problems if p.severity == "error"] == [
        ("inconsistent", "run-c", offset)
    ]
    item = DataDir(target).list(status="unreadable").items[0]
    assert item.id == "run-c" and "does not fold" in (item.damage or "")


def test_health_repair_rebuilds_the_index_and_never_touches_logs(data: Path) -> None:
    dd = DataDir(data)
    dd.list()
    (data / "executions" / "run-a.log").unlink()
    agent(data, ["hello"]).run("d", execution_id="run-d")
    logs = {p.name: p.read_bytes() for p in (data / "executions").iterdir()}
    report = dd.health()
    kinds = {p.kind for p in report.problems}
    assert report.healthy and {"index-orphaned", "index-missing"} <= kinds <= {
        "index-orphaned",
        "index-missing",
        "snapshot-orphaned",  # run-a finished, so it may have left a snapshot
    }
    repaired = dd.health(repair=True)
    assert repaired.repaired and repaired.problems == [] and dd.health().problems == []
    assert {p.name: p.read_bytes() for p in (data / "executions").iterdir()} == logs


def test_fork_copies_a_prefix_and_links_it(target: Where) -> None:
    dd = DataDir(target)
    new = dd.fork("run-a", at=1, new_id="run-a2")
    fork = dd.execution(new)
    assert fork.detail.forked_from == "run-a" and fork.detail.fork_step == 1
    assert fork.detail.status == "running" and fork.detail.steps == 1 and fork.detail.answer is None
    assert [e.kind for e in fork.events] == ["execution-started", "model-responded", "tool-started", "tool-finished"]
    done = agent(target, [call("add", a=1, b=2), "three"]).resume(new)
    assert done.answer == "three"
    whole = dd.fork("run-a", at=2)  # the last step: everything but the completion
    assert dd.execution(whole).detail.status == "running"
    assert dd.execution(dd.fork("run-b", at=1)).detail.status == "waiting_approval"  # a pause is kept
    only_input = dd.execution(dd.fork("run-a", at=0))
    assert [e.kind for e in only_input.events] == ["execution-started"]
    with pytest.raises(UsageError, match="from 0 to 2"):
        dd.fork("run-a", at=3)
    with pytest.raises(UsageError, match="exists already"):
        dd.fork("run-a", at=1, new_id="run-b")


def test_follow_yields_new_records_and_stops_at_the_end(target: Where) -> None:
    dd = DataDir(target)
    store = store_of(target)
    appended = []

    def sleep(_seconds: float) -> None:  # each wait, another process appends a record
        with store.claim("run-b") as log:
            if not appended:
                record: Any = ModelResponded(at=time.time(), step=2, content="later")
            else:
                record = ExecutionCompleted(at=time.time(), answer="later")
            log.append([record])
            appended.append(record)

    events = list(dd.follow("run-b", start=2, poll=0.01, sleep=sleep))
    assert [e.kind for e in events] == ["execution-suspended", "model-responded", "execution-completed"]
    assert [e.seq for e in events] == [3, 4, 5]
    idle = list(dd.follow("run-c", start=3, timeout=0.02, poll=0.01, sleep=lambda _s: None))
    assert idle == []  # completed already: it stops without waiting
    with pytest.raises(ExecutionNotFoundError):
        next(dd.follow("nope"))


def test_health_checks_snapshots_and_repair_drops_the_stale_ones(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("delite.store._snapshot.MIN_LOG_SIZE", 0)  # these runs are short: keep snapshots anyway
    d = tmp_path / "data"
    agent(d, [call("add", a=1, b=2), "three"]).run("a", execution_id="s-1")
    agent(d, ["hi"]).run("b", execution_id="s-2")
    layout = Layout(d)
    assert Path(layout.snapshot("s-1")).exists()
    with FileStore(d, durability="off").claim("s-1") as log:
        log.append([ExecutionResumed(at=time.time())])  # the log moves on; its snapshot no longer matches
    (d / "executions" / "s-2.log").unlink()
    dd = DataDir(d)
    report = dd.health()
    found = {p.kind: p for p in report.problems}
    assert report.healthy and {"snapshot-stale", "snapshot-orphaned"} <= set(found)
    assert "s-1" in found["snapshot-stale"].detail and "s-2" in found["snapshot-orphaned"].detail
    assert all(p.severity == "derived" for p in report.problems)
    assert dd.health(repair=True).repaired
    assert not Path(layout.snapshot("s-1")).exists() and not Path(layout.snapshot("s-2")).exists()
    assert dd.health().problems == []


def test_logs_cut_while_being_created(data: Path) -> None:
    (data / "executions" / "blank-1.log").write_bytes(b"delite-log/1\n")  # header, no record
    (data / "executions" / "cut-1.log").write_bytes(b"delite-lo")  # the header itself cut short
    for name in ("blank-1", "cut-1"):
        (data / "executions" / f"{name}.log").chmod(0o600)  # as delite creates them
    dd = DataDir(data)
    statuses = {s.id: s.status for s in dd.list().items}
    assert statuses["blank-1"] == statuses["cut-1"] == "empty"
    assert dd.execution("cut-1").detail.torn_tail is not None
    found = {(p.kind, p.execution_id) for p in dd.health().problems if p.severity == "warning"}
    assert found == {("empty", "blank-1"), ("torn-tail", "cut-1")}
    with pytest.raises(UsageError, match="no complete record"):
        dd.fork("blank-1", at=0)


class ClosingStore(MemoryStore):
    """A MemoryStore that counts how often it was closed (to see who owns a store)."""

    def __init__(self) -> None:
        super().__init__()
        self.closed = 0

    def close(self) -> None:
        self.closed += 1


def test_a_datadir_closes_the_store_it_opened_and_never_one_it_was_given(tmp_path: Path) -> None:
    given = populate(ClosingStore())
    assert isinstance(given, ClosingStore)
    with DataDir(given) as dd:
        assert dd.store is given and dd.path is None and dd.layout is None
        assert dd.ids() == ["run-a", "run-b", "run-c"] and dd.reindex() == 0  # no index to rebuild
    dd.close()
    assert given.closed == 0  # borrowed: its owner closes it
    with DataDir(tmp_path / "data") as owned:
        assert isinstance(owned.store, FileStore) and owned.path == tmp_path / "data"
        assert owned.ids() == [] and not (tmp_path / "data").exists()  # reading creates nothing
    with pytest.raises(UsageError, match="path or a Store"):
        DataDir(42)  # type: ignore[arg-type]


def test_a_store_without_bytes_shows_no_offsets(target: Where) -> None:
    """A store of rows returns a plain RecordRange: the view has every record and no byte offsets."""
    from delite.datadir import ExecutionView
    from delite.store import RecordRange

    read = DataDir(target).store.read("run-a")
    rows = ExecutionView(RecordRange(execution_id="run-a", records=read.records, after=0, head=read.head))
    assert rows.offsets is None and rows.detail.log_bytes == 0 and rows.detail.torn_tail is None
    assert [e.offset for e in rows.events] == [None] * len(read.records)
    framed = DataDir(target).execution("run-a")
    if isinstance(target, ListStore):  # the toy store keeps records, not bytes: its own reads have no offsets
        assert framed.offsets is None
    else:
        assert framed.offsets is not None and [e.offset for e in framed.events] == framed.offsets
    assert [e.record for e in rows.events] == [e.record for e in framed.events]
    assert rows.detail.steps == framed.detail.steps == 2 and rows.detail.answer == framed.detail.answer == "three"


def test_following_a_log_file_reads_only_appended_bytes_and_waits_out_a_torn_tail(data: Path) -> None:
    """File-store only: ``FileStore.tail`` follows by byte offset, the way ``DataDir.follow`` uses on files."""
    from delite.log._codec import encode_record
    from delite.log._framing import encode_frame

    tail = FileStore(data).tail("run-b")
    try:
        first = tail.more()
        view = DataDir(data).execution("run-b")
        assert [r for r, _ in first] == view.records and [o for _, o in first] == view.offsets
        assert tail.more() == []
        frame = encode_frame(encode_record(ModelResponded(at=time.time(), step=2, content="later")))
        log = data / "executions" / "run-b.log"
        end = log.stat().st_size
        with log.open("ab") as f:
            f.write(frame[:7])  # a write cut short: not a record yet
        assert tail.more() == []
        with log.open("ab") as f:
            f.write(frame[7:])
        [(record, offset)] = tail.more()
        assert isinstance(record, ModelResponded) and record.content == "later" and offset == end
    finally:
        tail.close()


class MisListingStore(MemoryStore):
    """A store whose listing leaves run-c out and says run-b completed (as a stale or edited index would)."""

    def list_executions(self, **query: Any) -> Page:
        page = super().list_executions(**query)
        items = [
            msgspec.structs.replace(s, status="completed") if s.id == "run-b" else s
            for s in page.items
            if s.id != "run-c"
        ]
        return Page(items=items, total=len(items), offset=page.offset, limit=page.limit)


def test_health_of_any_store_compares_its_listing_with_the_records() -> None:
    store = populate(MisListingStore())
    assert isinstance(store, MisListingStore)
    report = DataDir(store).health()
    assert not report.healthy and report.logs == 3 and report.records > 3 and report.repaired is False
    found = {p.kind: p for p in report.problems}
    assert set(found) == {"index-missing", "index-mismatch"}
    assert found["index-missing"].detail.endswith(": run-c") and found["index-mismatch"].detail.endswith(": run-b")
    assert all(p.severity == "warning" for p in report.problems)
    empty = DataDir(MemoryStore()).health()
    assert empty.healthy and empty.logs == 0 and empty.problems == []
