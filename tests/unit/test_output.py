"""Structured output: the final answer validated as a type, corrected by the model, kept typed across resumes."""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path
from typing import Any, TypedDict

import msgspec
import pytest
from _stores import store_at

from delite import Agent, ScriptedProvider, Status, tool
from delite.errors import StructuredOutputValidationError, UsageError
from delite.log.records import ExecutionCompleted, ExecutionStarted, OutputRejected
from delite.providers import call


@pytest.fixture
def data_dir(any_data_dir: Any) -> Any:
    """Every test here runs on the file store and on PostgreSQL (the files_only ones on files alone)."""
    return any_data_dir


class Weather(msgspec.Struct):
    city: str
    temp_c: float


@dataclasses.dataclass
class Point:
    x: int
    y: int


class Pair(TypedDict):
    left: str
    right: int


@tool
def weather(city: str) -> dict[str, Any]:
    """The weather."""
    return {"city": city, "temp_c": 18}


@pytest.mark.parametrize(
    ("output_type", "answer", "expected"),
    [
        (Weather, '{"city": "Paris", "temp_c": 18}', Weather("Paris", 18.0)),
        (Point, '```json\n{"x": 1, "y": 2}\n```', Point(1, 2)),
        (Pair, 'Here it is: {"left": "a", "right": 3}', {"left": "a", "right": 3}),
    ],
    ids=["struct", "dataclass", "typeddict"],
)
def test_the_answer_is_returned_typed(data_dir: Path, output_type: Any, answer: str, expected: Any) -> None:
    agent = Agent(data_dir, provider=ScriptedProvider([call("weather", city="Paris"), answer]), tools=[weather])
    r = agent.run("weather?", output_type=output_type, execution_id="w")
    assert r.status is Status.COMPLETED and r.output == expected and r.answer == answer
    records = store_at(data_dir).read("w").records
    started = records[0]
    assert isinstance(started, ExecutionStarted) and started.output_schema == msgspec.json.schema(output_type)
    completed = records[-1]
    assert isinstance(completed, ExecutionCompleted) and completed.output == msgspec.to_builtins(expected)


def test_the_model_is_told_the_schema(data_dir: Path) -> None:
    seen: list[list[dict[str, Any]]] = []
    script = ScriptedProvider(['{"x": 1, "y": 2}'])

    def model(messages: list[dict[str, Any]], tools: Any, model_id: Any) -> Any:
        seen.append(messages)
        return script(messages, tools, model_id)

    Agent(data_dir, provider=model, prompt="Be brief.").run("a point", output_type=Point)
    system = [m["content"] for m in seen[0] if m["role"] == "system"]
    assert system[0] == "Be brief." and '"x"' in system[1] and "JSON" in system[1]


def test_a_wrong_answer_is_sent_back_for_correction(data_dir: Path) -> None:
    script = ScriptedProvider(["It is sunny.", '{"city": "Paris"}', '{"city": "Paris", "temp_c": 21}'])
    r = Agent(data_dir, provider=script, output_retries=2).run("weather?", output_type=Weather, execution_id="c")
    assert r.output == Weather("Paris", 21.0)
    records = store_at(data_dir).read("c").records
    rejected = [x for x in records if isinstance(x, OutputRejected)]
    assert [x.step for x in rejected] == [1, 2]
    assert "not JSON" in rejected[0].error and "temp_c" in rejected[1].error
    assert r.steps == 3


def test_it_fails_after_the_limit_with_the_raw_text_and_usage(data_dir: Path) -> None:
    script = ScriptedProvider(["nope", "still nope"])
    agent = Agent(data_dir, provider=script, output_retries=1)
    with pytest.raises(StructuredOutputValidationError) as info:
        agent.run("weather?", output_type=Weather, execution_id="f")
    e = info.value
    assert e.raw == "still nope" and e.execution_id == "f" and e.http_status == 502
    assert e.usage is not None and e.usage.output_tokens == 16  # two calls of 8 tokens
    state = agent.get("f")
    assert state.status is Status.FAILED and state.error_type == "StructuredOutputValidationError"


def test_the_typed_output_survives_a_resume_from_the_log(data_dir: Path) -> None:
    first = Agent(data_dir, provider=ScriptedProvider(['{"x": 3, "y": 4}'])).run(
        "p", output_type=Point, execution_id="s"
    )
    assert first.output == Point(3, 4)
    # A new agent (say, another process) replays the finished execution: no model call, the same typed output.
    again = Agent(data_dir, provider=ScriptedProvider([])).run("p", output_type=Point, execution_id="s")
    assert again.output == Point(3, 4)
    typed_agent = Agent(data_dir, provider=ScriptedProvider([]), output_type=Point)
    assert typed_agent.resume("s").output == Point(3, 4)
    assert typed_agent.response("s").output == Point(3, 4)
    assert Agent(data_dir, provider=ScriptedProvider([])).response("s").output == {"x": 3, "y": 4}


def test_a_suspended_structured_run_resumes_with_its_type(data_dir: Path) -> None:
    @tool(requires_confirmation=True)
    def approve_me(n: int) -> int:
        """Needs approval."""
        return n

    def agent(**options: Any) -> Agent:
        script = ScriptedProvider([call("approve_me", n=1), '{"x": 1, "y": 1}'])
        return Agent(data_dir, provider=script, tools=[approve_me], **options)

    r = agent().run("go", output_type=Point, execution_id="a")
    assert r.is_suspended
    with pytest.raises(UsageError, match="output_type"):
        agent().submit_approval("a", approved=True)  # nothing says what to validate the answer as
    with pytest.raises(UsageError, match="another output type"):
        agent(output_type=Weather).submit_approval("a", approved=True)
    assert agent(output_type=Point).submit_approval("a", approved=True).output == Point(1, 1)


def test_async_structured_output(data_dir: Path) -> None:
    async def main() -> Any:
        agent = Agent(data_dir, provider=ScriptedProvider(["bad", '{"left": "l", "right": 1}']))
        return (await agent.arun("pair", output_type=Pair)).output

    assert asyncio.run(main()) == {"left": "l", "right": 1}


def test_an_unsupported_output_type_is_a_usage_error(data_dir: Path) -> None:
    agent = Agent(data_dir, provider=ScriptedProvider(["x"]))
    with pytest.raises(UsageError, match="not supported"):
        agent.run("x", output_type=object)
    with pytest.raises(UsageError):
        Agent(data_dir, provider=ScriptedProvider(["x"]), output_type=Point, output_retries=-1)
