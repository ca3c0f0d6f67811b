"""What the three SDK-backed providers share: configuration, error classification and usage pricing.

The vendor SDKs are imported when a provider is built, never when delite is imported. delite owns retries:
every client is built with ``max_retries=0``, and :meth:`SDKProvider.classify_error` tells the engine which
failures a retry may fix (see ``docs/providers.md``, "Retries").
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import email.utils
import functools
import json
import os
import threading
import time
import urllib.parse
from collections.abc import AsyncGenerator, Callable, Iterator, Mapping
from types import ModuleType
from typing import Any, ClassVar, Generic, Self, TypeVar

import msgspec

from delite.errors import ProviderError, ProviderHTTPError, UsageError
from delite.log.records import Usage
from delite.providers._base import ModelTurn
from delite.providers._pricing import PriceTable

__all__ = ["SDKProvider", "StreamProgress", "StreamReader", "parse_retry_after"]

# Error types that a vendor reports in a body or in-band stream event and that a retry may fix.
_RETRYABLE_TYPES = frozenset(
    {
        "api_error",
        "overloaded_error",
        "rate_limit_error",
        "rate_limit_exceeded",
        "server_error",
        "timeout_error",
        "internal_error",
        "service_unavailable",
    }
)

TextSink = Callable[[str], None]


def parse_retry_after(headers: Mapping[str, str] | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from ``retry-after-ms`` (preferred) or ``retry-after`` (seconds or an HTTP date)."""
    if not headers:
        return None
    ms = headers.get("retry-after-ms")
    if ms:
        try:
            return max(float(ms) / 1000.0, 0.0)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(when.timestamp() - (time.time() if now is None else now), 0.0)


def _body_text(body: object, fallback: str) -> str:
    if body is None:
        return fallback
    if isinstance(body, str):
        return body
    try:
        return json.dumps(body)
    except (TypeError, ValueError):
        return str(body)


def _error_type(body: object) -> str | None:
    """The vendor's error type or code from an error body (``{"error": {...}}``, or the error object itself)."""
    if not isinstance(body, Mapping):
        return None
    inner = body.get("error", body)
    if not isinstance(inner, Mapping):
        return None
    for key in ("type", "code"):
        value = inner.get(key)
        if isinstance(value, str) and value:
            return value
    return None


def _httpx2() -> ModuleType:
    import httpx2  # noqa: PLC0415 - the SDKs' HTTP client, loaded with them

    return httpx2


_CLIENTS: dict[tuple[Any, ...], Any] = {}
_MAX_SHARED = 32
_CLIENTS_LOCK = threading.Lock()


def _client_key(provider: SDKProvider, options: dict[str, Any]) -> tuple[Any, ...] | None:
    """What makes two providers' clients interchangeable, or None when an option cannot be compared."""
    try:
        key = (type(provider), *sorted(options.items()))
        hash(key)
    except TypeError:  # an unhashable client option (an http_client object): not shared
        return None
    return key


def _built_options(options: dict[str, Any]) -> dict[str, Any]:
    read, connect = options["timeout"]
    return {**options, "timeout": _httpx2().Timeout(read, connect=connect)}


def _shared(clients: dict[tuple[Any, ...], Any], key: tuple[Any, ...] | None, make: Callable[[], Any]) -> Any:
    """The open client under ``key`` in ``clients``, made (and kept) when there is none; unshared without a key."""
    if key is None:
        return make()
    with _CLIENTS_LOCK:
        client = clients.get(key)
        if client is None or client.is_closed():
            while len(clients) >= _MAX_SHARED:  # many keys (one per tenant?): forget the oldest, unclosed
                del clients[next(iter(clients))]
            client = clients[key] = make()
        return client


def _shared_client(provider: SDKProvider, options: dict[str, Any]) -> Any:
    """A client for these options: shared by every provider configured alike while it stays open."""
    built = _built_options(options)
    return _shared(_CLIENTS, _client_key(provider, options), lambda: provider._make_client(built))  # noqa: SLF001


SHARD = 64
"""Requests in flight per async client: past that, the next request goes to another client of its own.

httpx2's connection pool walks every queued request and every connection on each request and response, so a
pool with a thousand requests in flight spends most of the event loop's time walking them; small pools,
each with its own connections (kept alive, up to this many), do not.
"""


