"""The Starlette app of ``delite serve``: pages, the JSON API, the event stream, and who may use them.

Who may: every request but the static files, the login form and the OpenAPI schema needs the token, given
as ``Authorization: Bearer TOKEN`` (a program) or as the cookie that opening ``/?token=TOKEN`` (or the login
form) sets (a browser). A state-changing request that relies on the cookie must also carry the page's CSRF
value in ``X-Delite-CSRF``, and every state-changing request (the bearer token's too) must come from this
origin as far as the browser says (``Origin``, ``Sec-Fetch-Site``): a cross-site page can neither read that
value nor set the header without a CORS preflight, which this server never grants. The
cookie is ``HttpOnly`` and ``SameSite=Strict``. Every response carries a Content-Security-Policy that allows
only this origin's script and style files, no inline code, no frames, nothing from elsewhere.

Errors map to HTTP statuses by class (``DeliteError.http_status``, docs/reference/errors.md): the API answers
``{"error": {"type", "message", "status"}}``; a page shows the message as text.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import secrets
import socket
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from functools import partial
from importlib import resources
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import parse_qsl, urlencode

import msgspec
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect, Request
from starlette.responses import HTMLResponse, RedirectResponse, Response, StreamingResponse
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from delite.errors import DeliteError, UsageError
from delite.state._ready import unanswered
from delite_cli._serve import _pages
from delite_cli._serve._actions import Operator
from delite_cli._serve._openapi import schema
from delite_cli._serve._query import list_page, parse_filters, usage
from delite_cli._serve._stream import Follower, parse_last_id, sse

if TYPE_CHECKING:
    from delite import Agent
    from delite_cli._target import Target

__all__ = ["CSP", "ServeConfig", "build_app", "serve"]

T = TypeVar("T")

CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
"""The Content-Security-Policy of every response: this origin's files only, no inline code, no frames."""
TOKEN_ENV = "DELITE_SERVE_TOKEN"  # noqa: S105 - the name of the variable, not a token
MIN_TOKEN = 16
MAX_BODY = 8 * 1024 * 1024
"""The largest request body taken (an answer or tool results); a bigger one is a 413, with nothing recorded."""
MAX_DRAIN = 256 * 1024 * 1024
"""How much of a body over the limit is read (and dropped) so the client sees the 413; beyond it, the connection
is closed."""
DRAIN_PAUSE = 2.0
"""Seconds to wait for more of a body over the limit before answering the 413."""
MAX_LOGIN_BODY = 4096
"""The largest body of the login form taken (its token field); a bigger one is a 413 and is never held. It is
read before the token is checked, so this is all anyone who can reach the port can make the server hold."""
CSRF_HEADER = "x-delite-csrf"
_STATIC = {"serve.js": "text/javascript", "serve.css": "text/css"}


@dataclass
class ServeConfig:
    """What one server serves: a store (as the CLI's target), its token, and the application's agent if any."""

    target: Target
    token: str
    agent: Agent | None = None
    where: str = ""
    cookie: str = "delite_serve"
    stopping: Callable[[], bool] = lambda: False
    """Whether the server is shutting down: open event streams end at their next look, so it stops at once."""
    operator: Operator = field(init=False)

    def __post_init__(self) -> None:
        """Check the token and build the operator."""
        check_token(self.token)
        self.operator = Operator(self.target, self.agent)

    def _derive(self, purpose: str) -> str:
        return hmac.new(self.token.encode(), purpose.encode(), hashlib.sha256).hexdigest()

    @property
    def session(self) -> str:
        """The cookie's value: derived from the token, so the token itself is never stored by the browser."""
        return self._derive("delite-serve session")

    @property
    def csrf(self) -> str:
        """The value a page's script sends in ``X-Delite-CSRF``."""
        return self._derive("delite-serve csrf")


def check_token(token: str) -> str:
    """A token must be long enough to be unguessable.

    Raises:
        UsageError: shorter than 16 characters, or with spaces or control characters.
    """
    if not isinstance(token, str) or len(token) < MIN_TOKEN or not token.isprintable() or " " in token:
        raise UsageError(f"the token ({TOKEN_ENV}) must be at least {MIN_TOKEN} printable characters without spaces")
    return token


# -- answers ----------------------------------------------------------------------------------------------------


