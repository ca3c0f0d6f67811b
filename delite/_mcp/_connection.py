"""One disposable MCP session per server, on delite's MCP loop; imports the ``mcp`` package.

A session is opened on demand, reused while it works, and thrown away at the first sign of trouble (a
transport error, a timeout): the next request opens a new one. Nothing depends on state the server keeps
for a session. Every wait is bounded: connecting, listing and calling each have a timeout.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from typing import Any, TextIO, cast

import httpx2
from mcp import Client, MCPError, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.types import RequestParamsMeta

from delite.errors import ToolError
from delite.tools._base import CallInDoubtError

__all__ = ["Listing", "MCPUnavailableError", "Session", "SessionConfig"]

_CONNECTION_CLOSED = -32000  # the mcp package's code for a session that ended with requests in flight
_REQUEST_TIMEOUT = -32001
_PAGES = 100  # most pages of a tools/list walk: a server whose cursor never ends cannot hang a listing


class MCPUnavailableError(ToolError):
    """An MCP server could not be reached (or listed) within its timeouts, after the retries."""


@dataclass(frozen=True)
class SessionConfig:
    """How to reach one server, and how long to wait for it."""

    name: str
    command: tuple[str, ...] | None = None
    url: str | None = None
    app: Any = None
    env: dict[str, str] | None = None
    cwd: str | None = None
    stderr: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    auth: Any = None
    connect_timeout: float = 10.0
    list_timeout: float = 30.0
    connect_attempts: int = 3


@dataclass(frozen=True)
class Listing:
    """What a server said about itself and its tools (each tool as its wire JSON)."""

    server_name: str | None
    server_version: str | None
    protocol_version: str
    tools: list[dict[str, Any]]


class Session:
    """The session to one server; every method runs on the MCP loop."""

    def __init__(self, config: SessionConfig) -> None:
        """Nothing is opened yet."""
        self.config = config
        self._client: Client | None = None
        self._owner: asyncio.Task[None] | None = None
        self._stop: asyncio.Event | None = None
        self._lock: asyncio.Lock | None = None

    # -- opening and closing ---------------------------------------------------------------------------------

    async def client(self) -> Client:
        """The open session, opened now if there is none (retried; :class:`MCPUnavailableError` at last)."""
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            if self._client is not None and self._owner is not None and not self._owner.done():
                return self._client
            await self._drop()
            c = self.config
            error: BaseException | None = None
            for attempt in range(c.connect_attempts):
                if attempt:
                    await asyncio.sleep(min(0.25 * 2 ** (attempt - 1), 2.0))
                try:
                    self._client = await self._open()
                except (Exception, TimeoutError) as e:  # noqa: BLE001 - every way a connection fails is retried
                    error = e
                    continue
                return self._client
            detail = f"{type(error).__name__}: {error}" if error is not None else "no attempt made"
            raise MCPUnavailableError(
                f"MCP server {c.name!r} is unavailable after {c.connect_attempts} attempt(s): {detail}"
            )

    async def _open(self) -> Client:
        loop = asyncio.get_running_loop()
        ready: asyncio.Future[Client] = loop.create_future()
        stop = asyncio.Event()
        owner = loop.create_task(self._own(ready, stop), name=f"delite-mcp-{self.config.name}")
        try:
            client = await asyncio.wait_for(asyncio.shield(ready), self.config.connect_timeout)
        except BaseException:
            owner.cancel()
            await asyncio.gather(owner, return_exceptions=True)
            if ready.done() and not ready.cancelled():
                ready.exception()  # retrieved: it is the error raised here
            raise
        self._owner, self._stop = owner, stop
        return client

    async def _own(self, ready: asyncio.Future[Client], stop: asyncio.Event) -> None:
        """Hold the session open (its context is entered and left in this one task) until asked to stop."""
        try:
            async with AsyncExitStack() as stack:
                client = await stack.enter_async_context(self._build(stack))
                ready.set_result(client)
                await stop.wait()
        except BaseException as e:  # noqa: BLE001 - a failed session is a dead one; the next request reopens
            if not ready.done():
                ready.set_exception(e if isinstance(e, Exception) else ConnectionError(repr(e)))

    def _build(self, stack: AsyncExitStack) -> Client:
        c = self.config
        if c.app is not None:
            return Client(c.app, cache=None)
        if c.command is not None:
            errlog = _stderr_file(c)
            stack.callback(errlog.close)
            params = StdioServerParameters(command=c.command[0], args=list(c.command[1:]), env=c.env, cwd=c.cwd)
            return Client(stdio_client(params, errlog=errlog), cache=None)
        assert c.url is not None
        timeout = httpx2.Timeout(c.connect_timeout, read=None)  # reads are bounded per request, below
        http = httpx2.AsyncClient(headers=c.headers, auth=c.auth, timeout=timeout)
        stack.push_async_callback(http.aclose)
        return Client(streamable_http_client(c.url, http_client=http), cache=None)

    async def _drop(self) -> None:
        owner, stop = self._owner, self._stop
        self._client = self._owner = self._stop = None
        if owner is None or stop is None:
            return
        stop.set()
        try:
            await asyncio.wait_for(asyncio.shield(owner), 5.0)
        except (Exception, TimeoutError):  # noqa: BLE001 - a session that does not close in time is cancelled
            owner.cancel()
            await asyncio.gather(owner, return_exceptions=True)

    async def close(self) -> None:
        """End the session (a stdio server's process exits with it)."""
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            await self._drop()

    async def discard(self, client: Client) -> None:
        """Throw away ``client``'s session after a failure (unless a newer one replaced it already)."""
        if self._client is client:
            await self.close()

    # -- requests --------------------------------------------------------------------------------------------

    async def list_tools(self) -> Listing:
        """The server's tools, every page (retried on a fresh session; :class:`MCPUnavailableError` at last)."""
        c = self.config
        error: BaseException | None = None
        for _ in range(c.connect_attempts):
            client = await self.client()
            try:
                return await asyncio.wait_for(_listing(client), c.list_timeout)
            except (Exception, TimeoutError) as e:  # noqa: BLE001 - listing is safe to repeat
                error = e
                await self.discard(client)
        raise MCPUnavailableError(f"MCP server {c.name!r} could not list its tools: {type(error).__name__}: {error}")

    async def call_tool(
        self, tool: str, arguments: dict[str, Any], meta: dict[str, Any], *, seconds: float, retry_safe: bool
    ) -> dict[str, Any]:
        """Call ``tool``; the result as the server gave it (``content``, ``structuredContent``, ``isError``).

        A failure before the request is sent (no session) is retried by :meth:`client`. A failure after it
        may have reached the server is retried once on a new session only when ``retry_safe``. Otherwise a
        timeout is a :class:`~delite.errors.ToolError` the model sees (the server was told to cancel), and a
        connection lost with the request in flight is a :class:`~delite.tools._base.CallInDoubtError`: the call stays in
        doubt and the execution waits for an operator, as after a crash.
        """
        c = self.config
        attempts = 2 if retry_safe else 1
        for attempt in range(1, attempts + 1):
            client = await self.client()
            try:
                result = await asyncio.wait_for(
                    client.call_tool(
                        tool, arguments, read_timeout_seconds=seconds, meta=cast("RequestParamsMeta", meta)
                    ),
                    seconds + 1.0,
                )
            except MCPError as e:
                if e.code == _REQUEST_TIMEOUT:  # the mcp package gave up waiting, told the server to cancel
                    if attempt < attempts:
                        continue
                    raise ToolError(
                        f"MCP server {c.name!r}, tool {tool!r}: timed out after {seconds:g} s; "
                        "the call may or may not have acted"
                    ) from e
                if e.code != _CONNECTION_CLOSED:  # the server answered with an error
                    raise ToolError(f"MCP server {c.name!r}, tool {tool!r}: error {e.code}: {e.message}") from e
                await self.discard(client)  # the session died under us
                if attempt < attempts:
                    continue
                raise self._lost(tool, f"error {e.code}: {e.message}", retry_safe=retry_safe) from e
            except (Exception, TimeoutError) as e:  # transport failures, timeouts
                if _malformed(e):  # it answered, and the answer is not MCP: an error the model sees, not in doubt
                    raise ToolError(
                        f"MCP server {c.name!r}, tool {tool!r}: answered with a result that is not valid MCP "
                        f"({_first_line(e)}); the call may have acted"
                    ) from e
                await self.discard(client)
                if attempt < attempts:
                    continue
                if isinstance(e, TimeoutError):
                    raise ToolError(
                        f"MCP server {c.name!r}, tool {tool!r}: timed out after {seconds:g} s; "
                        "the call may or may not have acted"
                    ) from e
                raise self._lost(tool, f"{type(e).__name__}: {e}", retry_safe=retry_safe) from e
            wire = result.model_dump(by_alias=True, mode="json", exclude_none=True)
            out: dict[str, Any] = {"content": wire.get("content", [])}
            if "structuredContent" in wire:
                out["structuredContent"] = wire["structuredContent"]
            out["isError"] = bool(wire.get("isError", False))
            return out
        raise AssertionError("unreachable")  # pragma: no cover

    def _lost(self, tool: str, detail: str, *, retry_safe: bool) -> ToolError:
        """The error for a call whose connection was lost in flight: in doubt unless it is safe to repeat."""
        message = f"MCP server {self.config.name!r}, tool {tool!r}: the connection was lost mid-call ({detail})"
        if retry_safe:  # sent twice already; the model may call it again
            return ToolError(f"{message}; the call may or may not have acted")
        return CallInDoubtError(message)


def _malformed(error: BaseException) -> bool:
    """Whether ``error`` is the client's refusal of an answer that arrived (pydantic could not validate it)."""
    from pydantic import ValidationError  # noqa: PLC0415 - with the mcp package, which is built on it

    return isinstance(error, ValidationError)


def _first_line(error: BaseException) -> str:
    """The first line of what ``error`` says (a validation error lists every field on a line of its own)."""
    lines = str(error).splitlines()
    return f"{type(error).__name__}: {lines[0] if lines else ''}"[:300]


async def _listing(client: Client) -> Listing:
    tools: list[dict[str, Any]] = []
    cursor: str | None = None
    for _ in range(_PAGES):
        page = await client.list_tools(cursor=cursor, cache_mode="refresh")
        tools.extend(t.model_dump(by_alias=True, mode="json", exclude_none=True) for t in page.tools)
        cursor = page.next_cursor
        if cursor is None:
            break
    info = client.server_info
    return Listing(
        server_name=info.name if info is not None else None,
        server_version=(info.version or None) if info is not None else None,
        protocol_version=str(client.protocol_version),
        tools=tools,
    )


def _stderr_file(c: SessionConfig) -> TextIO:
    """Where a stdio server's stderr goes: the configured file, else one per server in the temp directory."""
    path = c.stderr or os.path.join(tempfile.gettempdir(), f"delite-mcp-{c.name}.log")
    return open(path, "a", encoding="utf-8")  # closed with the session
