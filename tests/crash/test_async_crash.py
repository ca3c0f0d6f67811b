"""The cross-process hand-off, race and SIGKILL tests of the sync API, run again through the async API.

The tests of ``test_handoff`` and ``test_sigkill`` are collected here a second time with
``DELITE_TEST_API=async`` in the environment, so every worker process runs its command with
``asyncio.run(agent.arun(...))``, ``asubmit_approval``, ``aresume``, ``acancel``...: the same kills at the
same points, the same races, the same ledger checks.
"""

from __future__ import annotations

import pytest
from test_handoff import *  # noqa: F403 - the tests themselves, collected again
from test_sigkill import *  # noqa: F403


@pytest.fixture(autouse=True)
def through_async(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DELITE_TEST_API", "async")
