"""Parallel tool calls: the intents of one turn in one write, the bodies at once, each result as it comes in."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from _stores import store_at

from delite import Agent, ScriptedProvider, current_call, tool
from delite.log import _os as log_os
from delite.log import parse_log
from delite.log.records import ModelResponded, ToolFinished, ToolStarted

WAIT = 20.0  # seconds a body waits for a sibling before giving up (only reached if the calls were not concurrent)


@pytest.fixture
def data_dir(any_data_dir: Any) -> Any:
    """Every test here runs on the file store and on PostgreSQL (the files_only ones on files alone)."""
    return any_data_dir


def turn(*calls: tuple[str, dict[str, Any]]) -> dict[str, Any]:
    return {"tool_calls": [{"name": n, "arguments": a} for n, a in calls]}


def outputs(messages: list[dict[str, Any]]) -> str:
    return " | ".join(m["content"] for m in messages if m["role"] == "tool")


def wait_for(predicate: Any) -> bool:
    deadline = time.monotonic() + WAIT
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.002)
    return True


def finished_ids(data_dir: Path, eid: str) -> set[str]:
    return {r.call_id for r in store_at(data_dir).read(eid).records if isinstance(r, ToolFinished)}


@pytest.mark.files_only  # it watches the file store's writes
def test_calls_of_one_turn_run_at_once_after_one_write(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    writes: list[bytes] = []
    real_write = log_os.write_all

    def write_all(fd: int, data: bytes) -> None:
        writes.append(bytes(data))
        real_write(fd, data)

    monkeypatch.setattr(log_os, "write_all", write_all)
    barrier = threading.Barrier(3, timeout=WAIT)

    @tool
    def meet(who: str) -> str:
        """Passes only when all three calls are running at the same time."""
        barrier.wait()
        return f"{who} met"

    script = ScriptedProvider([turn(("meet", {"who": "a"}), ("meet", {"who": "b"}), ("meet", {"who": "c"})), outputs])
    r = Agent(data_dir, provider=script, tools=[meet]).run("go", execution_id="p")
    assert r.answer == "a met | b met | c met"
    header = store_at(data_dir).read("p")  # the header is in the first write
    assert getattr(header, "torn", None) is None
    batches = [parse_log(writes[0][:13] + w).records for w in writes[1:]]  # each later write, parsed alone
    with_intents = [b for b in batches if any(isinstance(x, ToolStarted) for x in b)]
    assert len(with_intents) == 1  # the response and the three intents: one write, before any body ran
    first = with_intents[0]
    assert isinstance(first[0], ModelResponded) and [type(x) for x in first[1:]] == [ToolStarted] * 3


def test_each_result_is_written_as_it_comes_in_and_shown_in_call_order(data_dir: Path) -> None:
    @tool
    def slow() -> str:
        """Returns once the other call's result is in the log."""
        ok = wait_for(lambda: "c1.1" in finished_ids(data_dir, current_call().execution_id))
        return "slow saw fast's result" if ok else "timed out"

    @tool
    def fast() -> str:
        """Returns at once."""
        return "fast"

    script = ScriptedProvider([turn(("slow", {}), ("fast", {})), outputs])
    r = Agent(data_dir, provider=script, tools=[slow, fast]).run("go", execution_id="o")
    # The model sees the results in the order it asked for them, whatever order they finished in.
    assert r.answer == "slow saw fast's result | fast"
    finished = [x.call_id for x in store_at(data_dir).read("o").records if isinstance(x, ToolFinished)]
    assert finished == ["c1.1", "c1.0"]  # in the log: as they came in


def test_a_tool_declared_parallel_false_runs_alone(data_dir: Path) -> None:
    lock = threading.Lock()
    running: set[str] = set()
    seen: dict[str, set[str]] = {}
    together = threading.Barrier(2, timeout=WAIT)

    def body(name: str, *, meet: bool) -> str:
        with lock:
            running.add(name)
        if meet:
            together.wait()  # cyclic: f1 and f2 meet, then g1 and g2
        with lock:
            seen[name] = set(running)
        if meet:
            together.wait()  # neither leaves before both have looked
        with lock:
            running.discard(name)
        return name

    @tool
    def fetch(name: str) -> str:
        """May run with others."""
        return body(name, meet=True)

    @tool(parallel=False)
    def commit(name: str) -> str:
        """Runs alone."""
        return body(name, meet=False)

    calls = [("fetch", {"name": "f1"}), ("fetch", {"name": "f2"}), ("commit", {"name": "c"})]
    calls += [("fetch", {"name": "g1"}), ("fetch", {"name": "g2"})]
    script = ScriptedProvider([turn(*calls), outputs])
    r = Agent(data_dir, provider=script, tools=[fetch, commit]).run("go")
    assert r.answer == "f1 | f2 | c | g1 | g2"
    assert seen["c"] == {"c"}  # nothing else in flight while the sequential tool ran
    assert seen["f1"] == seen["f2"] == {"f1", "f2"}  # the calls before it ran together, and only they
    assert seen["g1"] == seen["g2"] == {"g1", "g2"}


