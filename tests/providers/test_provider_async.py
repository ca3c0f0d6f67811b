"""The vendor providers under the async API: each real SDK's async client, awaited on the event loop.

Every run here uses async tools, so nothing at all needs a worker thread: a fresh worker pool (the
``worker_pool`` context variable the engine reads, or a Runtime's own pool) that never started a thread
shows that no model call ran in one. Each result, error, usage and cost is compared with the sync path's
for the same script. Then the clients: one per event loop (closed when the loop shuts down), shared by
providers configured alike, spread over small pools when many requests are in flight, and the caller's own.
"""

from __future__ import annotations

import asyncio
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
from fakellm import Call, FakeLLM, Fault, Script, Tokens, Turn
from providerkit import APIS, make_agent, make_provider

from delite import Agent, Runtime, tool
from delite.engine import _aio
from delite.engine._events import RetryScheduled, TextDelta
from delite.errors import ProviderError, ProviderHTTPError
from delite.log.records import ModelCallFailed, ModelResponded
from delite.providers import _sdk
from delite.providers._sdk import SDKProvider
from delite.store import FileStore

MESSAGES = [{"role": "user", "content": "hi"}]
ANSWER = "It is 18C and sunny in Paris."
SCRIPT = Script(
    turns=[
        Turn(
            text="Checking.",
            calls=[Call(name="weather", arguments={"city": "Paris"}), Call(name="clock", arguments={"tz": "CET"})],
            tokens=Tokens(input=20, cached=100, cache_write=30, cache_write_1h=10, output=20, reasoning=4),
        ),
        Turn(text=ANSWER, tokens=Tokens(input=200, output=15)),
    ]
)


@tool(description="Get the weather for a city")
async def weather(city: str) -> dict[str, Any]:
    await asyncio.sleep(0)
    return {"city": city, "temp_c": 18, "conditions": "sunny"}


@tool(description="Get the local time in a time zone")
async def clock(tz: str) -> str:
    await asyncio.sleep(0)
    return f"12:00 {tz}"


def agent_for(data_dir: Path, provider: Any, **options: Any) -> Agent:
    return make_agent(data_dir, provider, tools=[weather, clock], **options)


def bodies(fake: FakeLLM) -> list[tuple[bool, Any]]:
    return [(r["stream"], r["body"]) for r in fake.requests]


def on_a_fresh_pool(main: Any) -> tuple[Any, _aio.Threads]:
    """``asyncio.run(main())`` with a worker pool of its own: the engine hands sync calls to it, if any."""
    pool = _aio.Threads("test-async-work", 4)

    async def wrapped() -> Any:
        _aio.worker_pool.set(pool)
        return await main()

    try:
        return asyncio.run(wrapped()), pool
    finally:
        pool.close()


@pytest.mark.parametrize("api", APIS)
def test_arun_calls_the_model_on_the_loop_like_run(fake: FakeLLM, data_dir: Path, api: str) -> None:
    fake.load(SCRIPT)
    provider = make_provider(fake, api)
    expected = agent_for(data_dir, provider).run("Weather in Paris?", execution_id="sync")
    sent_sync = bodies(fake)

    fake.load(SCRIPT)
    response, pool = on_a_fresh_pool(lambda: agent_for(data_dir, provider).arun("Weather in Paris?"))
    assert pool.started == 0  # nothing ran in a worker thread: not the model calls, not the (async) tools
    assert bodies(fake) == sent_sync  # the same requests, field by field
    assert response.answer == expected.answer == ANSWER
    assert response.usage == expected.usage
    assert response.usage.known and response.usage.cost is not None
    turns = [r for r in FileStore(data_dir).read(response.execution_id).records if isinstance(r, ModelResponded)]
    assert [t.usage for t in turns] == [
        t.usage for t in FileStore(data_dir).read("sync").records if isinstance(t, ModelResponded)
    ]


