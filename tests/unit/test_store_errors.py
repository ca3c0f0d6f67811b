"""Storage faults are StoreError, built like an OSError, on every path; reading never needs write access."""

from __future__ import annotations

import errno
import json
import os
import pickle
import shutil
import subprocess
import tempfile
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from delite import Agent, DataDir, FileStore, ScriptedProvider, tool
from delite.errors import (
    ClaimTimeoutError,
    LogCorruptError,
    LogIdentityError,
    RecordTooLargeError,
    StoreError,
    UnsupportedFormatError,
)
from delite.log import _os
from delite.log.records import ExecutionStarted
from delite.store import _file as file_store

NOBODY = 65534


@tool
def bump(i: int) -> dict:
    """Count."""
    return {"n": i + 1}


def agent(data_dir: Path | str) -> Agent:
    return Agent(data_dir, provider=ScriptedProvider.tool_loop(2, "bump"), tools=[bump])


def enospc(*_args: Any) -> None:
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


# -- the OSError part ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("error", "code", "filename"),
    [
        (StoreError("disk gone", "/d/x.log", errno=errno.EIO), errno.EIO, "/d/x.log"),
        (StoreError("plain"), None, None),
        (StoreError.from_os_error("append to the log", "/d/x.log", OSError(errno.ENOSPC, "No space")), 28, "/d/x.log"),
        (LogCorruptError("/d/x.log", 12, "bad"), None, "/d/x.log"),
        (UnsupportedFormatError("/d/x.log", "delite-log/9", "delite-log/1"), None, "/d/x.log"),
        (LogIdentityError("x", "/d/x.log", "a link"), None, "/d/x.log"),
        (RecordTooLargeError(10, 5), errno.EFBIG, None),
        (ClaimTimeoutError("x", 1.5), errno.ETIMEDOUT, None),
    ],
)
def test_every_store_error_is_an_oserror_built_right(error: StoreError, code: int | None, filename: str | None) -> None:
    assert isinstance(error, OSError)
    assert error.errno == code
    assert error.errno is None or isinstance(error.errno, int)
    assert isinstance(error.strerror, str)
    assert error.filename == filename
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is type(error)
    assert (copy.errno, copy.strerror, copy.filename, str(copy)) == (
        error.errno,
        error.strerror,
        error.filename,
        str(error),
    )


def test_from_os_error_names_the_errno_and_keeps_the_message() -> None:
    e = StoreError.from_os_error("read the log", Path("/d/x.log"), PermissionError(errno.EACCES, "Permission denied"))
    assert e.errno == errno.EACCES
    assert e.filename == "/d/x.log"
    assert "EACCES" in str(e)
    assert "Permission denied" in str(e)


# -- faults on every write path --------------------------------------------------------------------------------