class _Shards:
    """The async clients of one configuration on one loop; each request leases the least busy one.

    A new client is made when every one has :data:`SHARD` requests in flight; a client closed meanwhile
    (``aclose``) is replaced. With ``size`` None there is one client (the caller's own ``http_client``).
    """

    def __init__(self, make: Callable[[], Any], size: int | None) -> None:
        self.make = make
        self.size = size
        self.clients: list[Any] = []
        self.busy: list[int] = []

    @contextlib.contextmanager
    def lease(self) -> Iterator[Any]:
        """A client for one request, counted as busy until the request (its stream included) is over."""
        clients, busy = self.clients, self.busy
        best = -1
        for i, client in enumerate(clients):
            if client.is_closed():
                clients[i] = self.make()
            if best < 0 or busy[i] < busy[best]:
                best = i
        if best < 0 or (self.size is not None and busy[best] >= self.size):
            clients.append(self.make())
            busy.append(0)
            best = len(clients) - 1
        busy[best] += 1
        try:
            yield clients[best]
        finally:
            busy[best] -= 1

    async def aclose(self) -> None:
        """Close every client (a later lease makes new ones)."""
        for client in self.clients:
            await client.close()


class _LoopClients:
    """The async clients made on one event loop, closed on that loop when it shuts down.

    An async SDK client's connections belong to the loop that opened them (used from another loop they fail
    with "Event loop is closed"), so each loop gets its own clients. They are closed by an async generator
    the loop itself finalizes when it shuts down (``loop.shutdown_asyncgens()``: ``asyncio.run`` and the
    :class:`~delite.Runtime` call it), the same way the loop closes any other async generator left open.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.shards: dict[tuple[Any, ...], _Shards] = {}
        self.opened: list[Any] = []  # every client made here, those of shards no longer listed included
        self.closer: AsyncGenerator[None, None] | None = None
        self.tls: Any = None

    def make(self, provider: SDKProvider, options: dict[str, Any]) -> Any:
        """A new async client for ``provider`` with a pool of :data:`SHARD` connections, closed at shutdown."""
        httpx2 = _httpx2()
        if self.tls is None:  # loading the certificates takes tens of milliseconds: once per loop, not per client
            self.tls = httpx2.create_ssl_context()
        limits = httpx2.Limits(max_connections=SHARD, max_keepalive_connections=SHARD)
        http_client = provider._sdk.DefaultAsyncHttpxClient(limits=limits, verify=self.tls)  # noqa: SLF001
        client = provider._make_async_client({**_built_options(options), "http_client": http_client})  # noqa: SLF001
        self.opened.append(client)
        return client

    async def close_at_shutdown(self) -> AsyncGenerator[None, None]:
        """Wait at a ``yield`` for the loop's shutdown, then close every client (when the loop still runs)."""
        try:
            yield
        finally:
            clients, self.opened = self.opened, []
            self.shards.clear()
            self.closer = None  # a loop that goes on after its shutdown (rare) starts a new one
            if not self.loop.is_closed():
                for client in clients:
                    if not client.is_closed():
                        await client.close()

    def forget(self) -> None:
        """For a loop closed without shutting its generators down: drop the clients (nothing can close them)."""
        closer, self.closer = self.closer, None
        if closer is not None:
            with contextlib.suppress(StopIteration, RuntimeError):
                finishing: Any = closer.aclose()  # a coroutine; typeshed types it Awaitable (older) or Coroutine
                finishing.send(None)  # finishes at once: the loop is closed, so nothing is awaited


_LOOPS: dict[asyncio.AbstractEventLoop, _LoopClients] = {}


async def _loop_shards(provider: SDKProvider, options: dict[str, Any]) -> _Shards:
    """The async clients for these options on the running loop, shared like :func:`_shared_client`'s."""
    loop = asyncio.get_running_loop()
    with _CLIENTS_LOCK:
        for closed in [other for other in _LOOPS if other.is_closed()]:
            _LOOPS.pop(closed).forget()
        here = _LOOPS.get(loop)
        if here is None:
            here = _LOOPS[loop] = _LoopClients(loop)
    if here.closer is None:
        here.closer = here.close_at_shutdown()
        await here.closer.__anext__()  # started on this loop, so the loop finalizes it at shutdown
    key = _client_key(provider, options)
    if key is None or "http_client" in options:  # the caller's own http_client (or an option that is no key)
        return _Shards(lambda: provider._make_async_client(_built_options(options)), None)  # noqa: SLF001
    shards = here.shards.get(key)
    if shards is None:
        while len(here.shards) >= _MAX_SHARED:  # many keys (one per tenant?): forget the oldest (closed at shutdown)
            del here.shards[next(iter(here.shards))]
        shards = here.shards[key] = _Shards(lambda: here.make(provider, options), SHARD)
    return shards