@pytest.mark.parametrize("api", APIS)
def test_astream_and_astream_events_read_the_stream_on_the_loop(fake: FakeLLM, data_dir: Path, api: str) -> None:
    fake.load(SCRIPT)
    provider = make_provider(fake, api)
    expected = agent_for(data_dir, provider).stream_events("Weather in Paris?")
    expected_deltas = [e.text for e in expected if isinstance(e, TextDelta)]
    assert expected.response is not None and "".join(expected_deltas) == "Checking." + ANSWER
    fake.load(SCRIPT)
    expected_text = "".join(agent_for(data_dir, provider).stream("Weather in Paris?"))  # the text form

    async def main() -> tuple[str, Any, list[Any]]:
        fake.load(SCRIPT)
        chunks = agent_for(data_dir, provider).astream("Weather in Paris?")
        text = "".join([c async for c in chunks])
        fake.load(SCRIPT)
        events = agent_for(data_dir, provider).astream_events("Weather in Paris?")
        seen = [e async for e in events]
        assert chunks.response is not None and events.response is not None
        assert events.response.usage == chunks.response.usage
        return text, chunks.response, seen

    (text, response, events), pool = on_a_fresh_pool(main)
    assert pool.started == 0
    assert [e.text for e in events if isinstance(e, TextDelta)] == expected_deltas
    assert text == expected_text
    assert response.answer == expected.response.answer == ANSWER
    assert response.usage == expected.response.usage
    assert all(r["stream"] for r in fake.requests)


@pytest.mark.parametrize("api", APIS)
def test_a_runtime_calls_the_model_on_its_loop(fake: FakeLLM, data_dir: Path, api: str) -> None:
    fake.load(SCRIPT)
    provider = make_provider(fake, api)
    expected = agent_for(data_dir, provider).run("Weather in Paris?")
    fake.load(SCRIPT)
    with Runtime(data_dir) as rt:
        agent = agent_for(data_dir, provider, runtime=rt, agent_id="async-vendor")
        eid = rt.go(agent, "Weather in Paris?")
        response = rt.wait(eid, timeout=30)
        pool = rt._pool
        assert pool is not None and pool.started == 0
    assert response.answer == ANSWER
    assert response.usage == expected.usage


def sync_and_async_errors(fake: FakeLLM, api: str, fault: Fault, *, streamed: bool, **options: Any) -> list[Any]:
    """The error of one failed call through the sync path, then through the async one, on the same fault."""
    shown: list[str] = []
    errors: list[ProviderError] = []
    provider = make_provider(fake, api, **options)

    async def acall() -> Any:
        if streamed:
            return await provider.astream(MESSAGES, [], None, on_text=shown.append)
        return await provider.acall(MESSAGES, [], None)

    def call(attempt: str) -> Any:
        if attempt == "async":
            return asyncio.run(acall())
        if streamed:
            return provider.stream(MESSAGES, [], None, on_text=shown.append)
        return provider(MESSAGES, [], None)

    for attempt in ("sync", "async"):
        fake.load(Script(turns=[Turn(text="a complete answer", faults=[fault])]))
        with pytest.raises(ProviderError) as info:
            call(attempt)
        errors.append(info.value)
        assert asyncio.run(acall()).content == "a complete answer"  # the next call works: nothing is stuck
    provider.close()
    return errors


def summary(error: ProviderError) -> tuple[Any, ...]:
    message = str(error).split(":")[0]
    status = error.status_code if isinstance(error, ProviderHTTPError) else None
    return (type(error), message, status, error.retryable, error.retry_after, error.usage)


@pytest.mark.parametrize("streamed", [False, True], ids=["json", "sse"])
@pytest.mark.parametrize("api", APIS)
@pytest.mark.parametrize(
    "fault",
    [
        Fault(kind="status", status=429, retry_after="2"),
        Fault(kind="status", status=429, retry_after_ms="1500"),
        Fault(kind="status", status=500),
        Fault(kind="status", status=401),
        Fault(kind="drop", after=4),
        Fault(kind="malformed", after=4),
    ],
    ids=["429-s", "429-ms", "500", "401", "drop", "malformed"],
)
def test_errors_are_classified_as_on_the_sync_path(fake: FakeLLM, api: str, fault: Fault, streamed: bool) -> None:
    sync, via_async = sync_and_async_errors(fake, api, fault, streamed=streamed)
    assert summary(via_async) == summary(sync)
    if fault.kind == "status":
        assert isinstance(via_async, ProviderHTTPError) and fault.message in via_async.body
        assert via_async.usage is None  # an error status is not billed
    else:
        assert via_async.retryable
        assert via_async.usage is not None and not via_async.usage.known  # it may have been billed


@pytest.mark.parametrize("api", APIS)
def test_a_dropped_stream_reports_what_it_saw_as_on_the_sync_path(fake: FakeLLM, api: str) -> None:
    sync, via_async = sync_and_async_errors(fake, api, Fault(kind="drop", after=4), streamed=True)
    assert via_async.usage == sync.usage
    assert via_async.usage is not None and not via_async.usage.known
    if api == "messages":  # message_start reported the input before the drop
        assert via_async.usage.input_tokens == 20 and via_async.usage.cost is not None


