"""MCP servers as durable tool sources: :class:`MCPServer`, its per-tool options, its tools.

An :class:`MCPServer` goes in ``Agent(..., tools=[...])``. It is a :class:`~delite.engine._loop.ToolSource`:
when an execution first advances with it, the server is listed once and its catalog is appended to the log
(``mcp-catalog-recorded``); from then on the model is offered the recorded tools, as ``<server>__<tool>``,
whatever the server says later, and nothing is listed again to rebuild them. Each tool is an ordinary
:class:`~delite.tools.Tool` whose body calls the server, so calls are steps like any other (intent and
result in the log, approvals, in-doubt handling). This module does not import the ``mcp`` package; the
connection code does, on first use.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
import threading
import warnings
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import msgspec

from delite import _checks as checks
from delite.engine._effects import Io, Steps
from delite.errors import DriftError, UsageError
from delite.log._codec import encode_record
from delite.log._framing import MAX_RECORD_SIZE
from delite.log.records import DriftAccepted, MCPCatalogRecorded, MCPToolEntry, ToolSpec
from delite.tools._base import Tool, active_call

if TYPE_CHECKING:
    from delite._mcp._connection import Listing, Session
    from delite.engine._loop import Runner

__all__ = ["MCPServer", "MCPToolOptions"]

SEPARATOR = "__"
"""Between a server's name and its tool's name in the name the model calls: ``fs__read_file``."""

META_PREFIX = "dev.delite/"
"""The prefix of the keys delite puts in a call's ``_meta``: ``idempotencyKey``, ``executionId``, ``callId``..."""

_enc = msgspec.json.Encoder(order="sorted")
_MAX_NAME = 64  # the longest tool name every provider takes
_SERVER_NAME = re.compile(r"[A-Za-z0-9_-]{1,32}")
_TOOL_NAME = re.compile(rf"[A-Za-z0-9_-]{{1,{_MAX_NAME}}}")


@dataclass(frozen=True)
class MCPToolOptions:
    """How delite gates one tool of an MCP server (``MCPServer(..., options={"tool": MCPToolOptions(...)})``).

    Attributes:
        requires_confirmation: a human approves each call before it is sent (None: the server's default).
        timeout: seconds a call may take before it fails (None: the server's ``call_timeout``).
        parallel: may run at the same time as the turn's other calls (None: the server's ``parallel``).
        target: ``"client"``: the client runs this tool, not delite (the run suspends with the call, as for a
            local tool declared ``target="client"``); ``"server"`` (the default): delite calls the server.
    """

    requires_confirmation: bool | None = None
    timeout: float | None = None
    parallel: bool | None = None
    target: Literal["server", "client"] = "server"

    def __post_init__(self) -> None:
        """Validate every field; a bad option is a :class:`~delite.errors.UsageError` here."""
        if self.requires_confirmation is not None:
            checks.check_flag("requires_confirmation", self.requires_confirmation)
        if self.parallel is not None:
            checks.check_flag("parallel", self.parallel)
        if self.timeout is not None:
            _check_seconds("timeout", self.timeout)
        if self.target not in ("server", "client"):
            raise UsageError(f"target must be 'server' or 'client', not {self.target!r:.80}")


