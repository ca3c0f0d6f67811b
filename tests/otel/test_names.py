"""The attribute names are a contract: pinned here per conventions version."""

from __future__ import annotations

import pytest

from delite._telemetry import _names as n


def test_default_names_are_the_pinned_release() -> None:
    assert n.names("") is n.DEFAULT
    assert n.DEFAULT.version == n.SEMCONV_VERSION == "1.36.0"
    assert n.DEFAULT.provider == "gen_ai.system"


def test_the_opt_in_switch_gives_the_latest_names() -> None:
    latest = n.names("http,gen_ai_latest_experimental")
    assert latest is n.LATEST and latest.version == n.LATEST_SEMCONV_VERSION
    assert latest.provider == "gen_ai.provider.name"
    assert latest.cache_read_tokens == "gen_ai.usage.cache_read.input_tokens"
    assert latest.cache_write_tokens == "gen_ai.usage.cache_creation.input_tokens"


def test_the_environment_decides_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(n.OPT_IN_ENV, "gen_ai_latest_experimental")
    assert n.names() is n.LATEST
    monkeypatch.setenv(n.OPT_IN_ENV, "database")
    assert n.names() is n.DEFAULT
    monkeypatch.setenv(n.CAPTURE_CONTENT_ENV, "TRUE")
    assert n.capture_content_from_env()
    monkeypatch.setenv(n.CAPTURE_CONTENT_ENV, "false")
    assert not n.capture_content_from_env()


def test_the_conventions_names() -> None:
    assert (n.OP_CHAT, n.OP_INVOKE_AGENT, n.OP_EXECUTE_TOOL) == ("chat", "invoke_agent", "execute_tool")
    assert n.METRIC_TOKEN_USAGE == "gen_ai.client.token.usage"  # noqa: S105 - a metric name
    assert n.METRIC_OPERATION_DURATION == "gen_ai.client.operation.duration"
    conventions = [v for k, v in vars(n).items() if k.isupper() and isinstance(v, str) and v.startswith("gen_ai.")]
    assert len(conventions) == len(set(conventions))
    own = [v for k, v in vars(n).items() if k.isupper() and isinstance(v, str) and v.startswith("delite.")]
    assert all(name == name.lower() and " " not in name for name in own)
