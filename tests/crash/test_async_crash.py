"""The cross-process hand-off, race and SIGKILL tests of the sync API, run again through the async API.

The tests of ``test_handoff`` and ``test_sigkill`` are collected here a second time with
``DELITE_TEST_API=async`` in the environment, so every worker process runs its command with
``asyncio.run(agent.arun(...))``, ``asubmit_approval``, ``aresume``, ``acancel``...: the same kills at the
same points, the same races (three trials here instead of eight), the same ledger checks.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import test_handoff
from test_handoff import *  # noqa: F403 - the tests themselves, collected again
from test_sigkill import *  # noqa: F403

del test_racing_approvals_exactly_one_wins  # noqa: F821 - rerun below with fewer trials


@pytest.fixture(autouse=True)
def through_async(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DELITE_TEST_API", "async")


@pytest.mark.parametrize("trial", range(3))
def test_racing_approvals_exactly_one_wins_async(tmp_path: Path, trial: int) -> None:
    test_handoff.test_racing_approvals_exactly_one_wins(tmp_path, trial)
