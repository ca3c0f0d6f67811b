"""The sync API's suspension, submission, race, cancel and crash tests, run again through the async API.

Every test of ``test_agent`` and ``test_suspensions`` is collected here a second time, with ``Agent.run``,
``resume``, ``submit_*``, ``decide``, ``resolve``, ``cancel``, ``get`` and ``response`` each replaced by
``asyncio.run`` of its async twin: the same assertions hold for both.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
from test_agent import *  # noqa: F403 - the tests themselves, collected again
from test_suspensions import *  # noqa: F403

from delite import Agent

THROUGH_ASYNC = [
    "run",
    "resume",
    "submit_approval",
    "submit_tool_results",
    "submit_input",
    "decide",
    "resolve",
    "cancel",
    "get",
    "response",
]


def _via_async(name: str) -> Callable[..., Any]:
    twin = getattr(Agent, "a" + name)

    def call(self: Agent, *args: Any, **kwargs: Any) -> Any:
        return asyncio.run(twin(self, *args, **kwargs))

    return call


@pytest.fixture(autouse=True)
def through_async(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in THROUGH_ASYNC:
        monkeypatch.setattr(Agent, name, _via_async(name))


def test_the_sync_methods_are_replaced() -> None:
    import inspect

    assert all(getattr(Agent, name).__qualname__.startswith("_via_async") for name in THROUGH_ASYNC)
    assert all(inspect.iscoroutinefunction(getattr(Agent, "a" + name)) for name in THROUGH_ASYNC)
