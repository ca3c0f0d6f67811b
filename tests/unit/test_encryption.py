"""Encryption at rest: sealed records on every store, refusals, moved records, rekeying, and what stays plain.

Real stores (files, memory, PostgreSQL through ``pg_url``, the toy backend), real agents with the scripted
provider, real bytes on disk: nothing here is mocked.
"""

from __future__ import annotations

import asyncio
import base64
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import msgspec
import pytest

from delite import Agent, DataDir, MemoryStore, ScriptedProvider, Status, tool
from delite.errors import (
    PlaintextRecordError,
    SealBrokenError,
    UnknownKeyError,
    UsageError,
)
from delite.log.records import ExecutionCompleted, ExecutionStarted, SealedRecord, ToolFinished
from delite.providers import call
from delite.store import FileStore, Keyring, SealedStore, Store, open_store

pytest.importorskip("cryptography")

OLD = ("k1", bytes(range(32)))
NEW = ("k2", bytes(range(32, 64)))
SECRETS = [b"INPUT-SECRET", b"ARG-SECRET", b"RESULT-SECRET", b"ANSWER-SECRET", b"PROMPT-SECRET"]


def _entry(key_id: str, key: bytes) -> str:
    return f"{key_id}:{base64.b64encode(key).decode()}"


@tool
def lookup(query: str) -> str:
    """Look something up."""
    return f"RESULT-SECRET for {query}"


def _agent(store: Store) -> Agent:
    script = [call("lookup", query="ARG-SECRET"), "the ANSWER-SECRET"]
    return Agent(store=store, provider=ScriptedProvider(script), tools=[lookup], prompt="PROMPT-SECRET")


def _list_store() -> Store:
    sys.path.insert(0, str(Path(__file__).parents[1] / "contract"))
    from store_fixtures import ListStore

    return ListStore()


