"""Attacks on the input boundary (issue 10, items 1, 3 and 13) with cases the first tests did not try.

Each case is a bad value through a public path; afterwards either nothing was written or the failure is
recorded, and every execution of the data directory still reads (``delite status`` shows none unreadable).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec
import pytest
from _stores import store_at
from click.testing import CliRunner

from delite import Agent, RetryPolicy, Runtime, ScriptedProvider, tool
from delite.datadir import DataDir
from delite.errors import UsageError
from delite.log._framing import MAX_RECORD_SIZE
from delite.log.records import ModelCallFailed, ToolFinished
from delite.providers._scripted import call
from delite_cli.main import cli

NO_WAIT = {"base_delay": 0, "max_delay": 0}


@pytest.fixture
def data_dir(any_data_dir: Any) -> Any:
    """Every test here runs on the file store and on PostgreSQL (the files_only ones on files alone)."""
    return any_data_dir


def written(data_dir: Path) -> dict[str, bytes]:
    """Every durable file: logs, idempotency keys, cancel signals (on PostgreSQL: every execution's records)."""
    out: dict[str, bytes] = {}
    if not isinstance(data_dir, Path):
        store = store_at(data_dir)
        for eid in store.list_ids():
            out[f"executions/{eid}"] = b"".join(p.payload for p in store.read_payloads(eid))
        return out
    for sub in ("executions", "keys", "signals"):
        folder = data_dir / sub
        if folder.is_dir():
            for name in sorted(os.listdir(folder)):
                out[f"{sub}/{name}"] = (folder / name).read_bytes()
    return out


def statuses(data_dir: Path) -> dict[str, str]:
    result = CliRunner().invoke(cli, ["status", "--data-dir", str(data_dir), "--json"])
    assert result.exit_code == 0, result.output
    rows = msgspec.json.decode(result.output)
    items = rows["executions"] if isinstance(rows, dict) else rows
    return {row["id"]: row["status"] for row in items}


# -- RetryPolicy is checked when it is built, not when a model call first fails ------------------------------


@pytest.mark.parametrize(
    "options",
    [
        {"max_attempts": "3"},
        {"max_attempts": True},
        {"max_attempts": 0},
        {"max_attempts": 2.0},
        {"max_attempts": None},
        {"base_delay": float("nan")},
        {"base_delay": -1},
        {"base_delay": "0.5"},
        {"max_delay": float("inf")},
        {"max_delay": None},
        {"max_delay": False},
    ],
)
def test_a_bad_retry_policy_is_a_usage_error_when_built(options: dict[str, Any]) -> None:
    with pytest.raises(UsageError) as info:
        RetryPolicy(**options)
    assert info.value.http_status == 400


def test_good_retry_policies_are_accepted() -> None:
    assert RetryPolicy(1, 0, 0).max_attempts == 1
    assert RetryPolicy(max_attempts=10**6, base_delay=0.25, max_delay=60).max_delay == 60


# -- odd shapes from a custom provider --------------------------------------------------------------------------


def _gen() -> Any:
    yield "hello"


class _Turnish(msgspec.Struct):
    content: str = "x"


ODD_TURNS: dict[str, Any] = {
    "tuple": ("hello", None),
    "list": ["hello"],
    "generator": _gen(),
    "struct": _Turnish(),
    "none": None,
    "bytes": b"hello",
    "content-surrogate": {"content": "h\udc80"},
    "model-int": {"content": "x", "model": 5},
    "usage-list": {"content": "x", "usage": [1, 2]},
    "usage-bool": {"content": "x", "usage": {"input_tokens": True}},
    "usage-float": {"content": "x", "usage": {"input_tokens": 1.5}},
    "arguments-list": {"tool_calls": [{"name": "add", "arguments": [1, 2]}]},
    "arguments-bad-json": {"tool_calls": [{"name": "add", "arguments": '{"a": 1'}]},
    "arguments-json-list": {"tool_calls": [{"name": "add", "arguments": "[1, 2]"}]},
    "arguments-surrogate": {"tool_calls": [{"name": "add", "arguments": {"a": "\udc80"}}]},
    "arguments-nan": {"tool_calls": [{"name": "add", "arguments": {"a": float("nan"), "b": 1}}]},
    "name-int": {"tool_calls": [{"name": 5, "arguments": {}}]},
    "name-surrogate": {"tool_calls": [{"name": "a\udc80", "arguments": {}}]},
    "name-none": {"tool_calls": [{"name": None, "arguments": {}}]},
    "id-int": {"tool_calls": [{"id": 5, "name": "add", "arguments": {"a": 1, "b": 2}}]},
    "id-surrogate": {"tool_calls": [{"id": "i\udc80", "name": "add", "arguments": {"a": 1, "b": 2}}]},
    "tool-calls-dict": {"tool_calls": {"name": "add"}},
    "tool-calls-of-str": {"tool_calls": ["add"]},
    "block-unknown": {"content": [{"type": "image", "source": {}}]},
    "block-text-int": {"content": [{"type": "text", "text": 5}]},
    "content-dict": {"content": {"text": "x"}},
    "content-float": {"content": 1.5},
    "choices-empty": {"choices": []},
}


@tool
def add(a: int, b: int) -> int:
    """Add two numbers."""
    return a + b


def _once(turn: Any, *, is_async: bool = False) -> Callable[..., Any]:
    seen = {"n": 0}

    def provider(messages: Any, *args: Any, **kwargs: Any) -> Any:
        seen["n"] += 1
        return turn if seen["n"] == 1 else {"content": "fine"}

    async def aprovider(messages: Any, *args: Any, **kwargs: Any) -> Any:
        return provider(messages)

    return aprovider if is_async else provider


@pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"])
@pytest.mark.parametrize("name", list(ODD_TURNS))
def test_an_odd_provider_turn_is_a_recorded_failed_attempt(data_dir: Path, name: str, is_async: bool) -> None:
    turn = ODD_TURNS[name]
    if name == "generator":
        turn = _gen()
    agent = Agent(data_dir, provider=_once(turn, is_async=is_async), tools=[add], retry=RetryPolicy(2, **NO_WAIT))
    r = asyncio.run(agent.arun("go")) if is_async else agent.run("go")
    assert r.status.value == "completed" and r.answer == "fine"
    records = DataDir(data_dir).execution(r.execution_id).records
    failed = [x for x in records if isinstance(x, ModelCallFailed)]
    refused = [x for x in records if isinstance(x, ToolFinished) and x.source == "invalid"]
    # a turn delite cannot read is a failed attempt; one it reads with a call it cannot make is the call's error
    assert (len(failed) == 1 and "malformed" in failed[0].error) or (not failed and len(refused) == 1)
    assert statuses(data_dir) == {r.execution_id: "completed"}


# -- anything over the record limit from the caller is a UsageError, nothing written -------------------------

BIG = "y" * (MAX_RECORD_SIZE + 16)


@tool(target="client")
def locate(i: int) -> str:
    """Where the client is."""
    raise AssertionError("a client tool has no body here")


@tool(requires_confirmation=True)
def pay(i: int) -> str:
    """Pay."""
    return "paid"


def _suspended(data_dir: Path, tool_: Any) -> tuple[Agent, str]:
    agent = Agent(data_dir, provider=ScriptedProvider([call(tool_.name, i=1), "done"]), tools=[tool_])
    r = agent.run("go")
    assert r.is_suspended
    return agent, r.execution_id


ANSWERS: dict[str, tuple[Any, Callable[[Agent, str], Any]]] = {
    "submit_tool_results": (locate, lambda a, e: a.submit_tool_results(e, {"c1.0": BIG})),
    "asubmit_tool_results": (locate, lambda a, e: asyncio.run(a.asubmit_tool_results(e, {"c1.0": [BIG]}))),
    "submit_tool_results(advance=False)": (
        locate,
        lambda a, e: a.submit_tool_results(e, {"c1.0": {"k": BIG}}, advance=False),
    ),
    "reject(reason)": (pay, lambda a, e: a.reject(e, "c1.0", reason=BIG)),
    "submit_approval(rejection_reason)": (
        pay,
        lambda a, e: a.submit_approval(e, approved=False, rejection_reason=BIG),
    ),
    "cancel(reason)": (pay, lambda a, e: a.cancel(e, reason=BIG)),
}


@pytest.mark.parametrize("name", list(ANSWERS))
def test_an_answer_over_the_record_limit_is_a_usage_error_with_nothing_written(data_dir: Path, name: str) -> None:
    tool_, act = ANSWERS[name]
    agent, eid = _suspended(data_dir, tool_)
    before = written(data_dir)
    with pytest.raises(UsageError, match="too large"):
        act(agent, eid)
    assert written(data_dir) == before
    assert agent.get(eid).status.is_suspended


def test_a_runtime_answer_over_the_limit_is_a_usage_error(data_dir: Path) -> None:
    _, eid = _suspended(data_dir, locate)
    before = written(data_dir)
    with Runtime(data_dir) as rt:
        Agent(provider=ScriptedProvider(["done"]), tools=[locate], runtime=rt)
        with pytest.raises(UsageError, match="too large"):
            rt.submit_tool_results(eid, {"c1.0": BIG})
    assert written(data_dir) == before


RUNS: dict[str, Callable[[Agent], Any]] = {
    "run(text)": lambda a: a.run(BIG),
    "run(text, idempotency_key)": lambda a: a.run(BIG, idempotency_key="k1"),
    "run(metadata)": lambda a: a.run("hi", metadata={"blob": BIG}),
    "run(history)": lambda a: a.run("hi", history=[{"role": "user", "content": BIG}]),
    "arun(text, idempotency_key)": lambda a: asyncio.run(a.arun(BIG, idempotency_key="k2")),
}


@pytest.mark.parametrize("name", list(RUNS))
def test_a_run_input_over_the_record_limit_is_a_usage_error_and_binds_no_key(data_dir: Path, name: str) -> None:
    agent = Agent(data_dir, provider=ScriptedProvider(["hi"]))
    with pytest.raises(UsageError, match="too large"):
        RUNS[name](agent)
    assert written(data_dir) == {}
    assert agent.run("small", idempotency_key="k1").answer == "hi"  # the key is still free


def test_runtime_go_over_the_record_limit_binds_no_key(data_dir: Path) -> None:
    with Runtime(data_dir) as rt:
        agent = Agent(provider=ScriptedProvider(["hi"]), runtime=rt)
        with pytest.raises(UsageError, match="too large"):
            rt.go(agent, BIG, idempotency_key="k")
        assert written(data_dir) == {}
        eid = rt.go(agent, "small", idempotency_key="k")
        assert rt.wait(eid).answer == "hi"


# -- usage a provider reports must be countable: else the turn is malformed (never a crash mid-run) -----------


@pytest.mark.parametrize(
    "usage",
    [
        {"input_tokens": 5, "cost": "NaN"},
        {"input_tokens": 5, "cost": "Infinity"},
        {"input_tokens": 5, "cost": "-5"},
        {"input_tokens": 5, "cost": "abc"},
        {"input_tokens": -3},
        {"output_tokens": -1},
    ],
    ids=["cost-nan", "cost-inf", "cost-negative", "cost-not-a-number", "tokens-negative", "output-negative"],
)
@pytest.mark.parametrize("as_turn", [False, True], ids=["dict", "ModelTurn"])
def test_usage_that_cannot_be_counted_is_a_malformed_turn(data_dir: Path, usage: dict[str, Any], as_turn: bool) -> None:
    from decimal import Decimal

    from delite import Budget
    from delite.log.records import Usage
    from delite.providers._base import ModelTurn

    seen = {"n": 0}

    def provider(messages: Any, *args: Any, **kwargs: Any) -> Any:
        seen["n"] += 1
        if seen["n"] > 1:
            return {"content": "fine", "usage": {"input_tokens": 1, "cost": "0.01"}}
        return ModelTurn(content="x", usage=Usage(**usage)) if as_turn else {"content": "x", "usage": usage}

    agent = Agent(data_dir, provider=provider, retry=RetryPolicy(2, **NO_WAIT), budget=Budget(max_dollars=1))
    r = agent.run("go")  # never decimal.InvalidOperation from the budget, never a run left running
    assert r.status.value == "completed" and r.answer == "fine"
    records = DataDir(data_dir).execution(r.execution_id).records
    failed = [x for x in records if isinstance(x, ModelCallFailed)]
    assert len(failed) == 1 and "usage" in failed[0].error and failed[0].usage is None
    assert r.usage.cost is not None and Decimal(r.usage.cost) == Decimal("0.01")
    assert statuses(data_dir) == {r.execution_id: "completed"}


def _deep(n: int) -> Any:
    value: Any = 1
    for _ in range(n):
        value = {"k": value}
    return value


HUGE_TURNS: dict[str, Any] = {
    "content-over-the-record-limit": {"content": "y" * (MAX_RECORD_SIZE + 16)},
    "calls-over-the-record-limit": {
        "tool_calls": [{"name": "add", "arguments": {"a": "z" * (1 << 20), "b": 1}} for _ in range(70)]
    },
    "arguments-nested-too-deep": {"tool_calls": [{"name": "add", "arguments": {"a": _deep(5000), "b": 1}}]},
    "raw-usage-nested-too-deep": {"content": "x", "raw_usage": _deep(5000)},
}


@pytest.mark.parametrize("name", list(HUGE_TURNS))
def test_a_turn_the_log_cannot_hold_is_a_failed_attempt_not_a_run_left_running(data_dir: Path, name: str) -> None:
    agent = Agent(data_dir, provider=_once(HUGE_TURNS[name]), tools=[add], retry=RetryPolicy(2, **NO_WAIT))
    r = agent.run("go")
    assert r.status.value == "completed" and r.answer == "fine"
    failed = [x for x in DataDir(data_dir).execution(r.execution_id).records if isinstance(x, ModelCallFailed)]
    assert len(failed) == 1 and "malformed" in failed[0].error and failed[0].retryable
    assert statuses(data_dir) == {r.execution_id: "completed"}


class _OddStream:
    """A streaming provider whose first attempt passes ``bad`` to ``on_text``, then streams properly."""

    name = "odd-stream"

    def __init__(self, bad: Any) -> None:
        self.bad = bad
        self.calls = 0

    def __call__(self, messages: Any, tools: Any, model: Any) -> Any:
        return {"content": "fine"}

    def stream(self, messages: Any, tools: Any, model: Any, *, on_text: Callable[[str], None]) -> Any:
        self.calls += 1
        if self.calls == 1:
            on_text(self.bad)
            return {"content": "never recorded"}
        on_text("fine")
        return {"content": "fine"}


@pytest.mark.parametrize("bad", [5, None, b"bytes", ["a"]], ids=["int", "none", "bytes", "list"])
@pytest.mark.parametrize("api", ["stream", "astream"])
def test_a_stream_delta_that_is_not_text_is_a_failed_attempt(data_dir: Path, bad: Any, api: str) -> None:
    agent = Agent(data_dir, provider=_OddStream(bad), retry=RetryPolicy(2, **NO_WAIT))
    if api == "stream":
        text = "".join(agent.stream("go"))
    else:

        async def collect() -> str:
            return "".join([t async for t in agent.astream("go")])

        text = asyncio.run(collect())
    assert text == "fine"
    (eid,) = statuses(data_dir)
    records = DataDir(data_dir).execution(eid).records
    failed = [x for x in records if isinstance(x, ModelCallFailed)]
    assert len(failed) == 1 and "on_text" in failed[0].error
    assert statuses(data_dir) == {eid: "completed"}


def test_a_streamed_lone_surrogate_reaches_the_consumer_printable(data_dir: Path) -> None:
    agent = Agent(data_dir, provider=_OddStream("caf\udce9"), retry=RetryPolicy(2, **NO_WAIT))
    text = "".join(agent.stream("go"))
    text.encode("utf-8")  # never a UnicodeEncodeError when the consumer prints or sends it
    assert text.startswith("caf")