class MCPServer:
    """An MCP server whose tools the agent offers to the model (``Agent(..., tools=[MCPServer(...)])``).

    Give exactly one of ``command`` (a stdio server: a subprocess), ``url`` (Streamable HTTP) or ``app`` (an
    ``mcp`` server object in this process, for tests). Nothing is started or connected when it is built:
    the first run that uses it connects, lists the tools and records them in that execution's log.

    Args:
        name: the server's name in this agent: its tools are offered as ``<name>__<tool>``; letters, digits,
            ``_`` and ``-``, and no ``__``.
        command: the program and its arguments, for a stdio server.
        url: the Streamable HTTP endpoint.
        app: an ``mcp.server.mcpserver.MCPServer`` (or low-level ``Server``) served in memory.
        env: environment variables for a stdio server, on top of the few the ``mcp`` package passes
            (``HOME``, ``PATH``, ``USER``...): nothing else of this process's environment reaches it.
        cwd: the working directory of a stdio server.
        stderr: the file a stdio server's stderr is appended to (default: ``delite-mcp-<name>.log`` in the
            temporary directory), never the terminal.
        headers: HTTP headers sent with every request (an ``Authorization`` header, say).
        auth: an ``httpx2.Auth`` for the HTTP client (OAuth and the like).
        tools: which of the server's tools to offer: None (all), a list of names, or a function
            ``(name) -> bool``. Applied when the catalog is recorded.
        options: per-tool :class:`MCPToolOptions`, by the tool's name on the server.
        requires_confirmation: every tool of the server needs a human's approval (a tool's options may
            say otherwise).
        trusted: believe the server's annotations: a call left in doubt by a crash is sent again
            automatically only when the server is trusted and the tool says it is read-only or idempotent;
            otherwise the execution waits for an operator (as for ``retry_in_doubt=False``).
        parallel: the server's calls may run at the same time as others of the same turn.
        call_timeout: seconds a tool call may take.
        connect_timeout: seconds a connection (start, handshake) may take; it is tried ``connect_attempts``
            times before the server counts as unavailable.
        list_timeout: seconds listing the tools may take.
        connect_attempts: how many times a connection is tried.
    """

    def __init__(
        self,
        name: str,
        *,
        command: Iterable[str] | None = None,
        url: str | None = None,
        app: Any = None,
        env: Mapping[str, str] | None = None,
        cwd: str | os.PathLike[str] | None = None,
        stderr: str | os.PathLike[str] | None = None,
        headers: Mapping[str, str] | None = None,
        auth: Any = None,
        tools: Iterable[str] | Callable[[str], bool] | None = None,
        options: Mapping[str, MCPToolOptions] | None = None,
        requires_confirmation: bool = False,
        trusted: bool = False,
        parallel: bool = True,
        call_timeout: float = 60.0,
        connect_timeout: float = 10.0,
        list_timeout: float = 30.0,
        connect_attempts: int = 3,
    ) -> None:
        """Check the configuration; nothing is connected yet."""
        checks.check_text("MCP server name", name)
        if not _SERVER_NAME.fullmatch(name) or SEPARATOR in name:
            raise UsageError(f"MCP server name {name!r:.80} must be 1 to 32 letters, digits, '_' or '-', without '__'")
        given = [k for k, v in (("command", command), ("url", url), ("app", app)) if v is not None]
        if len(given) != 1:
            raise UsageError(f"MCPServer {name!r}: give exactly one of command=, url= or app= (got {given or 'none'})")
        argv: tuple[str, ...] | None = None
        if command is not None:
            if isinstance(command, str):
                raise UsageError(f"MCPServer {name!r}: command is a list of strings, the program then its arguments")
            argv = tuple(command)
            if not argv or not all(isinstance(a, str) and a for a in argv):
                raise UsageError(f"MCPServer {name!r}: command must be a non-empty list of non-empty strings")
        if url is not None and (not isinstance(url, str) or not url.startswith(("http://", "https://"))):
            raise UsageError(f"MCPServer {name!r}: url must be an http:// or https:// URL, not {url!r:.80}")
        for what, mapping in (("env", env), ("headers", headers)):
            if mapping is not None and (
                not isinstance(mapping, Mapping)
                or not all(isinstance(k, str) and isinstance(v, str) for k, v in mapping.items())
            ):
                raise UsageError(f"MCPServer {name!r}: {what} must map strings to strings")
        if (env is not None or cwd is not None or stderr is not None) and argv is None:
            raise UsageError(f"MCPServer {name!r}: env=, cwd= and stderr= are for a stdio server (command=)")
        if (headers is not None or auth is not None) and url is None:
            raise UsageError(f"MCPServer {name!r}: headers= and auth= are for an HTTP server (url=)")
        self._filter = _tool_filter(name, tools)
        opts = dict(options or {})
        for tool_name, opt in opts.items():
            if not isinstance(tool_name, str) or not isinstance(opt, MCPToolOptions):
                raise UsageError(f"MCPServer {name!r}: options map tool names to MCPToolOptions")
        checks.check_flag("requires_confirmation", requires_confirmation)
        checks.check_flag("trusted", trusted)
        checks.check_flag("parallel", parallel)
        for what, seconds in (
            ("call_timeout", call_timeout),
            ("connect_timeout", connect_timeout),
            ("list_timeout", list_timeout),
        ):
            _check_seconds(what, seconds)
        if isinstance(connect_attempts, bool) or not isinstance(connect_attempts, int) or connect_attempts < 1:
            raise UsageError(f"MCPServer {name!r}: connect_attempts must be an int of 1 or more")
        self.name = name
        self.options = opts
        self.requires_confirmation = requires_confirmation
        self.trusted = trusted
        self.parallel = parallel
        self.call_timeout = float(call_timeout)
        self._config: dict[str, Any] = {
            "name": name,
            "command": argv,
            "url": url,
            "app": app,
            "env": dict(env) if env is not None else None,
            "cwd": os.fspath(cwd) if cwd is not None else None,
            "stderr": os.fspath(stderr) if stderr is not None else None,
            "headers": dict(headers or {}),
            "auth": auth,
            "connect_timeout": float(connect_timeout),
            "list_timeout": float(list_timeout),
            "connect_attempts": connect_attempts,
        }
        self._session: Session | None = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        """The name and how it is reached."""
        c = self._config
        where = f"command={list(c['command'])!r}" if c["command"] else f"url={c['url']!r}" if c["url"] else "app=..."
        return f"MCPServer({self.name!r}, {where})"

    # -- the connection --------------------------------------------------------------------------------------

    def _connection(self) -> Session:
        """The server's session manager (importing the ``mcp`` package on first use).

        Sessions are pooled by the server's configuration, process-wide: ``MCPServer`` objects built alike
        (a web app building its agent per request) share one session, one stdio process, instead of
        leaving one behind per object.
        """
        with self._lock:  # the tool calls of one turn may ask at once, from several threads
            if self._session is None:
                self._session = _pooled(self._config)
            return self._session

    def _list(self) -> Listing:
        """List the server's tools now (blocking, from any thread but the MCP loop's)."""
        from delite._mcp._loop import mcp_loop  # noqa: PLC0415

        session = self._connection()
        return mcp_loop().run(session.list_tools())

    def close(self) -> None:
        """End this process's session with the server (a stdio server's process exits); reopened on demand.

        The session is shared by every ``MCPServer`` of this process built with the same configuration.
        """
        session = self._session
        if session is None:
            with _pool_lock:
                session = _pool.get(_pool_key(self._config))
        if session is None:
            return
        from delite._mcp._loop import mcp_loop  # noqa: PLC0415

        mcp_loop().run(session.close())

    # -- the tool source -------------------------------------------------------------------------------------

    @property
    def spec(self) -> ToolSpec:
        """The server in the agent's configuration fingerprint: its name and gating, not its address.

        The tools themselves are recorded per execution (``mcp-catalog-recorded``), so a server that moved
        (another port after a restart) is no drift; one that was removed, or is no longer trusted, is.
        """
        return ToolSpec(
            name=f"{self.name}{SEPARATOR}*",
            description=f"the tools of MCP server {self.name!r}",
            parameters={"mcp": {"trusted": self.trusted}},
            requires_confirmation=self.requires_confirmation,
            retry_in_doubt=self.trusted,
        )

    def attach(self, runner: Runner, *, resumed: bool, on_drift: str) -> Steps[None]:
        """Record the catalog at the execution's first use, check pending calls for drift, offer the tools."""
        catalog = _recorded(runner.log.records, self.name)
        if catalog is None:
            listing = yield from self._listed(runner)
            catalog = self._catalog(listing, runner.settings.clock())
            size = len(encode_record(catalog))
            if size > MAX_RECORD_SIZE:
                raise UsageError(
                    f"MCP server {self.name!r} lists {size:,} bytes of tools, over the limit of "
                    f"{MAX_RECORD_SIZE:,} bytes per record; pass tools=[...] to offer fewer"
                )
            runner.buffer(catalog)
        elif resumed:
            yield from self._check_drift(runner, catalog, on_drift)
        settings = runner.settings
        tools = self._tools(catalog)
        clash = sorted(set(tools) & set(settings.tools))
        if clash:
            raise UsageError(f"MCP server {self.name!r}: tool name {clash[0]!r} is taken by another tool")
        runner.settings = dataclasses.replace(
            settings,
            tools={**settings.tools, **tools},
            schemas=[*settings.schemas, *(t.schema() for t in tools.values())],
        )

    def _listed(self, runner: Runner) -> Steps[Listing]:
        """The live listing; a server that cannot be listed fails the run (recorded), to be resumed later."""
        try:
            listing: Listing = yield Io(self._list)
        except UsageError:
            raise
        except Exception as e:
            yield from runner.fail(e)
            raise
        return listing

    def _catalog(self, listing: Listing, now: float) -> MCPCatalogRecorded:
        entries = [_entry(t) for t in listing.tools]
        kept = [e for e in entries if self._filter(e.name)]
        seen: set[str] = set()
        for entry in kept:
            full = f"{self.name}{SEPARATOR}{entry.name}"
            if not entry.name or not _TOOL_NAME.fullmatch(full):
                raise UsageError(
                    f"MCP server {self.name!r} lists a tool {entry.name!r:.80} that models cannot call as "
                    f"{full!r:.100} (letters, digits, '_' and '-', at most {_MAX_NAME} characters in all); "
                    "leave it out with tools=[...]"
                )
            if entry.name in seen:
                raise UsageError(
                    f"MCP server {self.name!r} lists the tool {entry.name!r} twice; leave it out with tools=[...]"
                )
            seen.add(entry.name)
        return MCPCatalogRecorded(
            at=now,
            server=self.name,
            server_name=listing.server_name,
            server_version=listing.server_version,
            protocol_version=listing.protocol_version,
            tools=kept,
        )

    def _tools(self, catalog: MCPCatalogRecorded) -> dict[str, Tool]:
        tools: dict[str, Tool] = {}
        for entry in catalog.tools:
            tool = MCPTool(self, entry)
            tools[tool.name] = tool
        return tools

    def _check_drift(self, runner: Runner, catalog: MCPCatalogRecorded, on_drift: str) -> Steps[None]:
        """Pending calls to this server whose tool vanished or whose input schema changed: the drift policy."""
        prefix = f"{self.name}{SEPARATOR}"
        recorded = {t.name: t for t in catalog.tools}
        pending = sorted(
            {cs.call.name[len(prefix) :] for cs in runner.state.open_calls() if cs.call.name.startswith(prefix)}
        )
        pending = [name for name in pending if name in recorded]
        if not pending:
            return
        listing = yield from self._listed(runner)
        live = {t.name: t for t in (_entry(w) for w in listing.tools)}
        changes: list[tuple[str, str, str]] = []
        for name in pending:
            before = _enc.encode(recorded[name].input_schema).decode()
            now = live.get(name)
            what = f"MCP server {self.name!r} tool {name!r}"
            if now is None:
                changes.append((what, before, "(absent)"))
            elif _enc.encode(now.input_schema).decode() != before:
                changes.append((what, before, _enc.encode(now.input_schema).decode()))
        if not changes:
            return
        eid = runner.state.execution_id
        if on_drift == "error":
            raise DriftError(eid, changes)
        if on_drift == "warn":
            warnings.warn(str(DriftError(eid, changes)), RuntimeWarning, stacklevel=2)
        runner.buffer(
            DriftAccepted(
                at=runner.settings.clock(),
                changes=[list(c) for c in changes],
                config=runner.state.config,
                policy=on_drift,
            )
        )