@pytest.fixture(params=["file", "memory", "list", "postgres"])
def inner(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    kind = request.param
    if kind == "file":
        store: Store = FileStore(tmp_path / "data")
    elif kind == "memory":
        store = MemoryStore()
    elif kind == "list":
        store = _list_store()
    else:
        url = request.getfixturevalue("pg_url")
        store = _pg(url)
    yield store
    store.close()


def _pg(url: str) -> Store:
    from delite.store._postgres import PostgresStore

    return PostgresStore(url)


def test_a_run_round_trips_and_the_store_underneath_holds_only_sealed_records(inner: Store) -> None:
    sealed = SealedStore(inner, Keyring([OLD]))
    response = _agent(sealed).run("INPUT-SECRET")
    assert response.status is Status.COMPLETED and response.answer == "the ANSWER-SECRET"
    eid = response.execution_id
    raw = inner.read(eid).records
    assert raw and all(isinstance(r, SealedRecord) for r in raw)
    for payload in inner.read_payloads(eid):
        assert not any(s in payload.payload for s in SECRETS)
    opened = sealed.read(eid).records
    assert isinstance(opened[0], ExecutionStarted) and opened[0].input == "INPUT-SECRET"
    assert isinstance(opened[-1], ExecutionCompleted) and opened[-1].answer == "the ANSWER-SECRET"
    # the listing is the store underneath's, folded from the shells: structure, no content
    summary = sealed.list_executions().items[0]
    assert summary.status == "completed" and summary.steps == 2 and summary.tool_calls == 1
    assert summary.input == "" and summary.answer == ""
    assert inner.state(eid).status is Status.COMPLETED  # the shells fold without the key
    # resuming a finished run with the key reads it back through the seal
    again = _agent(sealed).run("INPUT-SECRET", execution_id=eid)
    assert again.answer == "the ANSWER-SECRET"


def test_with_a_key_a_plaintext_record_is_refused(inner: Store) -> None:
    plain = _agent(inner).run("INPUT-SECRET")
    sealed = SealedStore(inner, Keyring([OLD]))
    with pytest.raises(PlaintextRecordError):
        sealed.read(plain.execution_id)
    with pytest.raises(PlaintextRecordError):
        _agent(sealed).run("INPUT-SECRET", execution_id=plain.execution_id)
    assert not inner.is_claimed(plain.execution_id)


def test_without_a_key_a_sealed_execution_is_not_advanced(inner: Store) -> None:
    sealed = SealedStore(inner, Keyring([OLD]))
    eid = _agent(sealed).run("INPUT-SECRET").execution_id
    with pytest.raises(PlaintextRecordError, match="no key is configured"):
        _agent(inner).resume(eid)
    with pytest.raises(UnknownKeyError):
        SealedStore(inner, Keyring([NEW])).read(eid)


def test_records_moved_between_executions_or_reordered_do_not_open(tmp_path: Path) -> None:
    inner = MemoryStore()
    sealed = SealedStore(inner, Keyring([OLD]))
    a = _agent(sealed).run("INPUT-SECRET").execution_id
    b = _agent(sealed).run("INPUT-SECRET").execution_id
    ra, rb = inner.read(a).records, inner.read(b).records
    # b's records under a's id: the first names b (an identity error before any seal is checked)...
    inner.create("moved", [*ra])
    with pytest.raises(SealBrokenError):
        sealed.read("moved")
    # ...a's records in another order (two tool-free records swapped)
    swapped = [ra[0], ra[1], ra[2], ra[3], ra[5], ra[4]]
    inner.create("swapped", swapped)
    with pytest.raises(SealBrokenError):
        sealed.read("swapped", after=3)
    # a record of b spliced into a at the same position
    spliced = [*ra[:3], rb[3], *ra[4:]]
    inner.create("spliced", spliced)
    with pytest.raises(SealBrokenError):
        sealed.read("spliced")


def test_a_tampered_shell_or_ciphertext_does_not_open() -> None:
    inner = MemoryStore()
    sealed = SealedStore(inner, Keyring([OLD]))
    eid = _agent(sealed).run("INPUT-SECRET").execution_id
    records = inner.read(eid).records
    finished = next(i for i, r in enumerate(records) if isinstance(r, SealedRecord) and r.sealed == "tool-finished")
    target = records[finished]
    assert isinstance(target, SealedRecord) and isinstance(target.shell, ToolFinished)
    lying = msgspec.structs.replace(target, shell=msgspec.structs.replace(target.shell, error="boom"))
    copy = MemoryStore()  # the same execution, one record changed in place
    copy.create(eid, [*records[:finished], lying, *records[finished + 1 :]])
    with pytest.raises(SealBrokenError, match="shell"):
        SealedStore(copy, Keyring([OLD])).read(eid)
    flipped = bytes([target.ciphertext[0] ^ 1]) + target.ciphertext[1:]
    bad = msgspec.structs.replace(target, ciphertext=flipped)
    copy = MemoryStore()
    copy.create(eid, [*records[:finished], bad, *records[finished + 1 :]])
    with pytest.raises(SealBrokenError, match="does not open"):
        SealedStore(copy, Keyring([OLD])).read(eid)
    assert sealed.read(eid).records[finished] is not None  # the original still opens


def test_rekey_reseals_under_the_newest_key_on_every_store(inner: Store) -> None:
    old = SealedStore(inner, Keyring([OLD]))
    eid = _agent(old).run("INPUT-SECRET").execution_id
    plain = _agent(inner).run("INPUT-SECRET").execution_id
    both = SealedStore(inner, Keyring([OLD, NEW]))
    assert both.rekey(eid) == 6
    assert both.rekey(plain) == 6  # plain text is sealed too: how an existing store gets encrypted
    assert both.rekey(eid) == 0  # nothing left to do: nothing written
    new_only = SealedStore(inner, Keyring([NEW]))
    for e in (eid, plain):
        records = inner.read(e).records
        assert all(isinstance(r, SealedRecord) and r.key_id == "k2" for r in records)
        assert new_only.read(e).records[-1].answer == "the ANSWER-SECRET"  # type: ignore[union-attr]
        assert new_only.list_executions().total == 2
    with pytest.raises(UnknownKeyError):
        SealedStore(inner, Keyring([OLD])).read(eid)


def test_keys_from_the_environment_and_a_key_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DELITE_ENCRYPTION_KEYS", f"{_entry(*OLD)}, {_entry(*NEW)}")
    ring = Keyring.from_env()
    assert ring is not None and ring.key_ids == ["k1", "k2"] and ring.current == "k2"
    assert "AAEC" not in repr(ring)  # never the keys
    monkeypatch.delenv("DELITE_ENCRYPTION_KEYS")
    key_file = tmp_path / "keys"
    key_file.write_text(f"# delite keys\n{_entry(*OLD)}\n")
    monkeypatch.setenv("DELITE_ENCRYPTION_KEY_FILE", str(key_file))
    store = open_store(tmp_path / "data")
    assert isinstance(store, SealedStore) and store.keys.current == "k1"
    store.close()
    monkeypatch.delenv("DELITE_ENCRYPTION_KEY_FILE")
    assert Keyring.from_env() is None
    assert not isinstance(open_store(tmp_path / "data"), SealedStore)


@pytest.mark.parametrize(
    "text",
    ["", "k1", "k1:not*base64", "k1:" + base64.b64encode(b"short").decode(), f"{_entry(*OLD)},{_entry(*OLD)}"],
)
def test_bad_keys_are_refused_before_anything_is_opened(text: str, tmp_path: Path) -> None:
    with pytest.raises(UsageError):
        Keyring.parse(text)
    assert not (tmp_path / "data").exists()


def test_a_key_file_that_cannot_be_read_as_text_is_a_usage_error(tmp_path: Path) -> None:
    # A byte that is not UTF-8 was a raw UnicodeDecodeError (a traceback from --key-file), a NUL a ValueError.
    bad = tmp_path / "keys"
    bad.write_bytes(b"k1:\xe9\xff\xfe\n")
    for path, said in ((bad, "is not UTF-8 text (at byte 3)"), (str(tmp_path / "a\0b"), "embedded null byte")):
        with pytest.raises(UsageError, match=re.escape(said)) as caught:
            Keyring.from_file(path)
        assert "\\xe9" not in str(caught.value)  # nothing of the file's bytes: they may be a key
    done = subprocess.run(
        [sys.executable, "-m", "delite_cli", "status", "--data-dir", str(tmp_path / "d"), "--key-file", str(bad)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2 and done.stderr.startswith("error: the key file") and "Traceback" not in done.stderr


def test_nothing_of_the_content_reaches_the_data_directory(tmp_path: Path) -> None:
    """Logs, the listing index, snapshots, keys: no file of a sealed data directory holds the content."""
    data = tmp_path / "data"
    store = open_store(data, keys=Keyring([OLD]))
    agent = _agent(store)
    eid = agent.run("INPUT-SECRET", idempotency_key="order-1").execution_id
    agent.run("INPUT-SECRET", execution_id=eid)  # a finished run asked for again (a snapshot, if any)
    DataDir(store).list()  # builds the listing index
    store.close()
    blob = b"".join(p.read_bytes() for p in data.rglob("*") if p.is_file())
    assert b"sealed" in blob
    for secret in SECRETS:
        assert secret not in blob, secret


def test_the_cli_reads_with_the_key_and_health_checks_without_it(tmp_path: Path) -> None:
    data = tmp_path / "data"
    key_file = tmp_path / "keys"
    key_file.write_text(_entry(*OLD) + "\n")
    store = open_store(data, keys=Keyring.from_file(key_file))
    eid = _agent(store).run("INPUT-SECRET").execution_id
    store.close()
    env = {k: v for k, v in os.environ.items() if not k.startswith("DELITE_ENCRYPTION")}

    def cli(*args: str, **extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "delite_cli", *args, "--data-dir", str(data)],
            capture_output=True,
            text=True,
            env={**env, **extra},
            check=False,
        )

    shown = cli("inspect", eid, DELITE_ENCRYPTION_KEY_FILE=str(key_file))
    assert shown.returncode == 0, shown.stderr
    assert "ANSWER-SECRET" in shown.stdout
    exported = cli("export", eid, "--key-file", str(key_file))
    assert exported.returncode == 0, exported.stderr
    assert "RESULT-SECRET" in exported.stdout
    health = cli("health")
    assert health.returncode == 0, health.stdout + health.stderr
    # Without the key: what shows content is refused (blanks are not the execution's content), what shows
    # the structure says what it leaves out.
    for command in ("inspect", "export"):
        keyless = cli(command, eid)
        assert keyless.returncode == 1 and "ANSWER-SECRET" not in keyless.stdout
        assert "sealed at rest" in keyless.stderr and "--key-file" in keyless.stderr
    structure = cli("steps", eid)
    assert structure.returncode == 0 and "scripted" in structure.stdout and "--key-file" in structure.stderr
    # rotation: both keys to rekey, then the new key alone reads everything
    both, new = tmp_path / "both", tmp_path / "new"
    both.write_text(f"{_entry(*OLD)}\n{_entry(*NEW)}\n")
    new.write_text(_entry(*NEW) + "\n")
    assert cli("inspect", eid, "--key-file", str(new)).returncode == 1  # not rekeyed yet: UnknownKeyError
    rekeyed = cli("rekey", "--all", "--key-file", str(both), "--json")
    assert rekeyed.returncode == 0, rekeyed.stderr
    assert '"resealed": 6' in rekeyed.stdout
    after = cli("inspect", eid, "--key-file", str(new))
    assert after.returncode == 0 and "ANSWER-SECRET" in after.stdout
    assert cli("rekey", "--all").returncode == 2  # no keys: a usage error, nothing written


def test_the_async_driver_a_fork_and_a_follow_go_through_the_seal(tmp_path: Path) -> None:
    inner = FileStore(tmp_path / "data")
    sealed = SealedStore(inner, Keyring([OLD]))
    agent = _agent(sealed)
    response = asyncio.run(agent.arun("INPUT-SECRET"))
    assert response.answer == "the ANSWER-SECRET"
    data = DataDir(sealed)
    fork = data.fork(response.execution_id, at=1)
    records = sealed.read(fork).records
    assert isinstance(records[0], ExecutionStarted) and records[0].input == "INPUT-SECRET"
    assert all(isinstance(r, SealedRecord) for r in inner.read(fork).records)
    followed = list(data.follow(response.execution_id, until_done=True, timeout=5))
    assert followed and "SECRET" in str(followed[-1])
    assert data.health().healthy


def test_a_rekey_killed_at_any_moment_leaves_every_execution_whole(tmp_path: Path) -> None:
    """SIGKILL ``delite rekey --all`` mid-way, again and again: each log is the old one or the new one."""
    data = tmp_path / "data"
    store = open_store(data, keys=Keyring([OLD]))
    ids = [_agent(store).run("INPUT-SECRET").execution_id for _ in range(40)]
    store.close()
    both = tmp_path / "both"
    both.write_text(f"{_entry(*OLD)}\n{_entry(*NEW)}\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("DELITE_ENCRYPTION")}
    command = [sys.executable, "-m", "delite_cli", "rekey", "--all", "--data-dir", str(data), "--key-file", str(both)]
    ring = Keyring([OLD, NEW])
    for delay in (0.3, 0.6, 0.9, 1.2):
        proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            proc.wait(timeout=delay)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        sealed = SealedStore(FileStore(data), ring)
        for eid in ids:  # every execution opens whole, under one key or the other
            records = sealed.read(eid).records
            assert len(records) == 6 and records[-1].answer == "the ANSWER-SECRET"  # type: ignore[union-attr]
        sealed.close()
    finished = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    assert finished.returncode == 0, finished.stderr
    new_only = SealedStore(FileStore(data), Keyring([NEW]))
    assert all(len(new_only.read(eid).records) == 6 for eid in ids)
    assert DataDir(new_only).health().healthy


def test_a_key_file_inside_the_data_directory_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Keys are never kept beside the data: a copy of the directory would carry them."""
    data = tmp_path / "data"
    (data / "conf").mkdir(parents=True)
    inside = data / "conf" / "keys"
    inside.write_text(_entry(*OLD) + "\n")
    with pytest.raises(UsageError, match="inside the data directory"):
        open_store(data, keys=Keyring.from_file(inside))
    with pytest.raises(UsageError, match="inside the data directory"):
        SealedStore(FileStore(data), Keyring.from_file(inside))
    monkeypatch.setenv("DELITE_ENCRYPTION_KEY_FILE", str(inside))
    with pytest.raises(UsageError, match="inside the data directory"):
        Agent(data, provider=ScriptedProvider(["hi"]))
    assert not (data / "executions").exists()  # refused before anything was written
    outside = tmp_path / "keys"
    outside.write_text(_entry(*OLD) + "\n")
    monkeypatch.setenv("DELITE_ENCRYPTION_KEY_FILE", str(outside))
    store = open_store(data)
    assert isinstance(store, SealedStore)
    store.close()
    # A link into the directory is the file it points at: refused the same.
    (tmp_path / "link").symlink_to(inside)
    with pytest.raises(UsageError, match="inside the data directory"):
        open_store(data, keys=Keyring.from_file(tmp_path / "link"))