class _SecurityHeaders:
    """Adds the security headers to every response, and ``Server-Timing`` (the time to the response's start)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        started = time.perf_counter()

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                took = (time.perf_counter() - started) * 1000
                headers += [
                    (b"server-timing", b"app;dur=%.2f" % took),
                    (b"content-security-policy", CSP.encode()),
                    (b"x-content-type-options", b"nosniff"),
                    (b"x-frame-options", b"DENY"),
                    (b"referrer-policy", b"no-referrer"),
                    (b"cross-origin-opener-policy", b"same-origin"),
                    (b"cross-origin-resource-policy", b"same-origin"),
                ]
                if not any(k.lower() == b"cache-control" for k, _ in headers):
                    headers.append((b"cache-control", b"no-store"))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)


def _json(value: Any, status: int = 200) -> Response:
    return Response(msgspec.json.encode(value), status_code=status, media_type="application/json")


def _error_json(status: int, kind: str, message: str) -> Response:
    return _json({"error": {"type": kind, "message": message, "status": status}}, status)


def _status_of(e: Exception) -> int | None:
    if isinstance(e, DeliteError):
        return int(e.http_status)
    return None


class _DeniedError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class _TooLargeError(Exception):
    """A request body over :data:`MAX_BODY`: answered 413, nothing read into memory or recorded."""


async def _read_body(request: Request, *, limit: int = MAX_BODY) -> bytes:
    """The request's body, at most ``limit`` bytes (:data:`MAX_BODY` unless told).

    A bigger one (so declared by its ``Content-Length``, or found so as it arrives) is never held: it is read
    on and dropped while the client keeps sending (up to :data:`MAX_DRAIN` bytes, with a pause of at most
    :data:`DRAIN_PAUSE` seconds), so that the client gets the 413 rather than a reset connection.

    Raises:
        _TooLargeError: the body is over the limit.
    """
    declared = request.headers.get("content-length", "")
    over = declared.isdigit() and int(declared) > limit
    raw = bytearray()
    size = 0
    chunks = request.stream()
    try:
        while size <= MAX_DRAIN:
            if over:
                chunk = await asyncio.wait_for(anext(chunks), DRAIN_PAUSE)
            else:
                chunk = await anext(chunks)
            size += len(chunk)
            if size > limit:
                over = True
                raw.clear()
            elif not over:
                raw += chunk
    except (StopAsyncIteration, ClientDisconnect, TimeoutError):
        pass
    if over:
        raise _TooLargeError
    return bytes(raw)


# -- the app ------------------------------------------------------------------------------------------------------


def build_app(config: ServeConfig) -> Starlette:
    """The ASGI app serving ``config``'s store."""
    c = config
    data = c.target.data
    op = c.operator

    async def in_thread(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        return await run_in_threadpool(partial(fn, *args, **kwargs))

    def authenticated(request: Request) -> str | None:
        """How the request proves it has the token: ``bearer``, ``cookie``, or None."""
        auth = request.headers.get("authorization", "")
        if auth[:7].lower() == "bearer " and hmac.compare_digest(auth[7:].strip().encode(), c.token.encode()):
            return "bearer"
        cookie = request.cookies.get(c.cookie, "")
        if cookie and hmac.compare_digest(cookie.encode(), c.session.encode()):
            return "cookie"
        return None

    def same_origin(request: Request) -> bool:
        site = request.headers.get("sec-fetch-site")
        if site is not None and site not in ("same-origin", "none"):
            return False
        origin = request.headers.get("origin")
        if origin is None:
            return True
        host = request.headers.get("host", "")
        return origin in (f"http://{host}", f"https://{host}")

    def guard(request: Request, *, unsafe: bool) -> None:
        how = authenticated(request)
        if how is None:
            raise _DeniedError(401, "this server needs its token: Authorization: Bearer TOKEN, or open /?token=TOKEN")
        if not unsafe:
            return
        if not same_origin(request):  # a browser says where a request comes from: another site may not act
            raise _DeniedError(403, "a cross-site request is refused: it must come from this server's own pages")
        if how == "cookie":
            sent = request.headers.get(CSRF_HEADER, "")
            if not hmac.compare_digest(sent.encode(), c.csrf.encode()):
                raise _DeniedError(403, "a request with the cookie needs the page's CSRF header (X-Delite-CSRF)")

    def api(
        handler: Callable[[Request], Awaitable[Response]], *, unsafe: bool = False
    ) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            try:
                guard(request, unsafe=unsafe)
                return await handler(request)
            except _DeniedError as e:
                return _error_json(e.status, "Unauthorized" if e.status == 401 else "Forbidden", str(e))
            except _TooLargeError:
                return _error_json(413, "RequestTooLarge", f"the request body is over {MAX_BODY} bytes")
            except Exception as e:  # noqa: BLE001 - every failure is answered as JSON, a fault as a 500
                status = _status_of(e)
                if status is None:
                    print(f"delite serve: {request.method} {request.url.path} failed: {e!r}", file=sys.stderr)
                    return _error_json(500, type(e).__name__, "the server failed; its error output says why")
                return _error_json(status, type(e).__name__, str(e))

        return endpoint

    def page(handler: Callable[[Request], Awaitable[Response]]) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            given = request.query_params.get("token")
            if given is not None:
                return login(request, given)
            try:
                guard(request, unsafe=False)
            except _DeniedError:
                return HTMLResponse(_pages.login_page(failed=False), status_code=401)
            try:
                return await handler(request)
            except Exception as e:
                status = _status_of(e)
                if status is None:
                    raise
                body = _pages.error_page(status, type(e).__name__, str(e), csrf=c.csrf, where=c.where)
                return HTMLResponse(body, status_code=status)

        return endpoint

    def login(request: Request, given: str) -> Response:
        if not hmac.compare_digest(given.encode(), c.token.encode()):
            return HTMLResponse(_pages.login_page(failed=True), status_code=401)
        rest = [(k, v) for k, v in request.query_params.multi_items() if k != "token"]
        path = request.url.path if request.url.path.startswith("/") else "/"
        response = RedirectResponse(path + ("?" + urlencode(rest) if rest else ""), status_code=303)
        response.set_cookie(c.cookie, c.session, httponly=True, samesite="strict", path="/")
        return response

    async def login_form(request: Request) -> Response:
        if not same_origin(request):
            return HTMLResponse(_pages.login_page(failed=True), status_code=403)
        try:
            body = (await _read_body(request, limit=MAX_LOGIN_BODY)).decode("utf-8", "replace")
        except _TooLargeError:
            return HTMLResponse(_pages.login_page(failed=True), status_code=413)
        given = dict(parse_qsl(body)).get("token", "")
        if not hmac.compare_digest(given.encode(), c.token.encode()):
            return HTMLResponse(_pages.login_page(failed=True), status_code=401)
        response = RedirectResponse("/", status_code=303)
        response.set_cookie(c.cookie, c.session, httponly=True, samesite="strict", path="/")
        return response

    def resolve(request: Request) -> str:
        return data.resolve(request.path_params["id"])

    def pending_of(eid: str) -> tuple[Any, list[str]]:
        view = data.execution(eid)
        reason = view.detail.suspend_reason
        if reason is None:
            return view, []
        if reason.kind in ("approval", "contract"):
            return view, op.pending_decisions(eid)
        return view, unanswered(view.state) or list(reason.confirmation_ids)

    # -- pages --------------------------------------------------------------------------------------------------

    async def list_view(request: Request) -> Response:
        filters = parse_filters(request.query_params.multi_items())
        found = await in_thread(list_page, data, filters)
        return HTMLResponse(_pages.list_page(found, filters, now=time.time(), csrf=c.csrf, where=c.where))

    async def usage_view(request: Request) -> Response:
        filters = parse_filters(request.query_params.multi_items())
        found = await in_thread(usage, data, filters)
        return HTMLResponse(_pages.usage_page(found, filters, csrf=c.csrf, where=c.where))

    def live(eid: str) -> tuple[Any, str]:
        view, pending = pending_of(eid)
        export = view.export()
        fragment = _pages.live_fragment(
            export,
            children=data.children(eid),
            pending=pending,
            has_agent=c.agent is not None,
            advancing=op.advancing(eid),
            failure=op.failures.get(eid),
        )
        return export, fragment

    async def execution_view(request: Request) -> Response:
        eid = await in_thread(resolve, request)
        export, fragment = await in_thread(live, eid)
        return HTMLResponse(_pages.execution_page(export, live=fragment, csrf=c.csrf, where=c.where))

    async def live_view(request: Request) -> Response:
        eid = await in_thread(resolve, request)
        _, fragment = await in_thread(live, eid)
        return HTMLResponse(fragment)

    async def static(request: Request) -> Response:
        name = request.path_params["name"]
        if name == "base.css":
            from delite_cli._html import _CSS

            body = _CSS
            kind = "text/css"
        elif name in _STATIC:
            body = resources.files("delite_cli._serve").joinpath("static", name).read_text(encoding="utf-8")
            kind = _STATIC[name]
        else:
            return Response("not found", status_code=404, media_type="text/plain")
        return Response(body, media_type=kind, headers={"cache-control": "no-cache"})

    # -- the API: reads -----------------------------------------------------------------------------------------

    async def api_list(request: Request) -> Response:
        filters = parse_filters(request.query_params.multi_items())
        return _json(await in_thread(list_page, data, filters))

    async def api_usage(request: Request) -> Response:
        filters = parse_filters(request.query_params.multi_items())
        return _json((await in_thread(usage, data, filters)).as_json())

    async def api_execution(request: Request) -> Response:
        def read() -> dict[str, Any]:
            eid = resolve(request)
            view, pending = pending_of(eid)
            return {
                "execution": view.detail,
                "pending": pending,
                "children": data.children(eid),
                "advancing": op.advancing(eid),
                "advance_error": op.failures.get(eid),
            }

        return _json(await in_thread(read))

    async def api_export(request: Request) -> Response:
        def read() -> Any:
            return data.execution(resolve(request)).export()

        return _json(await in_thread(read))

    async def api_events(request: Request) -> Response:
        after = parse_last_id(request.query_params.get("after"))

        def read() -> Any:
            return [e for e in data.execution(resolve(request)).events if e.seq > after]

        return _json(await in_thread(read))

    async def api_stream(request: Request) -> Response:
        raw = request.headers.get("last-event-id") or request.query_params.get("after")
        after = parse_last_id(raw)
        eid = await in_thread(resolve, request)
        follower = await in_thread(Follower, data, eid, after)
        try:
            first = await in_thread(follower.more)  # a log that cannot be read is an error status, not a cut stream
        except BaseException:
            follower.close()
            raise
        return StreamingResponse(
            sse(follower, first=first, stopping=c.stopping),
            media_type="text/event-stream",
            headers={"cache-control": "no-cache", "x-accel-buffering": "no"},
        )

    async def api_openapi(request: Request) -> Response:  # noqa: ARG001 - the route's signature
        return _json(schema())

    # -- the API: actions ---------------------------------------------------------------------------------------

    async def body_of(request: Request) -> dict[str, Any]:
        from delite_cli._operate import BadInputError, decode_json

        raw = await _read_body(request)
        if not raw.strip():
            return {}
        try:  # the CLI's own rules: UTF-8, no NaN or Infinity, no key twice, not nested too deeply
            value = decode_json(raw)
        except BadInputError as e:
            raise UsageError(f"the request body{e.tail}") from None
        if not isinstance(value, dict):
            raise UsageError("the request body must be a JSON object")
        return value

    def text_field(body: dict[str, Any], key: str, *, required: bool = False) -> str | None:
        value = body.get(key)
        if value is None and not required:
            return None
        if not isinstance(value, str):
            raise UsageError(f"{key} must be a string")
        return value

    def do(name: str, body: dict[str, Any], eid: str) -> dict[str, Any]:
        known = {
            "approve": {"calls", "all", "reason"},
            "reject": {"calls", "all", "reason"},
            "input": {"text"},
            "tool-results": {"results"},
            "resolve": {"call_id", "result", "error", "rerun"},
            "resume": {"model"},
            "cancel": {"reason"},
            "fork": {"at", "id"},
        }[name]
        extra = set(body) - known
        if extra:
            raise UsageError(f"{name} takes {', '.join(sorted(known))}; not {', '.join(sorted(extra))}")
        if name in ("approve", "reject"):
            calls = body.get("calls")
            if calls is not None and (not isinstance(calls, list) or not all(isinstance(x, str) for x in calls)):
                raise UsageError("calls must be a list of call ids")
            every = body.get("all", False)
            if not isinstance(every, bool):
                raise UsageError("all must be true or false")
            reason = text_field(body, "reason") or None
            return op.decide(eid, calls, approve=name == "approve", every=every, reason=reason)
        if name == "input":
            return op.submit_input(eid, text_field(body, "text", required=True) or "")
        if name == "tool-results":
            results = body.get("results")
            if not isinstance(results, dict):
                raise UsageError('results must be a JSON object {"CALL_ID": result, ...}')
            return op.submit_tool_results(eid, results)
        if name == "resolve":
            call_id = text_field(body, "call_id", required=True) or ""
            rerun = body.get("rerun", False)
            if not isinstance(rerun, bool):
                raise UsageError("rerun must be true or false")
            given = [k for k in ("result", "error") if k in body] + (["rerun"] if rerun else [])
            if len(given) != 1:
                raise UsageError("give exactly one of result, error or rerun")
            return op.resolve(eid, call_id, result=body.get("result"), error=text_field(body, "error"), rerun=rerun)
        if name == "resume":
            return op.resume(eid, model=text_field(body, "model"))
        if name == "cancel":
            return op.cancel(eid, reason=text_field(body, "reason") or "cancelled by operator")
        at = body.get("at")
        if isinstance(at, bool) or not isinstance(at, int):
            raise UsageError("at must be a step number")
        return op.fork(eid, at=at, new_id=text_field(body, "id") or None)

    async def api_action(request: Request) -> Response:
        name = request.path_params["action"]
        if name not in ("approve", "reject", "input", "tool-results", "resolve", "resume", "cancel", "fork"):
            return _error_json(404, "NotFound", f"no action {name[:40]!r}")
        body = await body_of(request)
        eid = await in_thread(resolve, request)
        result = await in_thread(do, name, body, eid)
        return _json(result, 201 if name == "fork" else 200)

    async def not_found(request: Request, exc: Exception) -> Response:  # noqa: ARG001
        if request.url.path.startswith("/api/"):
            return _error_json(404, "NotFound", "no such route")
        return HTMLResponse(_pages.error_page(404, "NotFound", "no such page"), status_code=404)

    async def not_allowed(request: Request, exc: Exception) -> Response:  # noqa: ARG001
        if request.url.path.startswith("/api/"):
            return _error_json(405, "MethodNotAllowed", f"{request.method[:20]} is not allowed here")
        return HTMLResponse(_pages.error_page(405, "MethodNotAllowed", "not allowed here"), status_code=405)

    routes = [
        Route("/", page(list_view)),
        Route("/usage", page(usage_view)),
        Route("/executions/{id}/live", page(live_view)),
        Route("/executions/{id}", page(execution_view)),
        Route("/login", login_form, methods=["POST"]),
        Route("/static/{name}", static),
        Route("/api/openapi.json", api_openapi),
        Route("/api/executions", api(api_list)),
        Route("/api/usage", api(api_usage)),
        Route("/api/executions/{id}/export", api(api_export)),
        Route("/api/executions/{id}/events", api(api_events)),
        Route("/api/executions/{id}/stream", api(api_stream)),
        Route("/api/executions/{id}/{action}", api(api_action, unsafe=True), methods=["POST"]),
        Route("/api/executions/{id}", api(api_execution)),
    ]
    app = Starlette(routes=routes, exception_handlers={404: not_found, 405: not_allowed})
    app.add_middleware(_SecurityHeaders)
    return app


def _say(line: str) -> None:
    print(line, flush=True)  # at once, also when stdout is a pipe: a supervisor waits for the address


def _loopback(host: str) -> bool:
    return host in ("localhost", "::1") or host.startswith("127.")


def _warm(target: Target) -> None:
    """Bring the store's listing index up to date before the first page asks.

    A data directory's first listing reads every log; done here, the list page answers at once from the
    start. A store that fails here fails again, with its status, on the request.
    """
    try:
        target.data.list(limit=1)
    except DeliteError as e:
        print(f"delite serve: reading the store failed: {e}", file=sys.stderr)


def serve(
    target: Target,
    *,
    host: str,
    port: int,
    agent: Agent | None,
    token: str | None,
    announce: Callable[[str], None] = _say,
) -> None:
    """Serve ``target`` until interrupted: bind, say where (with the token), and answer requests.

    Raises:
        UsageError: a token that is too short, or an address that cannot be bound.
    """
    import uvicorn

    printed = token is None
    token = check_token(token) if token is not None else secrets.token_urlsafe(24)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as e:
        sock.close()
        raise UsageError(f"cannot listen on {host}:{port}: {e.strerror}") from e
    sock.listen(2048)  # connections wait in the backlog from now on: a client may connect once we announce
    bound = sock.getsockname()[1]
    _warm(target)
    config = ServeConfig(target, token, agent=agent, where=target.where, cookie=f"delite_serve_{bound}")
    app = build_app(config)
    shown = f"[{host}]" if ":" in host else host
    url = f"http://{shown}:{bound}/"
    announce(f"delite serve: {target.where} on {url}")
    announce(f"open {url}?token={token}" if printed else f"open {url} and give the token from ${TOKEN_ENV}")
    if agent is not None:
        announce(f"answers are advanced by the agent {agent.agent_id!r}")
    else:
        announce("no --agent: answers are recorded; your application (or a worker) advances the executions")
    if not _loopback(host):
        announce(f"warning: listening on {host}, not only on this machine; anyone who reaches it needs the token")
    server = uvicorn.Server(
        uvicorn.Config(app, log_level="warning", timeout_graceful_shutdown=2, lifespan="off", access_log=False)
    )
    config.stopping = lambda: server.should_exit
    try:
        server.run(sockets=[sock])
    except KeyboardInterrupt:  # uvicorn shut down gracefully, then passed Ctrl-C on: a normal stop
        announce("delite serve: stopped")
    finally:
        config.operator.close()
        sock.close()
        sys.stdout.flush()
