"""The writer never writes what the reader refuses; wrong argument types are a UsageError with nothing written."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec
import pytest
from click.testing import CliRunner

from delite import Agent, Runtime, ScriptedProvider, tool
from delite.datadir import DataDir
from delite.errors import InvalidRecordError, UsageError
from delite.log._codec import decode_record, encode_record
from delite.log.records import DecisionRecorded, ExecutionCancelled, ExecutionStarted, ModelResponded, Usage
from delite.providers._scripted import call
from delite.store import FileStore, MemoryStore
from delite_cli.main import cli


@tool(requires_confirmation=True)
def pay(amount: int) -> str:
    """Pay."""
    return f"paid {amount}"


def written(data_dir: Path) -> dict[str, bytes]:
    """Every file whose bytes are durable state: logs, idempotency keys, cancel signals."""
    out: dict[str, bytes] = {}
    for sub in ("executions", "keys", "signals"):
        folder = data_dir / sub
        if folder.is_dir():
            for name in sorted(os.listdir(folder)):
                out[f"{sub}/{name}"] = (folder / name).read_bytes()
    return out


def gated(data_dir: Path) -> tuple[Agent, str]:
    agent = Agent(data_dir, provider=ScriptedProvider([call("pay", amount=5), "done"]), tools=[pay])
    r = agent.run("pay five")
    assert r.status.value == "waiting_approval"
    return agent, r.execution_id


def status_shows(data_dir: Path) -> dict[str, str]:
    result = CliRunner().invoke(cli, ["status", "--data-dir", str(data_dir), "--json"])
    assert result.exit_code == 0, result.output
    rows = msgspec.json.decode(result.output)
    items = rows["executions"] if isinstance(rows, dict) else rows
    return {row["id"]: row["status"] for row in items}


# -- the write path ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "record",
    [
        ExecutionCancelled(reason=None),  # type: ignore[arg-type]
        DecisionRecorded(call_id="c1.0", approved="no"),  # type: ignore[arg-type]
        DecisionRecorded(call_id="c1.0", approved=True, reason=123),  # type: ignore[arg-type]
        ExecutionStarted(execution_id="x", input="lone \udc80 surrogate"),
        ExecutionStarted(execution_id="x", agent_id=None),  # type: ignore[arg-type]
        ExecutionStarted(execution_id="x", history=["text"]),  # type: ignore[list-item]
        ExecutionStarted(execution_id="x", metadata={"a": object()}),
        ExecutionStarted(execution_id="x", at=float("nan")),
        ModelResponded(step=1, content=[{"type": "text", "text": "hi"}]),  # type: ignore[arg-type]
        ModelResponded(step=1, model=123),  # type: ignore[arg-type]
        ModelResponded(step=1, usage=5),  # type: ignore[arg-type]
        ModelResponded(step=1, usage=Usage(input_tokens="3")),  # type: ignore[arg-type]
    ],
)
def test_the_writer_refuses_what_the_reader_would(tmp_path: Path, record: Any) -> None:
    with pytest.raises(InvalidRecordError) as info:
        encode_record(record)
    assert isinstance(info.value, UsageError) and info.value.http_status == 400
    store = FileStore(tmp_path)
    first = ExecutionStarted(execution_id="e1", input="hi")
    with store.claim("e1", create=[first]) as log:
        before = (tmp_path / "executions" / "e1.log").read_bytes()
        with pytest.raises(InvalidRecordError):
            log.append([ExecutionCancelled(reason="fine"), record])  # one bad record: none of the batch is written
        assert (tmp_path / "executions" / "e1.log").read_bytes() == before
    memory = MemoryStore()
    with memory.claim("e1", create=[first]) as log, pytest.raises(InvalidRecordError):
        log.append([record])
    assert [type(r) for r in memory.read("e1").records] == [ExecutionStarted]
    first_bad = record if isinstance(record, ExecutionStarted) else ExecutionStarted(execution_id="e2", input=None)  # type: ignore[arg-type]
    with pytest.raises(InvalidRecordError):  # a bad first record: no log is created at all
        store.claim("e2", create=[first_bad])
    assert not (tmp_path / "executions" / "e2.log").exists()


def test_what_the_writer_accepts_reads_back_equal() -> None:
    record = ExecutionStarted(execution_id="x", input="héllo ☃", metadata={"n": [1, 2.5, None, True]})
    assert decode_record(encode_record(record)) == record


# -- public arguments ------------------------------------------------------------------------------------------

BadCall = Callable[[Agent, str], Any]

BAD_CALLS: dict[str, BadCall] = {
    "cancel(reason=None)": lambda a, e: a.cancel(e, reason=None),  # type: ignore[arg-type]
    "cancel(reason=7)": lambda a, e: a.cancel(e, reason=7),  # type: ignore[arg-type]
    "reject(reason=123)": lambda a, e: a.reject(e, "c1.0", reason=123),  # type: ignore[arg-type]
    "approve(reason=[...])": lambda a, e: a.approve(e, "c1.0", reason=["x"]),  # type: ignore[arg-type]
    "approve(surrogate reason)": lambda a, e: a.approve(e, "c1.0", reason="\ud800"),
    "submit_approval(approved='false')": lambda a, e: a.submit_approval(e, approved="false"),  # type: ignore[arg-type]
    "submit_approval(approved=0.0)": lambda a, e: a.submit_approval(e, approved=0.0),  # type: ignore[arg-type]
    "submit_approval(approved=1)": lambda a, e: a.submit_approval(e, approved=1),  # type: ignore[arg-type]
    "submit_approval(decisions=no)": lambda a, e: a.submit_approval(e, decisions={"c1.0": "no"}),  # type: ignore[dict-item]
    "submit_approval(decisions=None value)": lambda a, e: a.submit_approval(e, decisions={"c1.0": None}),  # type: ignore[dict-item]
    "submit_approval(rejection_reason=5)": lambda a, e: a.submit_approval(e, approved=False, rejection_reason=5),  # type: ignore[arg-type]
    "decide(decisions=0)": lambda a, e: a.decide(e, {"c1.0": 0}),  # type: ignore[dict-item]
    "decide(decisions=list)": lambda a, e: a.decide(e, [("c1.0", True)]),  # type: ignore[arg-type]
    "decide(reasons=3)": lambda a, e: a.decide(e, {"c1.0": True}, reasons={"c1.0": 3}),  # type: ignore[dict-item]
    "resolve(error=404)": lambda a, e: a.resolve(e, "c1.0", error=404),  # type: ignore[arg-type]
    "resolve(result=object)": lambda a, e: a.resolve(e, "c1.0", result=object()),
    "resolve(result=nan)": lambda a, e: a.resolve(e, "c1.0", result=float("nan")),
    "resolve(rerun='yes')": lambda a, e: a.resolve(e, "c1.0", rerun="yes"),  # type: ignore[arg-type]
    "submit_tool_results(surrogate)": lambda a, e: a.submit_tool_results(e, {"c1.0": "\udcff"}),
    "submit_tool_results(list)": lambda a, e: a.submit_tool_results(e, ["c1.0"]),  # type: ignore[arg-type]
    "submit_input(text=5)": lambda a, e: a.submit_input(e, 5),  # type: ignore[arg-type]
    "submit_input(surrogate)": lambda a, e: a.submit_input(e, "\udc80"),
    "resume(model=123)": lambda a, e: a.resume(e, model=123),  # type: ignore[arg-type]
    "run(model=123)": lambda a, e: a.run("hi", model=123),  # type: ignore[arg-type]
    "run(history=['text'])": lambda a, e: a.run("hi", history=["text"]),  # type: ignore[list-item]
    "run(history=role)": lambda a, e: a.run("hi", history=[{"role": 5, "content": "x"}]),
    "run(history=role-a-list)": lambda a, e: a.run("hi", history=[{"role": [], "content": "x"}]),
    "run(history=content)": lambda a, e: a.run("hi", history=[{"role": "user", "content": 5}]),
    "run(history=str)": lambda a, e: a.run("hi", history="hello"),  # type: ignore[arg-type]
    "run(metadata=set)": lambda a, e: a.run("hi", metadata={"k": {1}}),
    "run(metadata=bytes)": lambda a, e: a.run("hi", metadata={"k": b"x"}),
    "run(metadata=int key)": lambda a, e: a.run("hi", metadata={1: "x"}),  # type: ignore[dict-item]
    "run(metadata=nan)": lambda a, e: a.run("hi", metadata={"k": float("inf")}),
    "run(metadata=list)": lambda a, e: a.run("hi", metadata=[1]),  # type: ignore[arg-type]
    "run(text=surrogate)": lambda a, e: a.run("caf\udce9"),
    "run(text=None)": lambda a, e: a.run(None),  # type: ignore[arg-type]
    "run(idempotency_key=5)": lambda a, e: a.run("hi", idempotency_key=5),  # type: ignore[arg-type]
    "run(idempotency_key=surrogate)": lambda a, e: a.run("hi", idempotency_key="k\udc80"),
    "run(execution_id=7)": lambda a, e: a.run("hi", execution_id=7),  # type: ignore[arg-type]
    "resume(execution_id=None)": lambda a, e: a.resume(None),  # type: ignore[arg-type]
    "cancel(execution_id=b'x')": lambda a, e: a.cancel(b"x"),  # type: ignore[arg-type]
    "approve(confirmation_id=1)": lambda a, e: a.approve(e, 1),  # type: ignore[arg-type]
    "submit_input(advance='no')": lambda a, e: a.submit_input(e, "x", advance="no"),  # type: ignore[arg-type]
}


@pytest.mark.parametrize("name", list(BAD_CALLS))
def test_a_wrong_argument_is_a_usage_error_with_nothing_written(data_dir: Path, name: str) -> None:
    agent, eid = gated(data_dir)
    before = written(data_dir)
    with pytest.raises(UsageError):
        BAD_CALLS[name](agent, eid)
    assert written(data_dir) == before
    assert agent.get(eid).status.value == "waiting_approval"
    assert set(status_shows(data_dir).values()) == {"waiting_approval"}
    # A right answer still goes through afterwards.
    assert agent.submit_approval(eid, approved=False).status.value == "completed"


@pytest.mark.parametrize(
    "options",
    [
        {"prompt": 123},
        {"agent_id": None},
        {"agent_id": ""},
        {"model": 5},
        {"require_approval": "pay"},
        {"human_input_tool": 1},
        {"parallel_tool_calls": "no"},
        {"output_retries": -1},
        {"retry": 3},
        {"tools": "pay"},
        {"tools": [42]},
        {"provider": 123},
        {"durability": "fast"},
        {"durability": 1},
        {"store": "memory"},
        {"clock": 0},
    ],
)
def test_a_wrong_agent_option_is_a_usage_error(data_dir: Path, options: dict[str, Any]) -> None:
    options.setdefault("provider", ScriptedProvider(["hi"]))
    with pytest.raises(UsageError):
        Agent(data_dir, **options)
    assert written(data_dir) == {}


@pytest.mark.parametrize(
    "options",
    [
        {"description": 5},
        {"requires_confirmation": "yes"},
        {"retry_in_doubt": 0},
        {"parallel": None},
        {"target": "browser"},
        {"parameters": {"type": {1, 2}}},
        {"parameters": "schema"},
    ],
)
def test_a_wrong_tool_option_is_a_usage_error(options: dict[str, Any]) -> None:
    def f(x: int) -> int:
        return x

    with pytest.raises(UsageError):
        tool(**options)(f)


def test_an_agent_attribute_changed_to_a_wrong_type_is_refused_at_the_write(data_dir: Path) -> None:
    agent = Agent(data_dir, provider=ScriptedProvider(["hi"]))
    agent.agent_id = None  # type: ignore[assignment]
    with pytest.raises(InvalidRecordError, match="agent_id"):
        agent.run("hello")
    assert written(data_dir) == {}  # no log: the first record never went down


def test_runtime_go_checks_before_binding_a_key(data_dir: Path) -> None:
    agent = Agent(data_dir, provider=ScriptedProvider(["hi"]))
    with Runtime(data_dir) as rt:
        with pytest.raises(UsageError):
            rt.go(agent, "hi", idempotency_key="k", metadata={"a": {1}})
        with pytest.raises(UsageError):
            rt.go(agent, "hi", history=["x"])
    assert written(data_dir) == {}


def test_runtime_signal_refuses_a_decision_that_is_not_a_bool(data_dir: Path) -> None:
    agent, eid = gated(data_dir)
    before = written(data_dir)
    with Runtime(data_dir) as rt:
        rt.join(agent)
        with pytest.raises(UsageError):
            rt.signal(eid, "c1.0", "false")  # type: ignore[arg-type]
    assert written(data_dir) == before


def test_real_bools_still_decide(data_dir: Path) -> None:
    agent, eid = gated(data_dir)
    r = agent.submit_approval(eid, decisions={"c1.0": True})
    assert r.answer == "done"
    assert DataDir(data_dir).execution(eid).state.status.value == "completed"


# -- text from inside a run ------------------------------------------------------------------------------------


def test_unencodable_text_from_tools_and_contracts_is_recorded_readably(data_dir: Path) -> None:
    from delite.tools._base import Clarification

    @tool
    def open_file(name: str) -> str:
        """Open a file whose name came from a non-UTF-8 file system."""
        raise FileNotFoundError(f"no such file: {name}\udcff")

    @tool
    def ask() -> Clarification:
        """Ask a question that is not text."""
        return Clarification(question=42)  # type: ignore[arg-type]

    script = ScriptedProvider([{"tool_calls": [{"name": "open_file", "arguments": {"name": "a"}}]}, call("ask"), "ok"])
    agent = Agent(data_dir, provider=script, tools=[open_file, ask])
    r = agent.run("go")
    assert r.status.value == "waiting_human_input"
    assert r.suspend_reason is not None and r.suspend_reason.question == "42"
    calls = DataDir(data_dir).execution(r.execution_id).tool_calls
    assert calls[0].error is not None and "no such file: a" in calls[0].error
    assert status_shows(data_dir) == {r.execution_id: "waiting_human_input"}


def test_a_contract_message_that_is_not_utf8_is_recorded_readably(data_dir: Path) -> None:
    @tool
    def wipe(path: str) -> str:
        """Wipe."""
        return path

    agent = Agent(data_dir, provider=ScriptedProvider([call("wipe", path="/"), "ok"]), tools=[wipe])

    @agent.contract("no-root")
    def no_root(name: str, arguments: dict[str, Any]) -> None:
        raise ValueError("refused \udc80")

    r = agent.run("wipe it")
    assert r.suspend_reason is not None and r.suspend_reason.kind == "contract"
    assert "refused" in r.suspend_reason.calls[0].message
    assert status_shows(data_dir) == {r.execution_id: r.status.value}


def test_a_value_nested_too_deep_is_named_in_one_short_line() -> None:
    from delite._checks import check_json
    from delite.errors import UsageError

    value: list[Any] = []
    inner = value
    for _ in range(500):
        inner.append([])
        inner = inner[0]
    with pytest.raises(UsageError) as caught:
        check_json("result", value)
    text = str(caught.value)
    assert text.startswith("result[0][0]") and text.endswith("is nested more than 200 levels deep")
    assert len(text) < 250 and "\n" not in text  # the path, one "[0]" per level, is shortened
