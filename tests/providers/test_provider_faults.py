"""Every fault the fake server can inject, through each real SDK: transient ones are retried by delite (each
attempt in the log), permanent ones fail the execution with the status and body, and resume retries them.
A broken stream is never folded half-done, and what it may have cost is recorded as unknown, not zero."""

from __future__ import annotations

from pathlib import Path

import pytest
from fakellm import FakeLLM, Fault, Script, Turn
from providerkit import APIS, make_agent, make_provider

from delite import RetryPolicy
from delite.engine._events import RetryScheduled, TextDelta
from delite.errors import ProviderError, ProviderHTTPError
from delite.log.records import ExecutionFailed, ModelCallFailed, ModelResponded
from delite.store import FileStore

ANSWER = "Recovered."

# name -> (fault, status code recorded, whether the failed attempt may have been billed)
TRANSIENT = {
    "429-retry-after-ms": (Fault(kind="status", status=429, retry_after_ms="5"), 429, False),
    "429-retry-after": (Fault(kind="status", status=429, retry_after="0.005"), 429, False),
    "500": (Fault(kind="status", status=500), 500, False),
    "529-overloaded": (Fault(kind="status", status=529, message="Overloaded"), 529, False),
    # The server stalls far longer than the client's timeout, so the first attempt always times out.
    "stall": (Fault(kind="stall", seconds=30.0, after=2), None, True),
    "drop": (Fault(kind="drop", after=4), None, True),
    "truncate": (Fault(kind="truncate", after=4), None, True),
    "malformed": (Fault(kind="malformed", after=4), None, True),
    "stream-error": (Fault(kind="stream_error", after=4, message="Overloaded"), None, True),
}
SSE_ONLY = {"truncate", "stream-error"}
CASES = [(name, streamed) for name in TRANSIENT for streamed in (False, True) if streamed or name not in SSE_ONLY]


def records(data_dir: Path, eid: str) -> list[object]:
    return list(FileStore(data_dir).read(eid).records)


@pytest.mark.parametrize(("name", "streamed"), CASES, ids=[f"{n}-{'sse' if s else 'json'}" for n, s in CASES])
@pytest.mark.parametrize("api", APIS)
def test_transient_fault_is_retried_and_recorded(
    fake: FakeLLM, data_dir: Path, api: str, name: str, streamed: bool
) -> None:
    fault, status, billed = TRANSIENT[name]
    fake.load(Script(turns=[Turn(text=ANSWER, faults=[fault])]))
    # Long enough that the retry, served at once, never times out on a loaded machine; the stall outlasts it.
    timeout = 1.0 if fault.kind == "stall" else 5.0
    agent = make_agent(data_dir, make_provider(fake, api, timeout=timeout))
    if streamed:
        stream = agent.stream_events("hi")
        events = list(stream)
        response = stream.response
        assert response is not None
        retries = [e for e in events if isinstance(e, RetryScheduled)]
        assert [(r.step, r.attempt) for r in retries] == [(1, 1)]
        # Text of the broken attempt may have been shown; the retry streams the whole turn again.
        assert "".join(e.text for e in events if isinstance(e, TextDelta) and e.attempt == 2) == ANSWER
    else:
        response = agent.run("hi")
    assert response.answer == ANSWER

    log = records(data_dir, response.execution_id)
    failed = [r for r in log if isinstance(r, ModelCallFailed)]
    turns = [r for r in log if isinstance(r, ModelResponded)]
    assert [(f.step, f.attempt, f.retryable, f.status_code) for f in failed] == [(1, 1, True, status)]
    assert [(t.step, t.attempt, t.content) for t in turns] == [(1, 2, ANSWER)]
    assert [r["fault"] for r in fake.requests] == [fault.kind, None]
    assert all(r["headers"]["x-stainless-retry-count"] == "0" for r in fake.requests)  # the SDK did not retry
    if billed:
        assert failed[0].usage is not None and not failed[0].usage.known
        assert not response.usage.known  # totals are a lower bound now
    else:
        assert failed[0].usage is None
        assert response.usage.known
    assert response.usage.cost is not None  # the completed turn is priced


