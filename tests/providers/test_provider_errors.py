"""Error classification: what delite retries and what it does not, from real SDK exceptions over HTTP and
from the raw httpx2 / JSON errors the SDKs let through."""

from __future__ import annotations

import json
import socket
from datetime import UTC, datetime
from email.utils import format_datetime

import pytest
from fakellm import FakeLLM, Fault, Script, Turn
from providerkit import APIS, make_provider

from delite.errors import ProviderError, ProviderHTTPError
from delite.providers._sdk import parse_retry_after

MESSAGES = [{"role": "user", "content": "hi"}]


def test_parse_retry_after() -> None:
    assert parse_retry_after({"retry-after-ms": "1500"}) == 1.5
    assert parse_retry_after({"retry-after": "2.5"}) == 2.5
    assert parse_retry_after({"retry-after-ms": "100", "retry-after": "9"}) == 0.1  # milliseconds win
    now = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC).timestamp()
    http_date = format_datetime(datetime(2026, 1, 1, 12, 0, 30, tzinfo=UTC), usegmt=True)
    assert parse_retry_after({"retry-after": http_date}, now=now) == 30.0
    assert parse_retry_after({"retry-after": "soon"}) is None
    assert parse_retry_after({"retry-after": "-3"}) == 0.0
    assert parse_retry_after({}) is None
    assert parse_retry_after(None) is None


def call_fails(fake: FakeLLM, api: str, fault: Fault) -> ProviderError:
    fake.load(Script(turns=[Turn(text="ok", faults=[fault])]))
    provider = make_provider(fake, api)
    with pytest.raises(ProviderError) as info:
        provider(MESSAGES, [], None)
    assert provider(MESSAGES, [], None).content == "ok"  # the next call works: nothing is stuck
    provider.close()
    return info.value


@pytest.mark.parametrize("api", APIS)
@pytest.mark.parametrize(
    ("fault", "retryable", "retry_after"),
    [
        (Fault(kind="status", status=429, retry_after_ms="1500"), True, 1.5),
        (Fault(kind="status", status=429, retry_after="2"), True, 2.0),
        (Fault(kind="status", status=408), True, None),
        (Fault(kind="status", status=409), True, None),
        (Fault(kind="status", status=502), True, None),
        (Fault(kind="status", status=529), True, None),
        (Fault(kind="status", status=400, should_retry="true"), True, None),
        (Fault(kind="status", status=422), False, None),
        (Fault(kind="status", status=401), False, None),
        (Fault(kind="status", status=500, should_retry="false"), False, None),
    ],
    ids=["429-ms", "429-s", "408", "409", "502", "529", "400-should-retry", "422", "401", "500-should-not-retry"],
)
def test_http_statuses(fake: FakeLLM, api: str, fault: Fault, retryable: bool, retry_after: float | None) -> None:
    error = call_fails(fake, api, fault)
    assert isinstance(error, ProviderHTTPError)
    assert (error.status_code, error.retryable, error.retry_after) == (fault.status, retryable, retry_after)
    assert fault.message in error.body
    assert error.usage is None  # an error status is not billed
    assert error.provider.startswith(("openai:", "openai-responses:", "anthropic:"))


@pytest.mark.parametrize("api", APIS)
def test_json_timeout_is_retryable_and_may_have_been_billed(fake: FakeLLM, api: str) -> None:
    fake.load(Script(turns=[Turn(text="ok", faults=[Fault(kind="stall", seconds=1.0)])]))
    provider = make_provider(fake, api, timeout=0.2)
    with pytest.raises(ProviderError, match="timed out") as info:
        provider(MESSAGES, [], None)
    assert info.value.retryable
    assert info.value.usage is not None and info.value.usage.known is False


@pytest.mark.parametrize("api", APIS)
def test_nothing_listening_is_retryable_and_not_billed(api: str) -> None:
    with socket.socket() as s:  # a port that was free a moment ago
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    provider = make_provider(type("Gone", (), {"url": f"http://127.0.0.1:{port}"})(), api)
    with pytest.raises(ProviderError, match="connection error") as info:
        provider(MESSAGES, [], None)
    assert info.value.retryable and info.value.usage is None


def test_raw_errors_the_sdks_let_through(fake: FakeLLM) -> None:
    import httpx2

    provider = make_provider(fake, "messages")
    request = httpx2.Request("POST", "http://127.0.0.1/v1/messages")
    for exc in (
        httpx2.ReadTimeout("stalled", request=request),
        httpx2.RemoteProtocolError("incomplete chunked read", request=request),
        json.JSONDecodeError("Expecting value", "{", 1),
    ):
        error = provider.classify_error(exc)
        assert error.retryable, exc
    assert not provider.classify_error(ValueError("a bug")).retryable
    same = ProviderError("x", retryable=True)
    assert provider.classify_error(same) is same


def test_content_filter_is_permanent(fake: FakeLLM) -> None:
    fake.load(Script(turns=[Turn(text="", stop="content_filter")]))
    with pytest.raises(ProviderError, match="content filter") as info:
        make_provider(fake, "chat")(MESSAGES, [], None)
    assert not info.value.retryable


@pytest.mark.parametrize("api", APIS)
def test_truncated_stream_is_a_retryable_failure_not_a_turn(fake: FakeLLM, api: str) -> None:
    shown: list[str] = []
    fake.load(Script(turns=[Turn(text="a complete sentence", faults=[Fault(kind="truncate", after=4)])]))
    provider = make_provider(fake, api)
    with pytest.raises(ProviderError, match="stream ended without") as info:
        provider.stream(MESSAGES, [], None, on_text=shown.append)
    assert info.value.retryable
    turn = provider.stream(MESSAGES, [], None, on_text=shown.append)
    assert turn.content == "a complete sentence"
