"""A data directory named by a path that is a file (or lies under one) is an error, never an empty listing.

A listing used to say "no executions" (exit 0) for ``--data-dir`` naming a regular file, and ``gc`` "deleted 0
executions": a mistyped path looked like an empty store. A path that does not exist is still an empty one.
"""

from __future__ import annotations

import errno
import os
import subprocess
import sys
from pathlib import Path

import pytest

from delite import DataDir
from delite.errors import StoreError
from delite.store import open_store


def delite(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "delite_cli", *args], capture_output=True, text=True, timeout=60, check=False
    )


def _layouts(tmp_path: Path) -> list[tuple[Path, Path]]:
    """(the path given, the file in the way) for each way a path can fail to be a directory."""
    afile = tmp_path / "afile"
    afile.write_text("not a data directory\n")
    root = tmp_path / "root"
    root.mkdir()
    (root / "executions").write_text("a file where the folder should be\n")
    return [(afile, afile), (afile / "under", afile), (root, root / "executions")]


def test_the_store_raises_enotdir_naming_the_file(tmp_path: Path) -> None:
    for given, culprit in _layouts(tmp_path):
        store = open_store(str(given))
        for read in (store.list_executions, store.recoverable, store.runnable, DataDir(str(given)).list):
            with pytest.raises(StoreError) as caught:
                read()
            assert caught.value.errno == errno.ENOTDIR and caught.value.filename == str(culprit), str(caught.value)
    assert (tmp_path / "afile").read_text() == "not a data directory\n"  # nothing written
    assert open_store(str(tmp_path / "missing")).list_executions().items == []  # not there: empty, as before


def test_every_listing_command_fails_naming_the_file(tmp_path: Path) -> None:
    for given, culprit in _layouts(tmp_path):
        for args in (["status"], ["gc", "--older-than", "0s"], ["inspect", "x"]):
            done = delite(*args, "--data-dir", str(given))
            assert done.returncode == 1, (args, done.stdout, done.stderr)
            assert done.stderr.startswith("error: ") and "Not a directory" in done.stderr, (args, done.stderr)
            assert str(culprit) in done.stderr and "Traceback" not in done.stderr
        done = delite("status", "--json", "--data-dir", str(given))
        assert done.returncode == 1 and '"StoreError"' in done.stdout + done.stderr
    copied = delite("copy", str(tmp_path / "afile"), str(tmp_path / "dst"))
    assert copied.returncode == 1 and "is not a directory" in copied.stderr, copied.stderr
    missing = delite("status", "--data-dir", str(tmp_path / "missing"))
    assert missing.returncode == 0 and "does not exist" in missing.stdout


def test_a_worker_on_a_file_fails_at_once(tmp_path: Path) -> None:
    # It logged the error and tried again every poll, for ever: a file in the way is no passing fault.
    (tmp_path / "mk.py").write_text(
        "from delite import Agent, ScriptedProvider\n"
        "def build(data_dir):\n    return Agent(data_dir, provider=ScriptedProvider(['x']))\n"
    )
    for given, culprit in _layouts(tmp_path):
        done = subprocess.run(
            [sys.executable, "-m", "delite_cli", "worker", "--agent", "mk:build", "--data-dir", str(given)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
            cwd=tmp_path,
            env={**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")])},
        )
        assert done.returncode == 1, done.stdout + done.stderr
        assert "Not a directory" in done.stderr and str(culprit) in done.stderr and "started" not in done.stdout