def int_field(obj: Any, name: str, default: int = 0) -> int:
    """``obj.name`` if it is an int (SDK usage objects leave absent counts as None), else ``default``."""
    value = getattr(obj, name, None) if obj is not None else None
    return int(value) if isinstance(value, int) else default


class StreamProgress:
    """What a call saw before it failed: whether it got under way, and the usage reported so far."""

    def __init__(self) -> None:
        """Nothing seen yet."""
        self.started = False
        self.usage: Usage | None = None
        self.cache_write_1h = 0


class _Failures:
    """A ``with`` block around one call: what it raises leaves as a ProviderError (see ``SDKProvider._errors``)."""

    def __init__(self, provider: SDKProvider, progress: StreamProgress, model: str, streamed: bool) -> None:
        self.provider = provider
        self.progress = progress
        self.model = model
        self.streamed = streamed

    def __enter__(self) -> None:
        """Nothing to set up."""

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: object) -> None:
        """Re-raise a ProviderError (a broken stream's with the usage seen so far), translate other errors."""
        provider, progress = self.provider, self.progress
        if isinstance(exc, ProviderError):
            if self.streamed and exc.usage is None and progress.started:
                exc.usage = provider._partial_usage(progress, self.model)  # noqa: SLF001 - the provider's own helper
        elif isinstance(exc, Exception):
            raise provider._failed(exc, progress, self.model) from exc  # noqa: SLF001


P = TypeVar("P", bound="SDKProvider")


class StreamReader(abc.ABC, Generic[P]):
    """Reads one streamed answer event by event, whichever client (sync or async) receives the events."""

    def __init__(self, provider: P, model: str, on_text: TextSink, progress: StreamProgress) -> None:
        """A reader for ``provider``'s answer from ``model``; text goes to ``on_text``, usage to ``progress``."""
        self.provider = provider
        self.model = model
        self.on_text = on_text
        self.progress = progress

    @abc.abstractmethod
    def read(self, event: Any) -> bool:
        """Take one event (passing its text on); True once the answer's terminal event was read."""

    @abc.abstractmethod
    def turn(self) -> ModelTurn:
        """The complete turn, or a retryable error when the stream ended before its terminal event."""


