"""Fuzz the boundary: wrong types for the public arguments and for what a provider returns.

Whatever goes in, every execution in the data directory still reads back and ``delite status`` shows it (never
``unreadable``). A refused argument is a :class:`DeliteError` (a ``UsageError`` for a wrong type) with no byte
written; a provider turn that cannot be read is a recorded failed attempt under the retry policy, so the run
ends failed (or completes, when the turn was understood), never left ``running``, and the model is not called
again for that step beyond the policy's attempts.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from delite import Agent, RetryPolicy, ScriptedProvider, tool
from delite.errors import DeliteError
from delite.providers._base import ModelTurn, ProviderCall
from delite.providers._scripted import call
from delite.state._model import Status
from delite.store import FileStore
from delite_cli.main import cli

ATTEMPTS = 2
KEYS = [
    "content",
    "tool_calls",
    "usage",
    "model",
    "raw_usage",
    "choices",
    "message",
    "type",
    "text",
    "id",
    "name",
    "arguments",
    "input",
    "function",
    "output",
    "call_id",
    "input_tokens",
    "output_tokens",
    "prompt_tokens",
    "completion_tokens",
    "cache_read_input_tokens",
    "role",
    "tool_use",
]
BLOCK_TYPES = ["text", "tool_use", "thinking", "image", "output_text", "message", "function_call", "function"]

text = st.text(max_size=8) | st.text(max_size=4).map(lambda s: s + "\udc80") | st.sampled_from(BLOCK_TYPES + KEYS)
leaf = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats()
    | text
    | st.binary(max_size=4)
    | st.builds(object)
)
json_like = st.recursive(
    leaf,
    lambda kids: st.lists(kids, max_size=3) | st.dictionaries(st.sampled_from(KEYS) | text, kids, max_size=4),
    max_leaves=12,
)
shaped = st.fixed_dictionaries(
    {},
    optional={
        "content": json_like
        | st.lists(
            st.fixed_dictionaries(
                # a type of any kind too: a list or a dict is no type (and cannot be looked up in a set)
                {"type": st.sampled_from(BLOCK_TYPES) | json_like},
                optional={k: json_like for k in KEYS if k != "type"},
            )
        )
        | text,
        "tool_calls": json_like
        | st.lists(st.fixed_dictionaries({"name": json_like}, optional={"id": json_like, "arguments": json_like})),
        "usage": json_like | st.dictionaries(st.sampled_from(KEYS), json_like, max_size=3),
        "model": json_like,
        "raw_usage": json_like,
        "choices": json_like | st.lists(st.fixed_dictionaries({"message": json_like})),
        "output": json_like | st.lists(st.fixed_dictionaries({"type": st.sampled_from(BLOCK_TYPES) | json_like})),
    },
)
turns = st.builds(
    ModelTurn,
    content=json_like,
    tool_calls=st.lists(st.builds(ProviderCall, id=json_like, name=json_like, arguments=json_like), max_size=2)
    | json_like,
    model=json_like,
    usage=json_like,
    raw_usage=json_like,
)
anything = json_like | shaped | turns


@tool
def echo(x: Any = None) -> Any:
    """Return x."""
    return x


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


def all_readable(data_dir: Path) -> dict[str, Status]:
    """Every execution's status, read back through the store and shown by ``delite status``."""
    store = FileStore(data_dir)
    agent = Agent(data_dir)
    statuses = {eid: agent.get(eid).status for eid in store.list_ids()}
    result = CliRunner().invoke(cli, ["status", "--data-dir", str(data_dir), "--json", "--limit", "100"])
    assert result.exit_code == 0, result.output
    shown = {row["id"]: row["status"] for row in msgspec.json.decode(result.output)["executions"]}
    assert shown == {eid: s.value for eid, s in statuses.items()}
    return statuses


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(value=anything)
def test_any_provider_turn_is_recorded_or_a_recorded_failure(value: Any) -> None:
    first_step_calls = 0

    def provider(messages: list[dict[str, Any]], tools: list[dict[str, Any]], model: str | None) -> Any:
        nonlocal first_step_calls
        if any(m.get("role") == "assistant" for m in messages):
            return {"content": "done"}
        first_step_calls += 1
        return value

    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp)
        agent = Agent(
            data_dir,
            provider=provider,
            tools=[echo],
            human_input_tool=None,
            retry=RetryPolicy(max_attempts=ATTEMPTS, base_delay=0),
        )
        with contextlib.suppress(DeliteError):  # a provider error once the retries are spent
            agent.run("hi")
        assert first_step_calls <= ATTEMPTS
        statuses = all_readable(data_dir)
        assert len(statuses) == 1
        assert next(iter(statuses.values())) in (Status.COMPLETED, Status.FAILED)


