"""The MCP servers the tests talk to, written with the mcp package's own server side.

``make_app`` builds one in memory; run as a script it serves it over stdio (``servers.py stdio``) or Streamable
HTTP on loopback (``servers.py http PORT``). The environment shapes it: ``MCP_TEST_JOURNAL`` (a file each call
of ``block``/``block_once`` appends ``<tool> <tag> <idempotency key>`` to), ``MCP_TEST_BLOCK`` (seconds those
calls sleep), ``MCP_TEST_VARIANT`` (``2``: ``block`` takes a new required argument; ``3``: ``block`` is gone).
"""

from __future__ import annotations

import os
import sys
import time
from typing import Any

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import ToolAnnotations

KEY = "dev.delite/idempotencyKey"


def _key(ctx: Context[Any, Any]) -> str:
    meta = ctx.request_context.meta or {}
    return str(meta.get(KEY, ""))


def make_app(*, variant: str = "1", journal: str | None = None, delay: float = 0.0) -> MCPServer[Any]:
    app: MCPServer[Any] = MCPServer("test-server", version=f"1.{variant}")

    def note(line: str) -> None:
        if journal:
            with open(journal, "a", encoding="utf-8") as f:
                f.write(line + "\n")
                f.flush()
                os.fsync(f.fileno())

    @app.tool(annotations=ToolAnnotations(read_only_hint=True))
    def add(a: int, b: int) -> int:
        """Add two integers."""
        return a + b

    @app.tool()
    def whoami(ctx: Context[Any, Any]) -> dict[str, str]:
        """Say what this call was sent with."""
        return {
            "key": _key(ctx),
            "secret": os.environ.get("MCP_TEST_SECRET", ""),
            "leaked": os.environ.get("MCP_TEST_PARENT_ONLY", ""),
        }

    @app.tool()
    def trace(ctx: Context[Any, Any]) -> str:
        """The W3C trace context the call came with."""
        return str((ctx.request_context.meta or {}).get("traceparent", ""))

    @app.tool()
    def fail(reason: str) -> str:
        """Always fails."""
        raise ToolError(reason)

    if variant == "2":

        @app.tool(annotations=ToolAnnotations(idempotent_hint=True))
        def block(tag: str, mode: str, ctx: Context[Any, Any]) -> str:
            """Record the call, wait, answer (a second version with a new argument)."""
            note(f"block {tag} {_key(ctx)}")
            time.sleep(delay)
            return f"done {tag} {mode}"

    elif variant != "3":

        @app.tool(annotations=ToolAnnotations(idempotent_hint=True))
        def block(tag: str, ctx: Context[Any, Any]) -> str:
            """Record the call, wait, answer."""
            note(f"block {tag} {_key(ctx)}")
            time.sleep(delay)
            return f"done {tag}"

    @app.tool(annotations=ToolAnnotations(destructive_hint=True))
    def block_once(tag: str, ctx: Context[Any, Any]) -> str:
        """Record the call, wait, answer: a side effect that cannot be deduplicated."""
        note(f"block_once {tag} {_key(ctx)}")
        time.sleep(delay)
        return f"did {tag}"

    return app


def from_env() -> MCPServer[Any]:
    return make_app(
        variant=os.environ.get("MCP_TEST_VARIANT", "1"),
        journal=os.environ.get("MCP_TEST_JOURNAL") or None,
        delay=float(os.environ.get("MCP_TEST_BLOCK", "0")),
    )


if __name__ == "__main__":
    print("test server starting", file=sys.stderr, flush=True)
    server = from_env()
    if sys.argv[1] == "stdio":
        server.run("stdio")
    else:
        server.run("streamable-http", host="127.0.0.1", port=int(sys.argv[2]))