class SDKProvider(abc.ABC):
    """Base of the SDK-backed providers: a model id, a client, and the behaviour they share.

    :class:`~delite.providers.OpenAI`, :class:`~delite.providers.OpenAIResponses` and
    :class:`~delite.providers.Anthropic` derive from it.

    Under the async API (``agent.arun``, ``astream``, a :class:`~delite.Runtime`) the engine awaits
    :meth:`acall` and :meth:`astream`, which use the SDK's async client on the running event loop: no thread
    per model call. Both paths build the same request and read the answer with the same code; only the
    awaited I/O differs.

    Subclasses name their SDK client classes (``client_class``, ``async_client_class``) and the
    :class:`StreamReader` of a streamed answer (``reader``), and implement ``_endpoint`` (the SDK's create
    method), ``_request`` (its arguments) and ``_parse`` (a non-streaming answer).
    """

    vendor: ClassVar[str] = ""
    price_vendor: ClassVar[str] = ""
    env_key: ClassVar[str] = ""
    env_base_url: ClassVar[str] = ""
    env_model: ClassVar[str] = ""
    default_model: ClassVar[str] = ""
    default_host: ClassVar[str] = ""
    """The API's host when no ``base_url`` names another (``server.address`` in telemetry)."""
    sdk_name: ClassVar[str] = ""
    client_class: ClassVar[str] = ""
    async_client_class: ClassVar[str] = ""
    reader: ClassVar[type[StreamReader[Any]]]
    """The class that reads a streamed answer's events."""
    as_is: ClassVar[tuple[str, ...]] = ()
    """Request fields delite builds as plain JSON, sent as they are (see ``_create``)."""
    required: ClassVar[tuple[str, ...]] = ()
    """Those of ``as_is`` that the SDK's create requires (given an empty placeholder)."""
    stream_request: ClassVar[Mapping[str, Any]] = {}
    """What a streamed request asks for beyond ``stream=True``, unless ``params`` says otherwise."""

    def __init__(
        self,
        model: str | None = None,
        *,
        api_key: str | None = None,
        base_url: str | None = None,
        timeout: float | None = 600.0,
        connect_timeout: float = 5.0,
        temperature: float | None = None,
        top_p: float | None = None,
        max_tokens: int | None = None,
        params: Mapping[str, Any] | None = None,
        prices: PriceTable | None = None,
        client: Any = None,
        client_options: Mapping[str, Any] | None = None,
        async_client: Any = None,
    ) -> None:
        """Configure the provider; its SDK client is built on first use (no network I/O happens here).

        Args:
            model: the default model id (``agent.run(..., model=...)`` overrides it per run). When omitted,
                the vendor's model environment variable (``DELITE_OPENAI_MODEL``, ``DELITE_ANTHROPIC_MODEL``...)
                names it, else the class's documented ``default_model``.
            api_key: the API key; defaults to the vendor's environment variable. Optional with ``base_url``
                (local servers usually ignore it).
            base_url: the API's base URL, for gateways and compatible servers; defaults to the vendor's
                ``*_BASE_URL`` environment variable, then to the vendor's own API.
            timeout: seconds to wait for any read or write, including between two streamed events (a stall).
            connect_timeout: seconds to wait for the connection.
            temperature: the sampling temperature, when set.
            top_p: nucleus sampling, when set.
            max_tokens: the output token limit, when set (Anthropic requires one: 4096 by default).
            params: extra keyword arguments for the SDK's create call (``reasoning_effort``, ``extra_body``...).
            prices: the price table for cost; defaults to :meth:`PriceTable.default`.
            client: a ready SDK client to use instead of building one (build it with ``max_retries=0``).
            client_options: extra keyword arguments for the SDK client's constructor (``default_headers``...).
            async_client: a ready async SDK client (``openai.AsyncOpenAI``, ``anthropic.AsyncAnthropic``) for
                the async API, used on one event loop only. Without it the async client is built from the same
                options, one per event loop; with ``client`` and no ``async_client`` (or an ``http_client``
                option that is not an ``httpx2.AsyncClient``) the async API runs the sync call in a thread.
        """
        if model is None:
            model = os.environ.get(self.env_model) or self.default_model
        if not isinstance(model, str) or not model:
            raise UsageError(f"{type(self).__name__} needs a model id (a non-empty string)")
        self.model = model
        self.base_url = base_url = base_url or os.environ.get(self.env_base_url) or None
        self.temperature = temperature
        self.top_p = top_p
        self.max_tokens = max_tokens
        self.params = dict(params or {})
        self.prices = prices
        self._sdk = self._import_sdk()
        self._client: Any = client
        self._async_client: Any = async_client
        self._loop_shards: tuple[asyncio.AbstractEventLoop, _Shards] | None = None
        self._options: dict[str, Any] = {}
        if client is None:
            key = api_key or os.environ.get(self.env_key)
            if not key:
                if base_url is None:
                    raise UsageError(
                        f"{type(self).__name__} needs an API key: set {self.env_key} or pass api_key=... "
                        "(or pass base_url=... for a local server that needs none)"
                    )
                key = "unused"
            self._options = {
                "api_key": key,
                "base_url": base_url,
                "timeout": (timeout, connect_timeout),
                "max_retries": 0,
                **(client_options or {}),
            }

    # -- configuration ---------------------------------------------------------------------------------------

    def _import_sdk(self) -> ModuleType:
        import importlib  # noqa: PLC0415

        try:
            return importlib.import_module(self.sdk_name)
        except ImportError as e:
            raise ImportError(
                f"{type(self).__name__} needs the {self.sdk_name!r} package: pip install {self.sdk_name}"
            ) from e

    def _make_client(self, options: dict[str, Any]) -> Any:
        """Build the vendor SDK's client from ``options``."""
        return getattr(self._sdk, self.client_class)(**options)

    def _make_async_client(self, options: dict[str, Any]) -> Any:
        """Build the vendor SDK's async client from ``options``."""
        return getattr(self._sdk, self.async_client_class)(**options)

    @property
    def client(self) -> Any:
        """The SDK client, built on first use (building one loads TLS certificates: tens of milliseconds).

        Providers configured alike share one client and its connection pool, so building a provider (or an
        ``Agent`` from a recipe string) per web request stays cheap.
        """
        client = self._client
        if self._options and (client is None or client.is_closed()):
            client = self._client = _shared_client(self, self._options)
        return client

    async def _aclients(self) -> _Shards | None:
        """The async SDK clients for the running event loop, or None when the async path is a thread."""
        loop = asyncio.get_running_loop()
        cached = self._loop_shards
        if cached is not None and cached[0] is loop:
            return cached[1]
        given = self._async_client
        if given is not None:
            shards = _Shards(lambda: given, None)
        elif not self._options:  # a ready sync client was given, and no async one
            return None
        elif not isinstance(self._options.get("http_client"), _httpx2().AsyncClient | None):
            return None  # the caller's own sync http_client: no async client can use it
        else:
            shards = await _loop_shards(self, self._options)
        self._loop_shards = (loop, shards)
        return shards

    @property
    def name(self) -> str:
        """``vendor:model``, the recipe string; recorded in each execution's configuration fingerprint."""
        return f"{self.vendor}:{self.model}"

    def __repr__(self) -> str:
        """The class, the model and the base URL when set."""
        where = f", base_url={self.base_url!r}" if self.base_url else ""
        return f"{type(self).__name__}({self.model!r}{where})"

    def close(self) -> None:
        """Close the SDK client's connections (a provider that uses it again opens a new one).

        An async client is closed by :meth:`aclose` on its event loop, or when that loop shuts down.
        """
        if self._client is not None:
            self._client.close()

    async def aclose(self) -> None:
        """Close the sync client and the async clients this provider used on the running event loop."""
        self.close()
        cached = self._loop_shards
        if cached is not None and cached[0] is asyncio.get_running_loop():
            await cached[1].aclose()
        elif self._async_client is not None:
            await self._async_client.close()

    async def __aenter__(self) -> Self:
        """Use as an async context manager that closes the clients."""
        return self

    async def __aexit__(self, *exc: object) -> None:
        """Close the clients."""
        await self.aclose()

    def __enter__(self) -> Self:
        """Use as a context manager that closes the client."""
        return self

    def __exit__(self, *exc: object) -> None:
        """Close the client."""
        self.close()

    # -- calls -----------------------------------------------------------------------------------------------

    def __call__(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]], model: str | None) -> ModelTurn:
        """One non-streaming call: the model's next turn for ``messages`` (OpenAI chat shape)."""
        model = model or self.model
        progress = StreamProgress()
        with self._errors(progress, model, streamed=False):
            response = self._create(self.client, messages, tools, model, stream=False)
            progress.started = True
            return self._described(self._parse(response, model), model)

    async def acall(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]], model: str | None) -> ModelTurn:
        """:meth:`__call__` for the async API: awaited on the running event loop with the SDK's async client."""
        clients = await self._aclients()
        if clients is None:
            return await asyncio.to_thread(self, messages, tools, model)
        model = model or self.model
        progress = StreamProgress()
        with clients.lease() as client, self._errors(progress, model, streamed=False):
            response = await self._create(client, messages, tools, model, stream=False)
            progress.started = True
            return self._described(self._parse(response, model), model)

    def stream(
        self, messages: list[dict[str, Any]], tools: list[dict[str, Any]], model: str | None, *, on_text: TextSink
    ) -> ModelTurn:
        """One streaming call: ``on_text`` gets each piece of text as it arrives; returns the complete turn.

        A stream that breaks, stalls past the timeout, or ends without its terminal event raises a retryable
        :class:`~delite.errors.ProviderError`; nothing of it is returned.
        """
        model = model or self.model
        progress = StreamProgress()
        reader = self._reader(model, on_text, progress)
        with self._errors(progress, model, streamed=True):
            with self._create(self.client, messages, tools, model, stream=True) as events:
                progress.started = True
                for event in events:
                    if reader.read(event):
                        break
            return self._described(reader.turn(), model)

    async def astream(
        self, messages: list[dict[str, Any]], tools: list[dict[str, Any]], model: str | None, *, on_text: TextSink
    ) -> ModelTurn:
        """:meth:`stream` for the async API: the events are read on the running loop with the async client."""
        clients = await self._aclients()
        if clients is None:
            return await asyncio.to_thread(functools.partial(self.stream, on_text=on_text), messages, tools, model)
        model = model or self.model
        progress = StreamProgress()
        reader = self._reader(model, on_text, progress)
        with clients.lease() as client, self._errors(progress, model, streamed=True):
            async with await self._create(client, messages, tools, model, stream=True) as events:
                progress.started = True
                # read with __anext__, not `async for`: the SDKs' __aiter__ is one more async generator wrapped
                # around the same iterator, left for the loop's finalizer hook to close when the read stops early
                next_event = events.__anext__
                while True:
                    try:
                        event = await next_event()
                    except StopAsyncIteration:
                        break
                    if reader.read(event):
                        break
            return self._described(reader.turn(), model)

    def _described(self, turn: ModelTurn, model: str) -> ModelTurn:
        """``turn`` with the model asked for and the API's host and port, for the log and telemetry."""
        address, port = self._server
        return msgspec.structs.replace(
            turn,
            request_model=turn.request_model or model,
            server_address=turn.server_address or address,
            server_port=turn.server_port or port,
        )

    @functools.cached_property
    def _server(self) -> tuple[str | None, int | None]:
        """The host and port of ``base_url`` (the scheme's default port when it names none), else the vendor's."""
        if not self.base_url:
            return (self.default_host or None), (443 if self.default_host else None)
        try:
            parts = urllib.parse.urlsplit(self.base_url)
            port = parts.port
        except ValueError:
            return None, None
        if not parts.hostname:
            return None, None
        return parts.hostname, port if port is not None else {"http": 80, "https": 443}.get(parts.scheme)

    def _errors(self, progress: StreamProgress, model: str, *, streamed: bool) -> _Failures:
        """Turn what a call raises into a :class:`~delite.errors.ProviderError` with what it may have cost."""
        return _Failures(self, progress, model, streamed)

    def _create(
        self, client: Any, messages: list[dict[str, Any]], tools: list[dict[str, Any]], model: str, *, stream: bool
    ) -> Any:
        """The SDK call for this request on ``client`` (sync or async: the same method, awaited or not)."""
        request = self._request(messages, tools, model)
        if stream:
            request["stream"] = True
            for key, value in self.stream_request.items():
                request.setdefault(key, value)
        # The conversation and the tool schemas are built here as plain JSON, field by field, so they go into the
        # body as they are (``extra_body``) rather than through the SDK's recursive transform of typed params: that
        # transform changes nothing in them and costs more CPU than the rest of the call (about 2.5 ms of 4.5 ms
        # for a 12-message conversation). A field the SDK's create requires is given as an empty placeholder that
        # the body's own field replaces; the caller's own ``extra_body`` (in ``params``) still wins.
        as_is = {key: request.pop(key) for key in self.as_is if key in request}
        if as_is:
            request["extra_body"] = {**as_is, **(request.get("extra_body") or {})}
            request.update({key: [] for key in self.required if key in as_is})
        return self._endpoint(client)(**request)

    @abc.abstractmethod
    def _endpoint(self, client: Any) -> Callable[..., Any]:
        """The SDK's create method on ``client`` (``client.chat.completions.create``...)."""

    @abc.abstractmethod
    def _request(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]], model: str) -> dict[str, Any]:
        """The create call's keyword arguments for this conversation."""

    @abc.abstractmethod
    def _parse(self, response: Any, model: str) -> ModelTurn:
        """The turn in a non-streaming response."""

    def _reader(self, model: str, on_text: TextSink, progress: StreamProgress) -> StreamReader[Any]:
        """A reader for one streamed answer's events."""
        return self.reader(self, model, on_text, progress)

    def _sampling(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.temperature is not None:
            out["temperature"] = self.temperature
        if self.top_p is not None:
            out["top_p"] = self.top_p
        return out

    # -- usage -----------------------------------------------------------------------------------------------

    def _price(self, model: str | None, usage: Usage, *, cache_write_1h: int = 0) -> Usage:
        table = self.prices if self.prices is not None else PriceTable.default()
        return table.price(self.price_vendor, model, usage, cache_write_1h=cache_write_1h)

    def _partial_usage(self, progress: StreamProgress, model: str) -> Usage:
        """What a call that got under way and then failed is known to have used: a lower bound."""
        usage = progress.usage or Usage()
        usage = msgspec.structs.replace(usage, known=False, cost=None)
        table = self.prices if self.prices is not None else PriceTable.default()
        cost = table.cost(self.price_vendor, model, usage, cache_write_1h=progress.cache_write_1h)
        if cost is None or usage.total_tokens == 0:
            return usage
        from delite.providers._pricing import format_cost  # noqa: PLC0415

        return msgspec.structs.replace(usage, cost=format_cost(cost), price_version=table.version)

    # -- errors ----------------------------------------------------------------------------------------------

    def _failed(self, exc: Exception, progress: StreamProgress, model: str) -> ProviderError:
        error = self.classify_error(exc)
        if error.usage is None and (progress.started or self._may_have_run(exc)):
            error.usage = self._partial_usage(progress, model)
        return error

    def _may_have_run(self, exc: Exception) -> bool:
        """Whether the request may have reached the model (so the attempt may be billed)."""
        import httpx2  # noqa: PLC0415

        sdk = self._sdk
        if isinstance(exc, sdk.APIStatusError):
            return False
        cause: BaseException | None = exc
        while cause is not None:
            if isinstance(cause, (httpx2.ConnectError, httpx2.ConnectTimeout)):
                return False
            cause = cause.__cause__ or cause.__context__
        return True

    def classify_error(self, exc: BaseException) -> ProviderError:
        """Map an SDK, HTTP or decoding error to a :class:`~delite.errors.ProviderError` the engine retries or not.

        Retryable: 408, 409, 429 (with ``retry-after-ms``/``retry-after``), 5xx and 529, connection errors,
        timeouts, broken or truncated streams, in-band overload/server errors, responses that fail the
        SDK's schema, and the raw ``httpx2``/JSON errors the SDKs let through. ``x-should-retry`` overrides
        the status. Permanent: other 4xx (400, 401, 403, 404, 422, content policy) as
        :class:`~delite.errors.ProviderHTTPError` with the status and body, and anything else.
        """
        import httpx2  # noqa: PLC0415

        sdk = self._sdk
        name = self.name
        if isinstance(exc, ProviderError):
            return exc
        if isinstance(exc, sdk.APIStatusError):
            status = int(exc.status_code)
            body = _body_text(exc.body, getattr(exc, "message", str(exc)))
            kind = _error_type(exc.body)
            if status < 400:  # an in-band error event in a 200 stream (Anthropic)
                retryable = kind is None or kind in _RETRYABLE_TYPES
                return ProviderError(f"error event in the stream: {body[:500]}", provider=name, retryable=retryable)
            headers = exc.response.headers
            should = (headers.get("x-should-retry") or "").lower()
            retryable = status in (408, 409, 429) or status >= 500
            if should in ("true", "false"):
                retryable = should == "true"
            retry_after = parse_retry_after(headers) if retryable else None
            return ProviderHTTPError(status, body, provider=name, retryable=retryable, retry_after=retry_after)
        if isinstance(exc, sdk.APITimeoutError):
            return ProviderError(f"timed out: {exc}", provider=name, retryable=True)
        if isinstance(exc, sdk.APIConnectionError):
            cause = exc.__cause__
            detail = f"{type(cause).__name__}: {cause}" if cause is not None else str(exc)
            return ProviderError(f"connection error: {detail}", provider=name, retryable=True)
        if isinstance(exc, sdk.APIResponseValidationError):
            return ProviderError(f"the response did not match the API's schema: {exc}", provider=name, retryable=True)
        if isinstance(exc, sdk.APIError):  # an in-band error in a stream, with no status
            body = _body_text(exc.body, str(exc))
            kind = _error_type(exc.body)
            retryable = kind is None or kind in _RETRYABLE_TYPES
            return ProviderError(f"error event in the stream: {body[:500]}", provider=name, retryable=retryable)
        if isinstance(exc, httpx2.TimeoutException):
            return ProviderError(f"timed out: {type(exc).__name__}: {exc}", provider=name, retryable=True)
        if isinstance(exc, httpx2.HTTPError):
            return ProviderError(f"{type(exc).__name__}: {exc}", provider=name, retryable=True)
        if isinstance(exc, json.JSONDecodeError):
            return ProviderError(f"malformed JSON from the server: {exc}", provider=name, retryable=True)
        return ProviderError(f"{type(exc).__name__}: {exc}", provider=name, retryable=False)

    def _incomplete(self, what: str) -> ProviderError:
        return ProviderError(f"the stream ended without {what}", provider=self.name, retryable=True)

    def _stream_error(self, kind: str | None, message: str) -> ProviderError:
        retryable = kind is None or kind in _RETRYABLE_TYPES
        return ProviderError(f"error event in the stream: {kind}: {message}", provider=self.name, retryable=retryable)
