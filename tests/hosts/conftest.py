"""Fixtures of the several-hosts tests: network namespaces on a bridge (``tests/_netns.py``)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parents[1]
if str(TESTS) not in sys.path:
    sys.path.insert(0, str(TESTS))  # the private helpers tests/_netns.py and tests/_pg.py

from _netns import Hosts, unavailable  # noqa: E402


@pytest.fixture
def hosts() -> Iterator[Hosts]:
    """Three hosts in network namespaces on a private bridge; skipped with the reason where that cannot work."""
    reason = unavailable()
    if reason is not None:
        pytest.skip(reason)
    with Hosts(3) as made:
        yield made
