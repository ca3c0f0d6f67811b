"""Recipe strings build providers; bad recipes and missing keys fail at construction; the SDKs load lazily."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from fakellm import FakeLLM, Fault, Script, Turn

from delite import Agent
from delite.errors import DriftError, ProviderHTTPError, UsageError
from delite.providers import Anthropic, OpenAI, OpenAIResponses, from_recipe


def test_recipes_name_vendor_and_model() -> None:
    p = from_recipe("anthropic:claude-haiku-4-5", api_key="k")
    assert isinstance(p, Anthropic) and p.model == "claude-haiku-4-5" and p.name == "anthropic:claude-haiku-4-5"
    r = from_recipe("openai-responses:gpt-5-mini", api_key="k", temperature=0.2)
    assert isinstance(r, OpenAIResponses) and r.temperature == 0.2
    local = from_recipe("openai:llama3.2:3b", base_url="http://127.0.0.1:11434/v1")  # no key for a local server
    assert isinstance(local, OpenAI) and local.model == "llama3.2:3b"
    assert repr(local) == "OpenAI('llama3.2:3b', base_url='http://127.0.0.1:11434/v1')"


@pytest.mark.parametrize(
    ("recipe", "message"),
    [
        ("gemini:pro", "unknown provider 'gemini'"),
        ("claude-haiku-4-5", "unknown provider 'claude-haiku-4-5'"),
        ("anthropic", "names no model"),
        ("anthropic:", "names no model"),
    ],
)
def test_bad_recipes_are_clear_errors(recipe: str, message: str) -> None:
    with pytest.raises(UsageError, match=message) as info:
        Agent("./unused", provider=recipe)
    if "unknown" in message:
        assert "anthropic, openai, openai-responses" in str(info.value)


def test_missing_key_fails_at_construction(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(UsageError, match="ANTHROPIC_API_KEY"):
        Agent("./unused", provider="anthropic:claude-haiku-4-5")
    with pytest.raises(UsageError, match="OPENAI_API_KEY"):
        OpenAIResponses("gpt-5")
    with pytest.raises(UsageError, match="needs a model id"):
        OpenAI("", api_key="k")


def test_key_and_base_url_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-from-env")
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")
    p = from_recipe("openai:gpt-4o-mini")
    assert p.client.api_key == "sk-from-env"
    assert str(p.client.base_url).startswith("http://127.0.0.1:9/v1")
    assert p.client.max_retries == 0  # delite owns retries


def test_missing_sdk_names_the_pip_command(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "anthropic", None)
    with pytest.raises(ImportError, match="pip install anthropic"):
        Anthropic("claude-haiku-4-5", api_key="k")


def test_recipe_agent_runs_and_its_recipe_is_the_fingerprint(
    fake: FakeLLM, data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "k")
    monkeypatch.setenv("OPENAI_BASE_URL", fake.url + "/v1")
    fake.load(Script(turns=[Turn(text="hello", faults=[Fault(kind="status", status=400)])]))
    agent = Agent(data_dir, provider="openai:gpt-4o-mini")
    with pytest.raises(ProviderHTTPError):
        agent.run("hi", execution_id="r1")
    assert agent.get("r1").config.provider == "openai:gpt-4o-mini"
    other = Agent(data_dir, provider="openai:gpt-4o")
    with pytest.raises(DriftError, match="gpt-4o-mini"):
        other.resume("r1")
    assert agent.resume("r1").answer == "hello"
    agent.set_llm("openai:gpt-4.1-mini")
    assert agent.provider is not None and agent.provider.name == "openai:gpt-4.1-mini"  # type: ignore[attr-defined]


def test_importing_the_providers_does_not_import_the_sdks() -> None:
    code = (
        "import sys, delite.providers\n"
        "from delite.providers import OpenAI, Anthropic, from_recipe, PriceTable\n"
        "print(sorted(m for m in ('openai', 'anthropic', 'httpx2') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
