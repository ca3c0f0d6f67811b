from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

import msgspec
import pytest
from _stores import log_size, nothing_stored, store_at

from delite import Agent, MemoryStore, ScriptedProvider, Status, current_idempotency_key, tool
from delite.errors import (
    DeliteError,
    ExecutionNotFoundError,
    InvalidExecutionIdError,
    ProviderError,
    ReplayMismatchError,
    UsageError,
)
from delite.log.records import ExecutionResumed, ModelResponded, ToolFinished, ToolStarted
from delite.providers import call


@pytest.fixture
def data_dir(any_data_dir: Any) -> Any:
    """Every test here runs on the file store and on PostgreSQL (the files_only ones on files alone)."""
    return any_data_dir


def make_agent(data_dir: Path, script: list[Any], tools: list[Any], **kw: Any) -> Agent:
    return Agent(data_dir, provider=ScriptedProvider(script), tools=tools, **kw)


@pytest.fixture
def counter() -> dict[str, int]:
    return {}


@pytest.fixture
def add(counter: dict[str, int]) -> Any:
    @tool
    def add(a: int, b: int) -> int:
        """Add two integers."""
        counter["add"] = counter.get("add", 0) + 1
        return a + b

    return add


def test_run_completes_and_records_every_step(data_dir: Path, add: Any, counter: dict[str, int]) -> None:
    agent = make_agent(data_dir, [call("add", a=2, b=3), lambda m: f"sum={m[-1]['content']}"], [add])
    r = agent.run("add 2 and 3", metadata={"thread_id": "t1"})
    assert r.answer == "sum=5" and str(r) == "sum=5"
    assert r.status is Status.COMPLETED and not r.is_suspended
    assert r.steps == 2 and counter["add"] == 1
    state = agent.get(r.execution_id)
    assert state.metadata == {"thread_id": "t1"}
    assert [m["role"] for m in state.messages] == ["user", "assistant", "tool", "assistant"]
    kinds = [type(x).__name__ for x in store_at(data_dir).read(r.execution_id).records]
    assert kinds == [
        "ExecutionStarted",
        "ModelResponded",
        "ToolStarted",
        "ToolFinished",
        "ModelResponded",
        "ExecutionCompleted",
    ]


def test_rerun_of_completed_execution_replays_without_calls(data_dir: Path, add: Any, counter: dict[str, int]) -> None:
    provider = ScriptedProvider([call("add", a=1, b=1), "two"])
    agent = Agent(data_dir, provider=provider, tools=[add])
    r = agent.run("x")
    calls = provider.calls
    again = agent.run("x", execution_id=r.execution_id)
    assert again == r
    assert provider.calls == calls and counter["add"] == 1


def test_same_id_with_other_input_is_refused(data_dir: Path, add: Any) -> None:
    agent = make_agent(data_dir, ["ok"], [add])
    r = agent.run("x", execution_id="job-1")
    with pytest.raises(UsageError, match="another input"):
        agent.run("y", execution_id=r.execution_id)


def test_history_and_prompt_shape_the_conversation(data_dir: Path) -> None:
    seen: list[list[dict[str, Any]]] = []

    def provider(messages: list[dict[str, Any]], tools: list[dict[str, Any]], model: str | None) -> dict[str, Any]:
        seen.append(messages)
        return {"content": f"model={model}", "usage": {"input_tokens": 5, "output_tokens": 2}}

    agent = Agent(data_dir, provider=provider, prompt="be brief", model="m-default", human_input_tool=None)
    history = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]
    r = agent.run("again", history=history, model="m-override")
    assert r.answer == "model=m-override"
    assert seen[0] == [{"role": "system", "content": "be brief"}, *history, {"role": "user", "content": "again"}]
    turn = next(x for x in store_at(data_dir).read(r.execution_id).records if isinstance(x, ModelResponded))
    assert turn.model == "m-override"
    assert r.usage.input_tokens == 5 and r.usage.output_tokens == 2
    assert agent.run("plain").answer == "model=m-default"


