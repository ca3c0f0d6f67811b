"""Callbacks registered after ``rt.go()`` (the seed's order) still hear the outcomes that came before them."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

from delite import Agent, Runtime, ScriptedProvider, tool
from delite.providers import call


@pytest.fixture
def data_dir(any_data_dir: Any) -> Any:
    """Every test here runs on the file store and on PostgreSQL (the files_only ones on files alone)."""
    return any_data_dir


@tool(description="Publish", requires_confirmation=True)
def publish(title: str) -> str:
    return f"published {title}"


def test_a_callback_registered_after_the_outcome_hears_it(data_dir: Path) -> None:
    with Runtime(data_dir, workers=2) as rt:
        fast = Agent(data_dir, runtime=rt, agent_id="fast", provider=ScriptedProvider(["done"]))
        gated = Agent(
            data_dir,
            runtime=rt,
            agent_id="gated",
            provider=ScriptedProvider([call("publish", title="R"), "ok"]),
            tools=[publish],
        )
        a, b = rt.go(fast, "go"), rt.go(gated, "go")
        assert rt.wait(a).answer == "done" and rt.wait(b).is_suspended  # both outcomes came, nobody listening
        heard: list[tuple[str, str, Any]] = []
        both = threading.Event()

        @rt.on_complete
        def done(agent_id: str, exec_id: str, response: Any) -> None:
            heard.append(("complete", exec_id, response.answer))
            if len(heard) == 2:
                both.set()

        @rt.on_suspend
        def paused(agent_id: str, exec_id: str, reason: Any) -> None:
            heard.append(("suspend", exec_id, reason.kind))
            if len(heard) == 2:
                both.set()

        assert both.wait(30)
        assert sorted(heard) == sorted([("complete", a, "done"), ("suspend", b, "approval")])

        # A second callback of a kind already heard gets only what comes next; the first hears that too.
        later: list[str] = []
        rt.on_complete(lambda agent_id, exec_id, response: later.append(exec_id))
        rt.signal(b, rt.wait(b).suspend_reason.confirmation_id, True)  # type: ignore[union-attr]
        rt.wait(b)  # returns once the callbacks of its run have run
        c = rt.go(fast, "again")
        rt.wait(c)
    assert later == [b, c]
    assert [h[1] for h in heard if h[0] == "complete"] == [a, b, c]


def test_no_callbacks_ever_is_fine(data_dir: Path) -> None:
    with Runtime(data_dir, workers=1) as rt:
        agent = Agent(data_dir, runtime=rt, provider=ScriptedProvider(["x"]))
        ids = [rt.go(agent, f"r{i}") for i in range(5)]
        assert [rt.wait(i).answer for i in ids] == ["x"] * 5
