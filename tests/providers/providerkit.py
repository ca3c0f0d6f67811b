"""Helpers for the provider tests: strict SDK-backed providers pointed at the fake server, tools, agents."""

from __future__ import annotations

from typing import Any

from delite import Agent, RetryPolicy, tool
from delite.providers import Anthropic, OpenAI, OpenAIResponses
from delite.providers._sdk import SDKProvider

APIS = ["chat", "responses", "messages"]
MODELS = {"chat": "gpt-4o-mini", "responses": "gpt-4o-mini", "messages": "claude-haiku-4-5"}
CLASSES: dict[str, type[SDKProvider]] = {"chat": OpenAI, "responses": OpenAIResponses, "messages": Anthropic}
FAST_RETRY = RetryPolicy(max_attempts=4, base_delay=0.001, max_delay=0.05)


def base_url(server: Any, api: str) -> str:
    return server.url if api == "messages" else server.url + "/v1"


def make_provider(server: Any, api: str, **options: Any) -> SDKProvider:
    """A provider of ``api`` on the fake server, its SDK client validating every response strictly."""
    options.setdefault("api_key", "test-key")
    options.setdefault("timeout", 5.0)
    options.setdefault("client_options", {"_strict_response_validation": True})
    return CLASSES[api](MODELS[api], base_url=base_url(server, api), **options)


@tool(description="Get the weather for a city")
def get_weather(city: str) -> dict[str, Any]:
    return {"city": city, "temp_c": 18, "conditions": "sunny"}


@tool(description="Get the local time in a time zone")
def get_time(tz: str) -> str:
    return f"12:00 {tz}"


def make_agent(data_dir: Any, provider: Any, **options: Any) -> Agent:
    options.setdefault("retry", FAST_RETRY)
    options.setdefault("tools", [get_weather, get_time])
    return Agent(data_dir, provider=provider, **options)