def test_tool_errors_invalid_arguments_and_unknown_tools_go_to_the_model(data_dir: Path) -> None:
    @tool
    def boom(x: int) -> int:
        """Always fails."""
        raise RuntimeError(f"boom {x}")

    script = [
        {
            "tool_calls": [
                {"name": "boom", "arguments": {"x": 1}},
                {"name": "boom", "arguments": {"x": "not a number"}},
                {"name": "nope", "arguments": {}},
            ]
        },
        lambda m: " | ".join(x["content"] for x in m if x["role"] == "tool"),
    ]
    r = make_agent(data_dir, script, [boom]).run("go")
    assert r.status is Status.COMPLETED
    parts = r.answer.split(" | ")
    assert parts[0] == "Error: RuntimeError: boom 1"
    assert parts[1].startswith("Error: invalid arguments for boom: Expected `int`")
    assert parts[2] == "Error: unknown tool 'nope'"
    records = store_at(data_dir).read(r.execution_id).records
    assert sum(isinstance(x, ToolStarted) for x in records) == 1  # only the valid call's body ran


def test_async_tools_and_non_json_results(data_dir: Path) -> None:
    class Point(msgspec.Struct):
        x: int
        y: int

    @tool
    async def locate(name: str) -> Point:
        """Find a point."""
        await asyncio.sleep(0)
        return Point(1, len(name))

    @tool
    def weird() -> object:
        """Returns something JSON cannot hold."""
        return object()

    script = [
        {"tool_calls": [{"name": "locate", "arguments": {"name": "abc"}}, {"name": "weird", "arguments": {}}]},
        lambda m: " | ".join(x["content"] for x in m if x["role"] == "tool"),
    ]
    r = make_agent(data_dir, script, [locate, weird]).run("go")
    first, second = r.answer.split(" | ")
    assert msgspec.json.decode(first) == {"x": 1, "y": 3}
    assert second.startswith("Error: tool returned a value that cannot be stored as JSON")


def test_idempotency_key_is_stable_and_unique(data_dir: Path) -> None:
    keys: list[str] = []

    @tool
    def pay(n: int) -> str:
        """Pay."""
        keys.append(current_idempotency_key())
        return "paid"

    script = [
        {"tool_calls": [{"name": "pay", "arguments": {"n": 1}}, {"name": "pay", "arguments": {"n": 2}}]},
        call("pay", n=3),
        "done",
    ]
    r = make_agent(data_dir, script, [pay]).run("go")
    assert len(keys) == 3 and len(set(keys)) == 3
    assert all(k.startswith(r.execution_id + ":") for k in keys)
    with pytest.raises(UsageError):
        current_idempotency_key()


def _crash_inside_tool(data_dir: Path, tools: list[Any]) -> str:
    """Write a log as a process that died inside the first tool call would have left it."""
    agent = make_agent(data_dir, [call("pay", n=1), "done"], tools)
    store = store_at(data_dir)

    class Died(BaseException):
        pass

    def dying(**_: Any) -> None:
        raise Died

    original = tools[0].fn
    tools[0].fn = dying
    try:
        with pytest.raises(Died):
            agent.run("go", execution_id="crashy")
    finally:
        tools[0].fn = original
    records = store.read("crashy").records
    assert isinstance(records[-1], ToolStarted)
    return "crashy"


def test_in_doubt_call_is_retried_with_the_same_key(data_dir: Path) -> None:
    keys: list[tuple[str, int]] = []

    @tool
    def pay(n: int) -> str:
        """Pay."""
        from delite import current_call

        keys.append((current_idempotency_key(), current_call().attempt))
        return "paid"

    eid = _crash_inside_tool(data_dir, [pay])
    started = [x for x in store_at(data_dir).read(eid).records if isinstance(x, ToolStarted)]
    r = make_agent(data_dir, [call("pay", n=1), "done"], [pay]).run("go", execution_id=eid)
    assert r.answer == "done"
    assert keys == [(started[0].idempotency_key, 2)]
    records = store_at(data_dir).read(eid).records
    retry = [x for x in records if isinstance(x, ToolStarted)]
    assert [x.attempt for x in retry] == [1, 2]
    assert any(isinstance(x, ExecutionResumed) for x in records)