def _gated(data_dir: Path) -> tuple[Agent, str]:
    agent = Agent(data_dir, provider=ScriptedProvider([call("pay", amount=5), "done"]), tools=[pay])
    return agent, agent.run("pay five").execution_id


CALLS: dict[str, Callable[[Agent, str, Any], Any]] = {
    "cancel(reason)": lambda a, e, v: a.cancel(e, reason=v),
    "approve(reason)": lambda a, e, v: a.approve(e, "c1.0", reason=v),
    "reject(reason)": lambda a, e, v: a.reject(e, "c1.0", reason=v),
    "approve(confirmation_id)": lambda a, e, v: a.approve(e, v),
    "submit_approval(approved)": lambda a, e, v: a.submit_approval(e, approved=v),
    "submit_approval(decisions)": lambda a, e, v: a.submit_approval(e, decisions={"c1.0": v}),
    "submit_approval(decisions=v)": lambda a, e, v: a.submit_approval(e, decisions=v),
    "submit_approval(rejection_reason)": lambda a, e, v: a.submit_approval(e, approved=False, rejection_reason=v),
    "decide(reasons)": lambda a, e, v: a.decide(e, {"c1.0": True}, reasons={"c1.0": v}),
    "resolve(error)": lambda a, e, v: a.resolve(e, "c1.0", error=v),
    "resolve(result)": lambda a, e, v: a.resolve(e, "c1.0", result=v),
    "submit_tool_results": lambda a, e, v: a.submit_tool_results(e, {"c1.0": v}),
    "submit_input": lambda a, e, v: a.submit_input(e, v),
    "resume(model)": lambda a, e, v: a.resume(e, model=v),
    "run(text)": lambda a, e, v: a.run(v),
    "run(model)": lambda a, e, v: a.run("hi", model=v),
    "run(history)": lambda a, e, v: a.run("hi", history=v),
    "run(history=[v])": lambda a, e, v: a.run("hi", history=[v]),
    "run(metadata)": lambda a, e, v: a.run("hi", metadata=v),
    "run(metadata={k: v})": lambda a, e, v: a.run("hi", metadata={"k": v}),
    "run(idempotency_key)": lambda a, e, v: a.run("hi", idempotency_key=v),
    "run(execution_id)": lambda a, e, v: a.run("hi", execution_id=v),
    "Agent(prompt)": lambda a, e, v: Agent(store=a.store, provider=a.provider, prompt=v, tools=[pay]).run("hi"),
    "Agent(agent_id)": lambda a, e, v: Agent(store=a.store, provider=a.provider, agent_id=v, tools=[pay]).run("hi"),
    "Agent(model)": lambda a, e, v: Agent(store=a.store, provider=a.provider, model=v, tools=[pay]).run("hi"),
}


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(name=st.sampled_from(sorted(CALLS)), value=anything | st.lists(json_like, max_size=2))
def test_any_argument_is_recorded_readably_or_refused_with_nothing_written(name: str, value: Any) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp)
        agent, eid = _gated(data_dir)
        before = written(data_dir)
        refused = False
        try:
            CALLS[name](agent, eid, value)
        except DeliteError:  # a UsageError for a wrong type; a 409 or 404 for a right type at the wrong time
            refused = True
        if refused:
            assert written(data_dir) == before
        all_readable(data_dir)