@pytest.mark.parametrize("streamed", [False, True], ids=["json", "sse"])
@pytest.mark.parametrize("api", APIS)
def test_a_timeout_is_retryable_and_may_have_been_billed(fake: FakeLLM, api: str, streamed: bool) -> None:
    fault = Fault(kind="stall", seconds=2.0, after=2)
    sync, via_async = sync_and_async_errors(fake, api, fault, streamed=streamed, timeout=0.3)
    assert summary(via_async) == summary(sync)
    assert "timed out" in str(via_async) and via_async.retryable


@pytest.mark.parametrize("api", APIS)
def test_arun_retries_a_429_and_a_broken_stream_and_records_them(fake: FakeLLM, data_dir: Path, api: str) -> None:
    faults = [Fault(kind="status", status=429, retry_after_ms="5"), Fault(kind="drop", after=4)]
    fake.load(Script(turns=[Turn(text=ANSWER, faults=faults)]))
    agent = agent_for(data_dir, make_provider(fake, api))

    async def main() -> tuple[Any, list[Any]]:
        events = agent.astream_events("hi")
        seen = [e async for e in events]
        return events.response, seen

    (response, events), pool = on_a_fresh_pool(main)
    assert pool.started == 0
    assert response.answer == ANSWER
    assert [(r.step, r.attempt) for r in events if isinstance(r, RetryScheduled)] == [(1, 1), (1, 2)]
    log = list(FileStore(data_dir).read(response.execution_id).records)
    failed = [r for r in log if isinstance(r, ModelCallFailed)]
    assert [(f.attempt, f.retryable, f.status_code) for f in failed] == [(1, True, 429), (2, True, None)]
    assert failed[0].usage is None and failed[1].usage is not None and not failed[1].usage.known
    assert not response.usage.known and response.usage.cost is not None


@pytest.mark.parametrize("api", APIS)
def test_one_provider_across_two_event_loops(fake: FakeLLM, api: str) -> None:
    provider = make_provider(fake, api)
    clients: list[Any] = []

    async def one() -> str | None:
        turn = await provider.acall(MESSAGES, [], None)
        clients.append(provider._loop_shards[1].clients[0] if provider._loop_shards else None)
        return turn.content

    for _ in range(2):
        fake.load(Script(turns=[Turn(text="ok")]))
        assert asyncio.run(one()) == "ok"
    first, second = clients
    assert first is not None and second is not None and first is not second  # one client per loop
    assert first.is_closed() and second.is_closed()  # each closed when its loop shut down
    assert isinstance(first, provider._sdk.AsyncAnthropic if api == "messages" else provider._sdk.AsyncOpenAI)


@pytest.mark.parametrize("api", APIS)
def test_providers_configured_alike_share_the_loops_clients_and_aclose_closes_them(fake: FakeLLM, api: str) -> None:
    fake.load(Script(turns=[Turn(text="ok")]))

    async def main() -> None:
        async with make_provider(fake, api) as first:
            second = make_provider(fake, api)
            assert (await first.acall(MESSAGES, [], None)).content == "ok"
            assert (await second.acall(MESSAGES, [], None)).content == "ok"
            assert first._loop_shards is not None and second._loop_shards is not None
            shards = first._loop_shards[1]
            assert shards is second._loop_shards[1] and len(shards.clients) == 1
            client = shards.clients[0]
        assert client.is_closed()
        assert (await second.acall(MESSAGES, [], None)).content == "ok"  # a closed client is replaced
        assert shards.clients[0] is not client and not shards.clients[0].is_closed()

    asyncio.run(main())


@pytest.mark.parametrize("api", APIS)
def test_many_requests_in_flight_are_spread_over_small_connection_pools(
    fake: FakeLLM, api: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_sdk, "SHARD", 3)
    requests = 8
    fake.load(Script(turns=[Turn(text="ok", faults=[Fault(kind="stall", seconds=0.3)] * requests)]))
    provider = make_provider(fake, api)

    async def main() -> int:
        turns = await asyncio.gather(*(provider.acall(MESSAGES, [], None) for _ in range(requests)))
        assert [t.content for t in turns] == ["ok"] * requests
        assert provider._loop_shards is not None
        shards = provider._loop_shards[1]
        assert shards.busy == [0, 0, 0]  # every lease given back
        return len(shards.clients)

    assert asyncio.run(main()) == 3  # 8 at once, at most 3 on each client