@pytest.mark.parametrize("api", APIS)
def test_broken_stream_counts_what_it_saw_as_a_lower_bound(fake: FakeLLM, data_dir: Path, api: str) -> None:
    fake.load(Script(turns=[Turn(text=ANSWER, faults=[Fault(kind="drop", after=4)])]))
    response = make_agent(data_dir, make_provider(fake, api)).stream("hi")
    assert "".join(response) == ANSWER  # the text form shows the retried turn once
    failed = next(r for r in records(data_dir, response.execution_id) if isinstance(r, ModelCallFailed))
    assert failed.usage is not None and failed.usage.known is False
    if api == "messages":  # message_start reported the input before the drop
        assert failed.usage.input_tokens == 20
        assert failed.usage.cost is not None
    else:  # the OpenAI APIs report usage only at the end of a stream
        assert failed.usage.total_tokens == 0 and failed.usage.cost is None


PERMANENT = {
    "400": Fault(kind="status", status=400, message="messages: field required"),
    "401": Fault(kind="status", status=401, message="invalid x-api-key"),
    "403": Fault(kind="status", status=403, message="forbidden"),
    "404": Fault(kind="status", status=404, message="model not found"),
    "content-policy": Fault(
        kind="status", status=400, error_type="content_policy_violation", message="blocked by policy"
    ),
    "503-should-not-retry": Fault(kind="status", status=503, should_retry="false", message="do not retry"),
}


@pytest.mark.parametrize("name", list(PERMANENT))
@pytest.mark.parametrize("api", APIS)
def test_permanent_fault_fails_with_status_and_body_then_resume_retries(
    fake: FakeLLM, data_dir: Path, api: str, name: str
) -> None:
    fault = PERMANENT[name]
    fake.load(Script(turns=[Turn(text=ANSWER, faults=[fault])]))
    agent = make_agent(data_dir, make_provider(fake, api))
    with pytest.raises(ProviderHTTPError) as info:
        agent.run("hi", execution_id="perm")
    error = info.value
    assert error.status_code == fault.status and not error.retryable
    assert fault.message in error.body
    state = agent.get("perm")
    assert state.status.value == "failed"
    log = records(data_dir, "perm")
    failed = [r for r in log if isinstance(r, ModelCallFailed)]
    assert [(f.attempt, f.retryable, f.status_code) for f in failed] == [(1, False, fault.status)]
    assert any(isinstance(r, ExecutionFailed) for r in log)
    assert len(fake.requests) == 1
    # A failed execution is not a dead end: resume calls the model again (the fault is used up now).
    assert agent.resume("perm").answer == ANSWER


@pytest.mark.parametrize("api", APIS)
def test_permanent_in_band_stream_error_fails(fake: FakeLLM, data_dir: Path, api: str) -> None:
    fault = Fault(kind="stream_error", after=3, error_type="invalid_request_error", message="bad tool schema")
    fake.load(Script(turns=[Turn(text=ANSWER, faults=[fault])]))
    agent = make_agent(data_dir, make_provider(fake, api))
    with pytest.raises(ProviderError, match="bad tool schema") as info:
        list(agent.stream("hi", execution_id="inband"))
    assert not info.value.retryable
    assert agent.get("inband").status.value == "failed"


@pytest.mark.parametrize("api", APIS)
def test_retries_are_capped(fake: FakeLLM, data_dir: Path, api: str) -> None:
    fake.load(Script(turns=[Turn(text=ANSWER, faults=[Fault(kind="status", status=500)] * 3)]))
    agent = make_agent(data_dir, make_provider(fake, api), retry=RetryPolicy(max_attempts=3, base_delay=0.001))
    with pytest.raises(ProviderHTTPError) as info:
        agent.run("hi", execution_id="capped")
    assert info.value.status_code == 500
    failed = [r for r in records(data_dir, "capped") if isinstance(r, ModelCallFailed)]
    assert [(f.attempt, f.retryable) for f in failed] == [(1, True), (2, True), (3, False)]
    assert agent.resume("capped").answer == ANSWER