def test_parallel_tool_calls_false_runs_one_at_a_time(data_dir: Path) -> None:
    changed = threading.Condition()
    running = {"now": 0, "most": 0}

    @tool
    def work(i: int) -> str:
        """Work that stays a moment, or leaves at once if another call joins it (which must not happen)."""
        with changed:
            running["now"] += 1
            running["most"] = max(running["most"], running["now"])
            changed.notify_all()
            changed.wait_for(lambda: running["now"] > 1, timeout=0.05)
            running["now"] -= 1
        return f"w{i}"

    script = ScriptedProvider([turn(*[("work", {"i": i}) for i in range(4)]), outputs])
    r = Agent(data_dir, provider=script, tools=[work], parallel_tool_calls=False).run("go")
    assert r.answer == "w0 | w1 | w2 | w3" and running["most"] == 1


def test_async_tools_of_one_turn_run_at_once_on_the_loop(data_dir: Path) -> None:
    arrived: list[str] = []

    @tool
    async def ping(name: str) -> str:
        """Waits on the loop until every ping has started."""
        arrived.append(name)
        for _ in range(int(WAIT * 1000)):
            if len(arrived) == 3:
                return f"{name} ok"
            await asyncio.sleep(0.001)
        return f"{name} alone"

    @tool
    def sync_ping(name: str) -> str:
        """A sync tool in the same turn, in a worker thread."""
        ok = wait_for(lambda: len(arrived) >= 2)
        arrived.append(name)
        return f"{name} ok" if ok else f"{name} alone"

    script = ScriptedProvider(
        [turn(("ping", {"name": "a"}), ("sync_ping", {"name": "s"}), ("ping", {"name": "b"})), outputs]
    )
    r = asyncio.run(Agent(data_dir, provider=script, tools=[ping, sync_ping]).arun("go"))
    assert r.answer == "a ok | s ok | b ok"


class Died(BaseException):
    """Stands in for the process dying inside a tool body."""


@pytest.mark.parametrize("api", ["sync", "async"])
def test_a_crash_in_the_middle_reruns_only_the_unfinished_calls(data_dir: Path, api: str) -> None:
    runs: list[tuple[str, int, str]] = []
    crash = {"armed": True}

    def log_run(name: str) -> None:
        ctx = current_call()
        runs.append((name, ctx.attempt, ctx.idempotency_key))

    @tool
    def quick() -> str:
        """Finishes first."""
        log_run("quick")
        return "quick"

    @tool
    def dies() -> str:
        """Dies once the first result is durable (the first time)."""
        log_run("dies")
        if crash["armed"]:
            wait_for(lambda: "c1.0" in finished_ids(data_dir, "x"))
            crash["armed"] = False
            raise Died
        return "dies"

    @tool
    def lingers() -> str:
        """Still running when the process dies."""
        log_run("lingers")
        wait_for(lambda: not crash["armed"])
        return "lingers"

    def agent() -> Agent:
        script = ScriptedProvider([turn(("quick", {}), ("dies", {}), ("lingers", {})), outputs])
        return Agent(data_dir, provider=script, tools=[quick, dies, lingers])

    def run() -> Any:
        if api == "async":
            return asyncio.run(agent().arun("go", execution_id="x"))
        return agent().run("go", execution_id="x")

    with pytest.raises(Died):
        run()
    assert finished_ids(data_dir, "x") == {"c1.0"}  # only the call that finished before the crash
    assert run().answer == "quick | dies | lingers"
    again = sorted((name, attempt) for name, attempt, _ in runs)
    assert again == [("dies", 1), ("dies", 2), ("lingers", 1), ("lingers", 2), ("quick", 1)]
    keys: dict[str, set[str]] = {}
    for name, _, key in runs:
        keys.setdefault(name, set()).add(key)
    assert all(len(k) == 1 for k in keys.values())  # a retried call keeps its idempotency key


def test_unfinished_calls_not_safe_to_retry_suspend_after_a_crash(data_dir: Path) -> None:
    crash = {"armed": True}

    @tool(retry_in_doubt=False)
    def wire(to: str) -> str:
        """Cannot be deduplicated."""
        if crash["armed"] and to == "b":
            crash["armed"] = False
            raise Died
        return f"sent {to}"

    def agent() -> Agent:
        script = ScriptedProvider([turn(("wire", {"to": "a"}), ("wire", {"to": "b"})), outputs])
        return Agent(data_dir, provider=script, tools=[wire], parallel_tool_calls=False)

    with pytest.raises(Died):
        agent().run("go", execution_id="w")
    r = agent().run("go", execution_id="w")
    assert r.suspend_reason is not None and r.suspend_reason.kind == "in_doubt"
    assert r.suspend_reason.confirmation_ids == ["c1.1"]
    assert agent().resolve("w", "c1.1", result="sent b (checked)").answer == "sent a | sent b (checked)"