def test_a_full_disk_while_binding_a_key_is_a_store_error_and_leaves_no_temp_file(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with agent(data_dir) as a:
        a.run("warm up")  # the data directory exists
        monkeypatch.setattr(file_store._os, "write_all", enospc)
        with pytest.raises(StoreError) as info:
            a.run("go", idempotency_key="k-1")
        monkeypatch.undo()
        assert info.value.errno == errno.ENOSPC
        assert isinstance(info.value.filename, str)
        assert info.value.filename.startswith(str(data_dir / "keys"))
        assert os.listdir(data_dir / "keys") == []  # no temp file, no half binding
        done = a.run("go", idempotency_key="k-1")  # the disk has room again: the key binds as if nothing happened
    assert done.status == "completed"
    assert len(os.listdir(data_dir / "keys")) == 1


def test_a_failed_fsync_while_binding_a_key_leaves_no_temp_file(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = FileStore(data_dir)
    store.bind_key("k0", "e0", "f0")
    monkeypatch.setattr(file_store._os, "fsync", lambda _fd: enospc())
    with pytest.raises(StoreError) as info:
        store.bind_key("k1", "e1", "f1")
    assert info.value.errno == errno.ENOSPC
    assert len(os.listdir(data_dir / "keys")) == 1


@pytest.mark.parametrize("fails", ["write_all", "fsync"])
def test_a_full_disk_on_every_log_write_is_a_store_error_naming_the_log(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch, fails: str
) -> None:
    store = FileStore(data_dir)
    with store.claim("e1", create=[ExecutionStarted(execution_id="e1", input="x")]):
        pass
    monkeypatch.setattr(_os, fails, enospc)
    with pytest.raises(StoreError) as info:
        store.claim("e2", create=[ExecutionStarted(execution_id="e2", input="x")])
    assert info.value.errno == errno.ENOSPC
    assert info.value.filename == str(data_dir / "executions" / "e2.log")
    assert not (data_dir / "executions" / "e2.log").exists()
    with store.claim("e1") as log, pytest.raises(StoreError) as info:
        log.append([ExecutionStarted(execution_id="e1", input="again")])
    assert info.value.errno == errno.ENOSPC
    assert info.value.filename == str(data_dir / "executions" / "e1.log")


def test_a_data_directory_that_cannot_be_created_is_a_store_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("not a directory")
    store = FileStore(tmp_path / "file" / "data")
    with pytest.raises(StoreError) as info:
        store.claim("e1", create=[ExecutionStarted(execution_id="e1", input="x")])
    assert info.value.errno in (errno.EEXIST, errno.ENOTDIR)
    with pytest.raises(StoreError) as info:
        store.request_cancel("e1")
    assert info.value.errno in (errno.EEXIST, errno.ENOTDIR)
    with pytest.raises(StoreError):
        store.bind_key("k", "e1", "f")


# -- reading without write access ------------------------------------------------------------------------------

CHILD = textwrap.dedent(
    """
    import errno, json, os, sys
    # Everything is imported first: the interpreter's own files may not be readable by the other user.
    import delite.store._file_health, delite.store._index, delite.engine._agent, delite.store._file
    import filelock, sqlite3, msgspec, decimal, hashlib, secrets, warnings, asyncio, concurrent.futures
    from delite import Agent, DataDir, ScriptedProvider, tool
    from delite.errors import StoreError
    os.setgroups([]); os.setgid({uid}); os.setuid({uid})

    @tool
    def bump(i: int) -> dict:
        \"\"\"Count.\"\"\"
        return {{"n": i + 1}}

    data = sys.argv[1]
    out = {{}}
    with Agent(data, provider=ScriptedProvider.tool_loop(2, "bump"), tools=[bump]) as a:
        out["run"] = a.run("go", execution_id="done").answer
        out["resume"] = a.resume("done").answer
        out["keyed"] = a.run("go", idempotency_key="k-done").answer
        try:
            a.resume("paused")
        except StoreError as e:
            out["paused"] = [type(e).__name__, e.errno, e.filename]
        try:
            a.run("new")
        except StoreError as e:
            out["new"] = [type(e).__name__, e.errno]
    dd = DataDir(data)
    out["list"] = sorted((s.id, s.status) for s in dd.list(limit=None).items)
    out["answer"] = dd.execution("done").detail.answer
    out["health"] = sorted({{p.kind for p in dd.health().problems}})
    print(json.dumps(out))
    """
)


@pytest.fixture
def shared_tmp() -> Iterator[Path]:
    """A folder another user can reach (pytest's own tmp_path is private to root)."""
    path = Path(tempfile.mkdtemp(prefix="delite-ro-"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def _read_only_copy_for(data: Path, uid: int) -> None:
    for root, dirs, files in os.walk(data):
        for name in (*dirs, *files):
            os.chown(os.path.join(root, name), uid, uid)
    os.chown(data, uid, uid)
    for root, dirs, files in os.walk(data, topdown=False):
        for name in files:
            os.chmod(os.path.join(root, name), 0o400)
        for name in dirs:
            os.chmod(os.path.join(root, name), 0o500)
    os.chmod(data, 0o500)


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0, reason="needs root to drop to another user")
def test_a_read_only_data_directory_still_answers_finished_executions(shared_tmp: Path, python: str) -> None:
    data = shared_tmp / "data"
    with agent(data) as a:
        first = a.run("go", execution_id="done")
        keyed = a.run("go", idempotency_key="k-done")
        a.store.claim(
            "paused", create=[ExecutionStarted(execution_id="paused", input="x", config=a.fingerprint())]
        ).release()
    DataDir(data).list()  # an index exists, made by the owner
    shutil.rmtree(data / "claims")  # no lock file to reuse: one would have to be created
    (data / "claims").mkdir(mode=0o700)
    _read_only_copy_for(data, NOBODY)
    before = sorted(str(p.relative_to(data)) for p in data.rglob("*"))
    done = subprocess.run(
        [python, "-c", CHILD.format(uid=NOBODY), str(data)], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["run"] == out["resume"] == first.answer
    assert out["keyed"] == keyed.answer
    assert out["paused"][0] == "StoreError"
    assert out["paused"][1] in (errno.EACCES, errno.EPERM, errno.EROFS)
    assert isinstance(out["paused"][2], str)
    assert out["new"][0] == "StoreError"
    assert out["new"][1] in (errno.EACCES, errno.EPERM, errno.EROFS)
    assert ("done", "completed") in [tuple(x) for x in out["list"]]
    assert out["answer"] == first.answer
    assert sorted(str(p.relative_to(data)) for p in data.rglob("*")) == before  # nothing was written


@given(
    code=st.sampled_from(sorted(errno.errorcode)),
    path=st.text(min_size=1, max_size=40).filter(lambda p: "\x00" not in p),
    action=st.text(max_size=20),
)
def test_from_os_error_keeps_any_errno_and_filename(code: int, path: str, action: str) -> None:
    cause = OSError(code, os.strerror(code))
    e = StoreError.from_os_error(action, path, cause)
    assert (e.errno, e.strerror, e.filename) == (code, os.strerror(code), path)
    assert errno.errorcode[code] in str(e)
    copy = pickle.loads(pickle.dumps(e))
    assert (copy.errno, copy.strerror, copy.filename, str(copy)) == (e.errno, e.strerror, e.filename, str(e))
    with pytest.raises(OSError) as caught:  # code written for OSError works unchanged
        raise e
    assert caught.value.errno == code
