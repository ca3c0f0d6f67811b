"""``OpenAI()``, ``OpenAIResponses()`` and ``Anthropic()`` with no arguments: a documented default model each,
overridden by ``DELITE_*_MODEL``; run through the real SDKs against the fake server."""

from __future__ import annotations

from pathlib import Path

import pytest
from fakellm import FakeLLM, Script, Turn
from providerkit import base_url

from delite import Agent
from delite.errors import UsageError
from delite.providers import Anthropic, OpenAI, OpenAIResponses
from delite.providers._sdk import SDKProvider

CASES: list[tuple[str, type[SDKProvider], str, str, str, str]] = [
    ("chat", OpenAI, "gpt-4o-mini", "DELITE_OPENAI_MODEL", "OPENAI_API_KEY", "OPENAI_BASE_URL"),
    ("responses", OpenAIResponses, "gpt-5-mini", "DELITE_OPENAI_RESPONSES_MODEL", "OPENAI_API_KEY", "OPENAI_BASE_URL"),
    ("messages", Anthropic, "claude-haiku-4-5", "DELITE_ANTHROPIC_MODEL", "ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL"),
]


@pytest.mark.parametrize(("api", "cls", "default", "env_model", "env_key", "env_url"), CASES, ids=str)
def test_no_argument_provider_uses_the_default_model_then_the_env(  # noqa: PLR0917 - the parametrized columns
    fake: FakeLLM,
    data_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
    api: str,
    cls: type[SDKProvider],
    default: str,
    env_model: str,
    env_key: str,
    env_url: str,
) -> None:
    monkeypatch.setenv(env_key, "test-key")
    monkeypatch.setenv(env_url, base_url(fake, api))
    assert cls.default_model == default and cls.env_model == env_model
    fake.load(Script(turns=[Turn(text="one")]))  # each new conversation gets turn one
    provider = cls()
    assert provider.model == default and provider.name == f"{cls.vendor}:{default}"
    assert Agent(data_dir, provider=provider).run("hi").answer == "one"
    monkeypatch.setenv(env_model, "my-model")
    overridden = cls()
    assert overridden.model == "my-model"
    assert Agent(data_dir, provider=overridden, agent_id="other").run("hi").answer == "one"
    assert [r["body"]["model"] for r in fake.requests] == [default, "my-model"]
    assert cls("explicit").model == "explicit"  # an argument beats the environment
    monkeypatch.setenv(env_model, "")  # empty is unset
    assert cls().model == default


def test_a_model_that_is_not_a_string_is_a_usage_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "k")
    for bad in (123, b"gpt", ""):
        with pytest.raises(UsageError, match="needs a model id"):
            OpenAI(bad)  # type: ignore[arg-type]


def test_the_seed_quick_start_shape(fake: FakeLLM, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # agent.set_llm(OpenAI()) with the key (and here the base URL) from the environment, as the seed writes it.
    monkeypatch.setenv("OPENAI_API_KEY", "test-key")
    monkeypatch.setenv("OPENAI_BASE_URL", base_url(fake, "chat"))
    fake.load(Script(turns=[Turn(text="sunny")]))
    with Agent(tmp_path / "data") as agent:
        agent.set_llm(OpenAI())
        response = agent.run("What's the weather in San Francisco?")
    assert str(response) == "sunny"


@pytest.mark.parametrize("api", ["chat", "responses", "messages"])
def test_an_unpriced_model_under_a_dollar_limit_says_its_cost_is_unknown(
    fake: FakeLLM, data_dir: Path, api: str
) -> None:
    from fakellm import Call
    from providerkit import make_agent, make_provider

    from delite import Budget

    # The server reports a model the price table does not know: every call's cost is unknown.
    turns = [Turn(calls=[Call(name="get_weather", arguments={"city": "Oslo"})]), Turn(text="Cold.")]
    fake.load(Script(turns=turns, model="unpriced-model-x"))
    agent = make_agent(data_dir, make_provider(fake, api), budget=Budget(max_dollars="5.00"))
    r = agent.run("Weather in Oslo?")
    assert r.suspend_reason is not None and r.suspend_reason.kind == "budget"
    assert r.suspend_reason.limit == "max_dollars" and r.suspend_reason.spent["dollars"] is None
    assert r.suspend_reason.message.startswith("cost unknown:") and "reached" not in r.suspend_reason.message
    assert len(fake.requests) == 1  # stopped before the second, unpriceable call
    agent.budget = Budget(max_dollars="5.00", on_unknown_cost="ignore")
    assert agent.resume(r.execution_id).answer == "Cold." and len(fake.requests) == 2