def test_a_given_sync_client_runs_the_async_call_in_a_thread(fake: FakeLLM) -> None:
    import openai

    fake.load(Script(turns=[Turn(text="ok")]))
    client = openai.OpenAI(api_key="k", base_url=fake.url + "/v1", max_retries=0)
    provider: SDKProvider = make_provider(fake, "chat", client=client)
    seen: list[str] = []

    async def main() -> str | None:
        turn = await provider.acall(MESSAGES, [], None)
        streamed = await provider.astream(
            MESSAGES, [], None, on_text=lambda t: seen.append(threading.current_thread().name)
        )
        assert streamed.content == turn.content
        return turn.content

    assert asyncio.run(main()) == "ok"
    assert seen and threading.current_thread().name not in seen  # the sync stream ran in a thread
    client.close()


def test_a_given_async_client_is_used(fake: FakeLLM) -> None:
    import anthropic

    fake.load(Script(turns=[Turn(text="ok")]))

    async def main() -> None:
        client = anthropic.AsyncAnthropic(api_key="k", base_url=fake.url, max_retries=0)
        provider = make_provider(fake, "messages", async_client=client)
        assert (await provider.acall(MESSAGES, [], None)).content == "ok"
        assert fake.requests[-1]["headers"]["authorization"] == "Bearer k"  # not the options' test-key
        await provider.aclose()
        assert client.is_closed()

    asyncio.run(main())


@pytest.mark.parametrize("api", APIS)
def test_the_callers_extra_body_still_wins_over_the_conversation_sent_as_built(fake: FakeLLM, api: str) -> None:
    fake.load(Script(turns=[Turn(text="ok")]))
    field = "input" if api == "responses" else "messages"
    plain = make_provider(fake, api)
    assert plain(MESSAGES, [], None).content == "ok"
    assert fake.requests[-1]["body"][field]  # the conversation went out, not the SDK's empty placeholder
    replaced = [{"role": "user", "content": "instead"}]
    provider = make_provider(fake, api, params={"extra_body": {field: replaced, "seed": 7}})

    async def main() -> str | None:
        return (await provider.acall(MESSAGES, [], None)).content

    assert asyncio.run(main()) == "ok"
    body = fake.requests[-1]["body"]
    assert body[field] == replaced and body["seed"] == 7


def test_the_callers_own_async_http_client_is_used(fake: FakeLLM) -> None:
    import httpx2

    fake.load(Script(turns=[Turn(text="ok")]))
    seen: list[str] = []

    async def main() -> None:
        async def hook(request: httpx2.Request) -> None:
            seen.append(request.url.path)

        async with httpx2.AsyncClient(event_hooks={"request": [hook]}) as http_client:
            provider = make_provider(fake, "chat", client_options={"http_client": http_client})
            assert (await provider.acall(MESSAGES, [], None)).content == "ok"
            assert (await provider.acall(MESSAGES, [], None)).content == "ok"

    asyncio.run(main())
    assert seen == ["/v1/chat/completions"] * 2


@pytest.mark.parametrize("api", APIS)
def test_astream_reads_the_sdk_stream_without_a_wrapper_generator(fake: FakeLLM, api: str) -> None:
    """The SDKs' ``AsyncStream.__aiter__`` is an async generator around their own iterator: astream starts none.

    A read stops at the terminal event, so each generator it started is left for the loop's finalizer hook to
    close; every async generator started during the read is recorded by the loop's hooks here.
    """
    fake.load(Script(turns=[Turn(text="Checking the stream.", tokens=Tokens(input=3, output=4))]))
    provider = make_provider(fake, api)
    started: list[str] = []
    shown: list[str] = []

    async def main() -> Any:
        loop_first, loop_finalizer = sys.get_asyncgen_hooks()

        def first(agen: Any) -> None:
            started.append(agen.__qualname__)
            if loop_first is not None:
                loop_first(agen)

        sys.set_asyncgen_hooks(firstiter=first, finalizer=loop_finalizer)
        try:
            return await provider.astream(MESSAGES, [], None, on_text=shown.append)
        finally:
            await provider.aclose()

    turn = asyncio.run(main())
    assert "".join(shown) == turn.content == "Checking the stream."
    assert "AsyncStream.__stream__" in started  # the hooks saw the SDK's own iterator
    assert "AsyncStream.__aiter__" not in started
