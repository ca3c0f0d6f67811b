"""Wrong argument types on the public API the first boundary tests did not cover (issue 10, items 1 and 13).

``DataDir``, ``FileStore``, ``Runtime`` and their methods: a value of the wrong type is a ``UsageError`` (400)
naming the argument, never a ``TypeError``/``ValueError``/``AttributeError`` from deep inside, and nothing is
written.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from delite import Agent, DataDir, FileStore, Runtime, ScriptedProvider, tool
from delite.errors import UsageError
from delite.providers._scripted import call


@tool(requires_confirmation=True)
def pay(amount: int) -> str:
    """Pay."""
    return f"paid {amount}"


def written(data_dir: Path) -> dict[str, bytes]:
    out: dict[str, bytes] = {}
    for sub in ("executions", "keys", "signals"):
        folder = data_dir / sub
        if folder.is_dir():
            for name in sorted(os.listdir(folder)):
                out[f"{sub}/{name}"] = (folder / name).read_bytes()
    return out


BAD: dict[str, Callable[[Path], Any]] = {
    "DataDir(5)": lambda d: DataDir(5),  # type: ignore[arg-type]
    "DataDir(None)": lambda d: DataDir(None),  # type: ignore[arg-type]
    "DataDir(b'path')": lambda d: DataDir(b"data"),  # type: ignore[arg-type]
    "FileStore(5)": lambda d: FileStore(5),  # type: ignore[arg-type]
    "FileStore(durability=1)": lambda d: FileStore(d, durability=1),  # type: ignore[arg-type]
    "FileStore(durability='fast')": lambda d: FileStore(d, durability="fast"),
    "Runtime(5)": lambda d: Runtime(5),  # type: ignore[arg-type]
    "Runtime(durability='x')": lambda d: Runtime(d, durability="x"),
    "Runtime(recover='no')": lambda d: Runtime(d, recover="no"),  # type: ignore[arg-type]
    "Runtime(store='memory')": lambda d: Runtime(store="memory"),  # type: ignore[arg-type]
    "DataDir.list(limit='3')": lambda d: DataDir(d).list(limit="3"),  # type: ignore[arg-type]
    "DataDir.list(limit=True)": lambda d: DataDir(d).list(limit=True),
    "DataDir.list(offset=1.5)": lambda d: DataDir(d).list(offset=1.5),  # type: ignore[arg-type]
    "DataDir.list(status=5)": lambda d: DataDir(d).list(status=5),  # type: ignore[arg-type]
    "DataDir.list(agent=5)": lambda d: DataDir(d).list(agent=5),  # type: ignore[arg-type]
    "DataDir.list(metadata=list)": lambda d: DataDir(d).list(metadata=[1]),  # type: ignore[arg-type]
    "DataDir.list(since='yesterday')": lambda d: DataDir(d).list(since="yesterday"),  # type: ignore[arg-type]
    "DataDir.health(repair='yes')": lambda d: DataDir(d).health(repair="yes"),  # type: ignore[arg-type]
}


@pytest.mark.parametrize("name", list(BAD))
def test_a_wrong_type_is_a_usage_error_with_nothing_written(data_dir: Path, name: str) -> None:
    agent = Agent(data_dir, provider=ScriptedProvider([call("pay", amount=1), "done"]), tools=[pay])
    agent.run("pay", execution_id="e1")
    before = written(data_dir)
    with pytest.raises(UsageError) as info:
        BAD[name](data_dir)
    assert info.value.http_status == 400
    assert written(data_dir) == before


RUNTIME: dict[str, Callable[[Runtime, Agent], Any]] = {
    "go(agent=None)": lambda rt, a: rt.go(None, "hi"),  # type: ignore[arg-type]
    "go(agent='default')": lambda rt, a: rt.go("default", "hi"),  # type: ignore[arg-type]
    "go(idempotency_key=5)": lambda rt, a: rt.go(a, "hi", idempotency_key=5),
    "wait(timeout='1')": lambda rt, a: rt.wait("e1", timeout="1"),  # type: ignore[arg-type]
    "wait(timeout=nan)": lambda rt, a: rt.wait("e1", timeout=float("nan")),
    "wait(timeout=-1)": lambda rt, a: rt.wait("e1", timeout=-1),
    "signal(approved='true')": lambda rt, a: rt.signal("e1", "c1.0", "true"),  # type: ignore[arg-type]
    "signal(reason=5)": lambda rt, a: rt.signal("e1", "c1.0", True, reason=5),  # type: ignore[arg-type]
    "cancel(reason=None)": lambda rt, a: rt.cancel("e1", reason=None),  # type: ignore[arg-type]
    "resolve(call_id=5)": lambda rt, a: rt.resolve("e1", 5),  # type: ignore[arg-type]
}


@pytest.mark.parametrize("name", list(RUNTIME))
def test_a_wrong_type_on_the_runtime_is_a_usage_error_with_nothing_written(data_dir: Path, name: str) -> None:
    Agent(data_dir, provider=ScriptedProvider([call("pay", amount=1)]), tools=[pay]).run("pay", execution_id="e1")
    before = written(data_dir)
    with Runtime(data_dir) as rt:
        agent = Agent(provider=ScriptedProvider(["done"]), tools=[pay], runtime=rt)
        with pytest.raises(UsageError):
            RUNTIME[name](rt, agent)
    assert written(data_dir) == before


def test_an_unknown_option_of_go_is_a_type_error_like_run(data_dir: Path) -> None:
    with Runtime(data_dir) as rt:
        agent = Agent(provider=ScriptedProvider(["hi"]), runtime=rt)
        with pytest.raises(TypeError, match="colour"):
            rt.go(agent, "hi", colour="red")
        with pytest.raises(TypeError, match="colour"):
            agent.run("hi", colour="red")  # type: ignore[call-overload]
    assert not (data_dir / "executions").exists() or not os.listdir(data_dir / "executions")


def test_the_good_types_still_work(data_dir: Path) -> None:
    Agent(data_dir, provider=ScriptedProvider(["hi"])).run("hello", execution_id="first")
    dd = DataDir(str(data_dir))
    assert dd.list(limit=None, offset=0, status=["completed", "waiting"], since=0, until=2e10).total == 1
    assert dd.health(repair=False).healthy
    with Runtime(data_dir, recover=False, durability="full") as rt:
        agent = Agent(provider=ScriptedProvider(["hi"]), runtime=rt)
        eid = rt.go(agent, "hello", metadata={"k": 1}, model="m")
        assert rt.wait(eid, timeout=60).answer == "hi"
        assert rt.wait(eid, timeout=0).answer == "hi"


AGENT: dict[str, Callable[[Agent], Any]] = {
    "set_llm(5)": lambda a: a.set_llm(5),  # type: ignore[arg-type]
    "set_llm(None)": lambda a: a.set_llm(None),  # type: ignore[arg-type]
    "contract(5)": lambda a: a.contract(5),  # type: ignore[arg-type]
    "contract(None)": lambda a: a.contract(None),  # type: ignore[arg-type]
    "contract(surrogate)": lambda a: a.contract("no-\udc80"),
    "add_tool(5)": lambda a: a.add_tool(5),  # type: ignore[arg-type]
    "budget = dict": lambda a: setattr(a, "budget", {"max_llm_calls": 1}),
}


@pytest.mark.parametrize("name", list(AGENT))
def test_a_wrong_type_when_configuring_an_agent_is_a_usage_error(data_dir: Path, name: str) -> None:
    agent = Agent(data_dir, provider=ScriptedProvider(["hi"]))
    with pytest.raises(UsageError):
        AGENT[name](agent)
    assert agent.run("hello").answer == "hi"  # the agent is as it was