def test_in_doubt_call_not_safe_to_retry_suspends_until_resolved(data_dir: Path) -> None:
    ran: list[int] = []

    @tool(retry_in_doubt=False)
    def pay(n: int) -> str:
        """Pay."""
        ran.append(n)
        return "paid"

    eid = _crash_inside_tool(data_dir, [pay])
    agent = make_agent(data_dir, [call("pay", n=1), lambda m: f"final: {m[-1]['content']}"], [pay])
    r = agent.run("go", execution_id=eid)
    assert r.is_suspended and r.status is Status.SUSPENDED
    assert r.suspend_reason is not None and r.suspend_reason.kind == "in_doubt"
    assert r.suspend_reason.confirmation_id == "c1.0" and ran == []
    # Asking again changes nothing and writes nothing.
    size = log_size(data_dir, eid)
    assert agent.resume(eid).suspend_reason == r.suspend_reason
    assert log_size(data_dir, eid) == size
    done = agent.resolve(eid, "c1.0", result="confirmed paid by operator")
    assert done.answer == "final: confirmed paid by operator" and ran == []
    fin = [x for x in store_at(data_dir).read(eid).records if isinstance(x, ToolFinished)]
    assert fin[-1].source == "operator"


def test_in_doubt_rerun_on_operator_request(data_dir: Path) -> None:
    ran: list[int] = []

    @tool(retry_in_doubt=False)
    def pay(n: int) -> str:
        """Pay."""
        ran.append(n)
        return "paid"

    eid = _crash_inside_tool(data_dir, [pay])
    agent = make_agent(data_dir, [call("pay", n=1), "done"], [pay])
    assert agent.resume(eid).is_suspended
    assert agent.resolve(eid, "c1.0", rerun=True).answer == "done"
    assert ran == [1]


def test_recorded_call_to_a_missing_tool_is_an_error_before_anything_runs(data_dir: Path) -> None:
    @tool
    def pay(n: int) -> str:
        """Pay."""
        return "paid"

    eid = _crash_inside_tool(data_dir, [pay])
    agent = Agent(data_dir, provider=ScriptedProvider([call("pay", n=1), "done"]), on_drift="allow")
    with pytest.raises(ReplayMismatchError, match="'pay'"):
        agent.resume(eid)


@pytest.mark.parametrize(
    "bad",
    ["", "../etc/passwd", "a/b", "a\\b", "..", "x..y", "a\x00b", "a\nb", "é", " lead", "-x", "x" * 129, ".hidden"],
)
def test_hostile_execution_ids_are_refused_before_any_file_is_touched(data_dir: Path, bad: str) -> None:
    agent = make_agent(data_dir, ["ok"], [])
    with pytest.raises(InvalidExecutionIdError) as info:
        agent.run("x", execution_id=bad)
    assert isinstance(info.value, ValueError) and info.value.http_status == 400
    assert nothing_stored(data_dir)


def test_unknown_execution(data_dir: Path) -> None:
    agent = make_agent(data_dir, ["ok"], [])
    with pytest.raises(ExecutionNotFoundError) as info:
        agent.resume("nope")
    assert isinstance(info.value, LookupError) and info.value.http_status == 404
    assert info.value.execution_id == "nope"


def test_provider_failure_fails_the_execution_and_resume_retries(data_dir: Path) -> None:
    attempts = {"n": 0}

    def flaky(messages: list[dict[str, Any]], tools: list[dict[str, Any]], model: str | None) -> dict[str, Any]:
        attempts["n"] += 1
        if attempts["n"] == 1:
            raise ProviderError("bad request", provider="flaky")
        return {"content": "ok"}

    agent = Agent(data_dir, provider=flaky)
    with pytest.raises(ProviderError):
        agent.run("x", execution_id="f1")
    assert agent.get("f1").status is Status.FAILED
    assert agent.resume("f1").answer == "ok"


