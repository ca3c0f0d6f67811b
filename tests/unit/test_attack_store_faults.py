"""Storage faults are StoreError, built like OSError, on the write paths the first tests did not fault (item 12).

Each case makes the file system refuse (EACCES, EROFS, ENOSPC) one kind of file delite creates, on one public
operation: the error is a :class:`StoreError` whose ``errno`` is the cause's and whose ``filename`` is a path,
and once the fault is gone the same operation works (nothing half-made blocks it).
"""

from __future__ import annotations

import errno
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from delite import Agent, DataDir, ScriptedProvider, tool
from delite.errors import StoreError
from delite.providers._scripted import call

_real_open = os.open


@tool(requires_confirmation=True)
def pay(amount: int) -> str:
    """Pay."""
    return f"paid {amount}"


@pytest.fixture
def refuse(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[str, int], None]]:
    """``refuse(fragment, code)``: every ``os.open`` of a path containing ``fragment`` fails with ``code``."""

    def arm(fragment: str, code: int) -> None:
        def fake_open(path: Any, flags: int, *args: Any, **kwargs: Any) -> int:
            if fragment in os.fspath(path):
                raise OSError(code, os.strerror(code), os.fspath(path))
            return _real_open(path, flags, *args, **kwargs)

        monkeypatch.setattr(os, "open", fake_open)

    yield arm
    monkeypatch.setattr(os, "open", _real_open)


def _setup(data_dir: Path) -> tuple[Agent, str]:
    agent = Agent(data_dir, provider=ScriptedProvider([call("pay", amount=1), "done"] * 3), tools=[pay])
    return agent, agent.run("pay").execution_id


OPERATIONS: dict[str, tuple[str, Callable[[Path, Agent, str], Any]]] = {
    "fork: its claim lock": ("claims/f1.lock", lambda d, a, e: DataDir(d).fork(e, at=1, new_id="f1")),
    "fork: its log": ("executions/.f1.log.", lambda d, a, e: DataDir(d).fork(e, at=1, new_id="f1")),
    "run: a new log": ("executions/n1", lambda d, a, e: a.run("new", execution_id="n1")),
    "run: a new claim lock": ("claims/n1.lock", lambda d, a, e: a.run("new", execution_id="n1")),
    "run: the idempotency key": ("keys/", lambda d, a, e: a.run("new", idempotency_key="k")),
    "approve: the claim lock": (".lock", lambda d, a, e: a.approve(e, "c1.0")),
    "cancel: the cancel request": ("signals/", lambda d, a, e: a.cancel(e)),
}


@pytest.mark.parametrize("code", [errno.EACCES, errno.EROFS, errno.ENOSPC], ids=errno.errorcode.get)
@pytest.mark.parametrize("name", list(OPERATIONS))
def test_a_refused_file_is_a_store_error_built_like_oserror(
    data_dir: Path, refuse: Callable[[str, int], None], monkeypatch: pytest.MonkeyPatch, name: str, code: int
) -> None:
    fragment, operation = OPERATIONS[name]
    agent, eid = _setup(data_dir)
    refuse(fragment, code)
    with pytest.raises(StoreError) as info:
        operation(data_dir, agent, eid)
    monkeypatch.setattr(os, "open", _real_open)
    error = info.value
    assert isinstance(error, OSError) and error.errno == code, (error.errno, str(error))
    assert isinstance(error.filename, str) and error.filename.startswith(str(data_dir)), error.filename
    operation(data_dir, agent, eid)  # the fault gone, the same operation works: nothing half-made is left
