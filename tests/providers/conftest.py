"""Fixtures for the provider tests: one fake LLM server per session, emptied before each test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fakellm import FakeLLM, Script


@pytest.fixture(scope="session")
def server() -> Iterator[FakeLLM]:
    s = FakeLLM().start()
    yield s
    s.stop()


@pytest.fixture
def fake(server: FakeLLM) -> FakeLLM:
    server.load(Script())
    return server