class MCPTool(Tool):
    """One tool of an MCP server, as recorded in the execution's catalog; its body calls the server."""

    def __init__(self, server: MCPServer, entry: MCPToolEntry) -> None:
        """Build from the server and the recorded entry."""
        opts = server.options.get(entry.name, MCPToolOptions())
        hints = entry.annotations
        safe = server.trusted and (hints.get("readOnlyHint") is True or hints.get("idempotentHint") is True)
        confirm = opts.requires_confirmation
        super().__init__(
            self._body,
            name=f"{server.name}{SEPARATOR}{entry.name}",
            description=entry.description or entry.title or "",
            parameters=entry.input_schema,
            args_type=None,
            target=opts.target,
            requires_confirmation=server.requires_confirmation if confirm is None else confirm,
            retry_in_doubt=safe,
            parallel=server.parallel if opts.parallel is None else opts.parallel,
        )
        self.server = server
        self.remote_name = entry.name
        self.timeout = server.call_timeout if opts.timeout is None else float(opts.timeout)

    def _request(self, arguments: dict[str, Any]) -> Any:
        """The coroutine that makes the call, with delite's keys in ``_meta`` (built in the caller's context)."""
        ctx = active_call()
        meta: dict[str, Any] = {}
        if ctx is not None:
            meta = {
                f"{META_PREFIX}idempotencyKey": ctx.idempotency_key,
                f"{META_PREFIX}executionId": ctx.execution_id,
                f"{META_PREFIX}callId": ctx.call_id,
                f"{META_PREFIX}attempt": ctx.attempt,
            }
        session = self.server._connection()  # noqa: SLF001 - the tool belongs to its server
        return session.call_tool(
            self.remote_name, arguments, meta, seconds=self.timeout, retry_safe=self.retry_in_doubt
        )

    async def _body(self, **arguments: Any) -> Any:
        """The async API's body: awaited on the caller's loop, the request made on the MCP loop."""
        from delite._mcp._loop import mcp_loop  # noqa: PLC0415

        return await mcp_loop().arun(self._request(arguments))

    def invoke(self, arguments: dict[str, Any]) -> Any:
        """The sync API's body: the request made on the MCP loop, this thread waiting for it."""
        from delite._mcp._loop import mcp_loop  # noqa: PLC0415

        return mcp_loop().run(self._request(arguments))


