"""What the three SDK-backed providers share: configuration, error classification and usage pricing.

The vendor SDKs are imported when a provider is built, never when delite is imported. delite owns retries:
every client is built with ``max_retries=0``, and :meth:`SDKProvider.classify_error` tells the engine which
failures a retry may fix (see ``docs/providers.md``, "Retries").
"""

from __future__ import annotations

import abc
import email.utils
import json
import os
import threading
import time
from collections.abc import Callable, Mapping
from types import ModuleType
from typing import Any, ClassVar, Self

import msgspec

from delite.errors import ProviderError, ProviderHTTPError, UsageError
from delite.log.records import Usage
from delite.providers._base import ModelTurn
from delite.providers._pricing import PriceTable

__all__ = ["SDKProvider", "StreamProgress", "parse_retry_after"]

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


_CLIENTS: dict[tuple[Any, ...], Any] = {}
_MAX_SHARED = 32
_CLIENTS_LOCK = threading.Lock()


def _shared_client(provider: SDKProvider, options: dict[str, Any]) -> Any:
    """A client for these options: shared by every provider configured alike while it stays open."""
    import httpx2  # noqa: PLC0415 - the SDKs' HTTP client, loaded with them

    read, connect = options["timeout"]
    built = {**options, "timeout": httpx2.Timeout(read, connect=connect)}
    try:
        key: tuple[Any, ...] | None = (type(provider), *sorted(options.items()))
        hash(key)
    except TypeError:  # an unhashable client option (an http_client object): not shared
        key = None
    if key is None:
        return provider._make_client(built)  # noqa: SLF001 - the provider's own factory
    with _CLIENTS_LOCK:
        client = _CLIENTS.get(key)
        if client is None or client.is_closed():
            while len(_CLIENTS) >= _MAX_SHARED:  # many keys (one per tenant?): forget the oldest, unclosed
                del _CLIENTS[next(iter(_CLIENTS))]
            client = _CLIENTS[key] = provider._make_client(built)  # noqa: SLF001
        return client


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


class SDKProvider(abc.ABC):
    """Base of the SDK-backed providers: a model id, a client, and the behaviour they share.

    :class:`~delite.providers.OpenAI`, :class:`~delite.providers.OpenAIResponses` and
    :class:`~delite.providers.Anthropic` derive from it.

    Subclasses implement ``_make_client``, ``_complete`` (one non-streaming call) and ``_stream``.
    """

    vendor: ClassVar[str] = ""
    price_vendor: ClassVar[str] = ""
    env_key: ClassVar[str] = ""
    env_base_url: ClassVar[str] = ""
    env_model: ClassVar[str] = ""
    default_model: ClassVar[str] = ""
    sdk_name: ClassVar[str] = ""

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

    @abc.abstractmethod
    def _make_client(self, options: dict[str, Any]) -> Any:
        """Build the vendor SDK's client from ``options``."""

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

    @property
    def name(self) -> str:
        """``vendor:model``, the recipe string; recorded in each execution's configuration fingerprint."""
        return f"{self.vendor}:{self.model}"

    def __repr__(self) -> str:
        """The class, the model and the base URL when set."""
        where = f", base_url={self.base_url!r}" if self.base_url else ""
        return f"{type(self).__name__}({self.model!r}{where})"

    def close(self) -> None:
        """Close the SDK client's connections (a provider that uses it again opens a new one)."""
        if self._client is not None:
            self._client.close()

    def __enter__(self) -> Self:
        """Use as a context manager that closes the client."""
        return self

    def __exit__(self, *exc: object) -> None:
        """Close the client."""
        self.close()

    # -- calls -----------------------------------------------------------------------------------------------

    def __call__(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]], model: str | None) -> ModelTurn:
        """One non-streaming call: the model's next turn for ``messages`` (OpenAI chat shape)."""
        progress = StreamProgress()
        try:
            return self._complete(messages, tools, model or self.model, progress)
        except ProviderError:
            raise
        except Exception as e:
            raise self._failed(e, progress, model or self.model) from e

    def stream(
        self, messages: list[dict[str, Any]], tools: list[dict[str, Any]], model: str | None, *, on_text: TextSink
    ) -> ModelTurn:
        """One streaming call: ``on_text`` gets each piece of text as it arrives; returns the complete turn.

        A stream that breaks, stalls past the timeout, or ends without its terminal event raises a retryable
        :class:`~delite.errors.ProviderError`; nothing of it is returned.
        """
        progress = StreamProgress()
        try:
            return self._stream(messages, tools, model or self.model, on_text, progress)
        except ProviderError as e:
            if e.usage is None and progress.started:
                e.usage = self._partial_usage(progress, model or self.model)
            raise
        except Exception as e:
            raise self._failed(e, progress, model or self.model) from e

    @abc.abstractmethod
    def _complete(
        self, messages: list[dict[str, Any]], tools: list[dict[str, Any]], model: str, progress: StreamProgress
    ) -> ModelTurn:
        """One non-streaming call."""

    @abc.abstractmethod
    def _stream(
        self,
        messages: list[dict[str, Any]],
        tools: list[dict[str, Any]],
        model: str,
        on_text: TextSink,
        progress: StreamProgress,
    ) -> ModelTurn:
        """One streaming call, passing text to ``on_text`` as it arrives."""

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