def test_retryable_provider_failure_is_retried_and_recorded(data_dir: Path) -> None:
    from delite import RetryPolicy
    from delite.log.records import ModelCallFailed

    attempts = {"n": 0}

    def flaky(messages: list[dict[str, Any]], tools: list[dict[str, Any]], model: str | None) -> dict[str, Any]:
        attempts["n"] += 1
        if attempts["n"] < 3:
            raise ProviderError("overloaded", provider="flaky", retryable=True, retry_after=0.0)
        return {"content": "ok"}

    agent = Agent(data_dir, provider=flaky, retry=RetryPolicy(max_attempts=5, base_delay=0.0))
    r = agent.run("x")
    assert r.answer == "ok"
    failed = [x for x in store_at(data_dir).read(r.execution_id).records if isinstance(x, ModelCallFailed)]
    assert [f.attempt for f in failed] == [1, 2] and all(f.retryable for f in failed)


def test_memory_store_runs_the_same_engine(add: Any) -> None:
    agent = Agent(store=MemoryStore(), provider=ScriptedProvider([call("add", a=1, b=2), "3"]), tools=[add])
    assert agent.run("x").answer == "3"


def test_errors_map_to_http_status_and_pickle() -> None:
    import pickle

    from delite import errors

    for name in errors.__all__:
        cls = getattr(errors, name)
        if issubclass(cls, Warning):  # delite's own deprecation category, not an error
            assert cls is errors.DeliteDeprecationWarning
            continue
        if not issubclass(cls, Exception):  # the base of the control signals: not an error either
            assert cls is errors.ControlSignal and issubclass(cls, BaseException)
            continue
        assert issubclass(cls, DeliteError)
        assert isinstance(cls.http_status, int)
    e = errors.LogCorruptError("/x.log", 42, "bad")
    again = pickle.loads(pickle.dumps(e))
    assert (again.path, again.offset, again.reason, str(again)) == ("/x.log", 42, "bad", str(e))
    h = errors.ProviderHTTPError(429, "slow down", provider="p", retryable=True, retry_after=1.5)
    h2 = pickle.loads(pickle.dumps(h))
    assert (h2.status_code, h2.retryable, h2.retry_after) == (429, True, 1.5)


def test_every_error_with_a_detail_says_it_once() -> None:
    # ExecutionIdConflictError said it twice ("execution 'e1': X: X") for a fork or copy onto a taken id.
    import inspect
    import pickle

    from delite import errors

    marker = "the-detail-given"
    checked = []
    for name in errors.__all__:
        cls = getattr(errors, name)
        if not isinstance(cls, type) or not issubclass(cls, Exception):
            continue
        params = inspect.signature(cls.__init__).parameters
        if "detail" not in params:
            continue
        required = [p for p in list(params)[1:] if params[p].default is inspect.Parameter.empty and p != "detail"]
        e = cls(*["e1"] * len(required), detail=marker)
        text = str(e)
        assert text.count(marker) == 1 and "e1" in text, (name, text)
        assert str(pickle.loads(pickle.dumps(e))) == text, name
        checked.append(name)
    assert "ExecutionIdConflictError" in checked and len(checked) >= 10


def test_import_does_not_load_vendor_sdks() -> None:
    import subprocess

    code = "import delite, sys; print(any(m in sys.modules for m in ('openai', 'anthropic', 'httpx2', 'rich')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_log_naming_an_unknown_call_is_a_clear_error(data_dir: Path) -> None:
    from delite.errors import LogCorruptError
    from delite.log.records import ExecutionStarted
    from delite.state import fold

    records = [ExecutionStarted(execution_id="e"), ToolFinished(call_id="ghost", result=1)]
    with pytest.raises(LogCorruptError, match="unknown call 'ghost'"):
        fold(records)


def test_idempotency_key_bound_before_a_crash_does_not_dead_end(data_dir: Path) -> None:
    store = store_at(data_dir)
    # A process bound the key, then died before it created the execution.
    import hashlib

    import msgspec as _msgspec

    fingerprint = hashlib.sha256(_msgspec.json.encode(["go", []])).hexdigest()
    store.bind_key("req-9", "exec-9", fingerprint)
    agent = Agent(data_dir, provider=ScriptedProvider(["ok"]))
    r = agent.run("go", idempotency_key="req-9")
    assert (r.execution_id, r.answer) == ("exec-9", "ok")