_pool: dict[tuple[Any, ...], Session] = {}
_pool_lock = threading.Lock()


def _pooled(config: Mapping[str, Any]) -> Session:
    """The process's one session for ``config`` (made now if there is none); ``app`` and ``auth`` by identity.

    A pooled session holds its ``app`` and ``auth`` objects, so their identities cannot be reused while the
    key is in the pool.
    """
    key = _pool_key(config)
    with _pool_lock:
        session = _pool.get(key)
        if session is None:
            try:
                from delite._mcp._connection import Session, SessionConfig  # noqa: PLC0415 - mcp on first use
            except ImportError as e:
                raise UsageError("MCP servers need the mcp package: pip install 'delite-agents[mcp]'") from e
            from delite._mcp._loop import on_shutdown  # noqa: PLC0415

            session = _pool[key] = Session(SessionConfig(**config))
            on_shutdown(session)
        return session


def _pool_key(config: Mapping[str, Any]) -> tuple[Any, ...]:
    return tuple(
        (k, id(v) if k in ("app", "auth") else tuple(sorted(v.items())) if isinstance(v, dict) else v)
        for k, v in sorted(config.items())
    )


def _recorded(records: Iterable[Any], server: str) -> MCPCatalogRecorded | None:
    for record in records:
        if isinstance(record, MCPCatalogRecorded) and record.server == server:
            return record
    return None


def _entry(wire: Mapping[str, Any]) -> MCPToolEntry:
    annotations = wire.get("annotations")
    output = wire.get("outputSchema")
    return MCPToolEntry(
        name=str(wire["name"]),
        title=wire.get("title"),
        description=wire.get("description") or "",
        input_schema=dict(wire.get("inputSchema") or {"type": "object"}),
        output_schema=dict(output) if isinstance(output, Mapping) else None,
        annotations=dict(annotations) if isinstance(annotations, Mapping) else {},
    )


def _tool_filter(name: str, tools: Iterable[str] | Callable[[str], bool] | None) -> Callable[[str], bool]:
    if tools is None:
        return _everything
    if callable(tools):
        return tools
    if isinstance(tools, str):
        raise UsageError(f"MCPServer {name!r}: tools= is a list of tool names or a function, not a string")
    names = frozenset(tools)
    if not all(isinstance(n, str) for n in names):
        raise UsageError(f"MCPServer {name!r}: tools= lists tool names (strings)")
    return names.__contains__


def _everything(_name: str) -> bool:
    return True


def _check_seconds(what: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value <= 0:
        raise UsageError(f"{what} must be a number of seconds above 0, not {value!r:.80}")
